"""Choosing the family from real chat templates, and what those templates render."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from appliance.engines.chat_template import ChatTemplate
from appliance.parsing import (
    Family,
    ParsedMessage,
    detect_family,
    family_from_name,
    parse_output,
    prompt_opens_reasoning,
)
from tests.gemma4_like import GEMMA4_LIKE

TEMPLATES = Path(__file__).parent.parent / "fixtures" / "chat_templates"

EXPECTED = {
    "Qwen-Qwen2.5-7B-Instruct.jinja": Family.HERMES,
    "Qwen-QwQ-32B.jinja": Family.HERMES,
    "Qwen-Qwen3-0.6B.jinja": Family.HERMES,
    "ibm-granite-granite-4.0.jinja": Family.HERMES,
    "Qwen3-Coder.jinja": Family.QWEN3_CODER,
    "mistralai-Mistral-Nemo-Instruct-2407.jinja": Family.MISTRAL,
    "Mistral-Small-3.2-24B-Instruct-2506.jinja": Family.MISTRAL,
    "unsloth-mistral-Devstral-Small-2507.jinja": Family.MISTRAL,
    "mistralai-Ministral-3-14B-Reasoning-2512.jinja": Family.MISTRAL,
    "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja": Family.DEEPSEEK,
    "deepseek-ai-DeepSeek-V3.1.jinja": Family.DEEPSEEK,
    "llama-cpp-deepseek-r1.jinja": Family.DEEPSEEK,
    "openai-gpt-oss-120b.jinja": Family.HARMONY,
    "deepseek-ai-DeepSeek-V3.2.jinja": Family.DEEPSEEK_DSML,
    "deepseek-ai-DeepSeek-V4.jinja": Family.DEEPSEEK_DSML,
    "deepseek-ai-DeepSeek-V4-Flash-0731.jinja": Family.DEEPSEEK_DSML,
    "GLM-4.6.jinja": Family.GLM,
    "GLM-4.7-Flash.jinja": Family.GLM,
    "ByteDance-Seed-OSS.jinja": Family.SEED_OSS,
    "ibm-granite-granite-3.3-2B-Instruct.jinja": Family.GRANITE3,
    "HuggingFaceTB-SmolLM3-3B.jinja": Family.GENERIC,
    "microsoft-Phi-3.5-mini-instruct.jinja": Family.GENERIC,
    "Apertus-8B-Instruct.jinja": Family.APERTUS,
}

# Llama 3.x templates are not shipped (see LICENSES.md): a small one in their style.
LLAMA_LIKE = (
    "{{- bos_token }}{%- if tools %}"
    "{{- '<|start_header_id|>system<|end_header_id|>\\n\\nRespond in the format "
    '{"name": function name, "parameters": dictionary of argument name and its value}.'
    "<|eot_id|>' }}{%- endif %}"
    "{%- for message in messages %}{%- if message.tool_calls %}"
    "{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n<|python_tag|>' }}"
    '{{- \'{"name": "\' + message.tool_calls[0].function.name + \'", "parameters": \' }}'
    "{{- message.tool_calls[0].function.arguments | tojson + '}<|eom_id|>' }}"
    "{%- else %}{{- '<|start_header_id|>' + message.role + '<|end_header_id|>\\n\\n' }}"
    "{{- message.content + '<|eot_id|>' }}{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"
)

# LFM2's templates are under Liquid's LFM Open License, not shipped: a small one in the
# style of LFM2.5-8B-A1B's (a tool list in the system turn, calls as a Python list of
# keyword calls between <|tool_call_start|> and <|tool_call_end|>, strings quoted).
LFM2_LIKE = (
    "{{- bos_token -}}{%- if tools -%}"
    "{{- '<|im_start|>system\\nList of tools: <|tool_list_start|>' + tools | tojson"
    " + '<|tool_list_end|><|im_end|>\\n' -}}{%- endif -%}"
    "{%- for message in messages -%}{{- '<|im_start|>' + message.role + '\\n' -}}"
    "{%- if message.content is string -%}{{- message.content -}}{%- endif -%}"
    "{%- if message.tool_calls -%}{{- '<|tool_call_start|>[' -}}"
    "{%- for call in message.tool_calls -%}{{- call.function.name + '(' -}}"
    "{%- for key, value in call.function.arguments.items() -%}"
    "{{- key + '=' + value | tojson -}}{{- ', ' if not loop.last -}}{%- endfor -%}"
    "{{- ')' + (', ' if not loop.last else '') -}}{%- endfor -%}"
    "{{- ']<|tool_call_end|>' -}}{%- endif -%}{{- '<|im_end|>\\n' -}}{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)

# Nemotron Nano v2's template is under the NVIDIA Open Model License, not shipped: a small
# one in its style (tools in <AVAILABLE_TOOLS>, calls as a JSON list between <TOOLCALL>
# and </TOOLCALL>, results in <TOOL_RESPONSE>, the answer's reasoning opened by the
# generation prompt unless /no_think).
NEMOTRON_V2_LIKE = (
    "{{- '<SPECIAL_10>System\n' -}}{%- if tools -%}"
    "{{- 'You can use the following tools to assist the user if required:\n"
    "<AVAILABLE_TOOLS>' + tools | tojson + '</AVAILABLE_TOOLS>\n\n' -}}"
    "{%- endif -%}{{- '\n\n' -}}"
    "{%- for message in messages -%}"
    "{%- if message.role == 'tool' -%}"
    "{{- '<SPECIAL_11>User\n<TOOL_RESPONSE>[' + message.content + ']</TOOL_RESPONSE>\n' -}}"
    "{%- elif message.role == 'assistant' -%}"
    "{{- '<SPECIAL_11>Assistant\n' + (message.content or '') -}}"
    "{%- if message.tool_calls -%}{{- '<TOOLCALL>[' -}}"
    "{%- for call in message.tool_calls -%}"
    '{{- \'{"name": "\' + call.function.name + \'", "arguments": \' -}}'
    "{%- if call.function.arguments is string -%}{{- call.function.arguments -}}"
    "{%- else -%}{{- call.function.arguments | tojson -}}{%- endif -%}"
    "{{- '}' + (', ' if not loop.last else '') -}}{%- endfor -%}"
    "{{- ']</TOOLCALL>' -}}{%- endif -%}{{- '\n<SPECIAL_12>\n' -}}"
    "{%- else -%}{{- '<SPECIAL_11>' + message.role | capitalize + '\n' + message.content"
    " + '\n' -}}{%- endif -%}{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<SPECIAL_11>Assistant\n' -}}"
    "{%- if enable_thinking is defined and not enable_thinking -%}{{- '<think></think>' -}}"
    "{%- else -%}{{- '<think>\n' -}}{%- endif -%}{%- endif -%}"
)

# MiniMax M2's template in small (MiniMax's own is not shipped: its licence could not be
# checked here): tools as JSON, a past call's values as text when strings and as JSON
# otherwise, and a generation prompt that opens <think>.
MINIMAX_M2_LIKE = (
    "{{- ']~!b[]~b]system\n' -}}{%- if tools -%}"
    "{{- '# Tools\n<tools>\n' -}}{%- for tool in tools -%}"
    "{{- '<tool>' + tool.function | tojson + '</tool>\n' -}}{%- endfor -%}"
    "{{- '</tools>\nWhen making tool calls, use XML format:\n<minimax:tool_call>\n"
    '<invoke name="tool-name">\n<parameter name="key">value</parameter>\n'
    "</invoke>\n</minimax:tool_call>' -}}{%- endif -%}{{- '[e~[\n' -}}"
    "{%- for message in messages -%}"
    "{%- if message.role == 'assistant' -%}{{- ']~b]ai\n' + (message.content or '') -}}"
    "{%- if message.tool_calls -%}{{- '\n<minimax:tool_call>\n' -}}"
    "{%- for call in message.tool_calls -%}"
    "{%- set args = call.function.arguments -%}"
    "{{- '<invoke name=\"' + call.function.name + '\">\n' -}}"
    "{%- for k, v in args.items() -%}"
    "{{- '<parameter name=\"' + k + '\">' -}}"
    "{{- v | tojson if v is not string else v -}}{{- '</parameter>\n' -}}"
    "{%- endfor -%}{{- '</invoke>\n' -}}{%- endfor -%}"
    "{{- '</minimax:tool_call>' -}}{%- endif -%}{{- '[e~[\n' -}}"
    "{%- elif message.role == 'tool' -%}"
    "{{- ']~b]tool\n<response>' + message.content + '</response>[e~[\n' -}}"
    "{%- else -%}{{- ']~b]' + message.role + '\n' + message.content + '[e~[\n' -}}"
    "{%- endif -%}{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- ']~b]ai\n<think>\n' -}}{%- endif -%}"
)

# Kimi K2's templates are under Moonshot's modified MIT licence, not shipped: a small one
# in the style of Kimi-K2-Thinking's (tools declared as JSON, each past turn's reasoning
# in <think></think>, calls in a section with ids functions.NAME:INDEX counted over the
# conversation, a result shown under its call's id as the first K2 template shows it).
KIMI_K2_LIKE = (
    "{%- set counter = namespace(value=0) -%}{%- if tools -%}"
    "{{- '<|im_system|>tool_declare<|im_middle|>' + tools | tojson + '<|im_end|>' -}}"
    "{%- endif -%}{%- for message in messages -%}"
    "{%- if message.role == 'assistant' -%}"
    "{{- '<|im_assistant|>assistant<|im_middle|><think>' + (message.reasoning_content or '')"
    " + '</think>' + (message.content or '') -}}"
    "{%- if message.tool_calls -%}{{- '<|tool_calls_section_begin|>' -}}"
    "{%- for call in message.tool_calls -%}"
    "{{- '<|tool_call_begin|>functions.' + call.function.name + ':' + counter.value | string"
    " + '<|tool_call_argument_begin|>' -}}{%- set counter.value = counter.value + 1 -%}"
    "{%- if call.function.arguments is string -%}{{- call.function.arguments -}}"
    "{%- else -%}{{- call.function.arguments | tojson -}}{%- endif -%}"
    "{{- '<|tool_call_end|>' -}}{%- endfor -%}{{- '<|tool_calls_section_end|>' -}}{%- endif -%}"
    "{%- elif message.role == 'tool' -%}"
    "{{- '<|im_system|>tool<|im_middle|>## Return of ' + message.tool_call_id + '\\n'"
    " + message.content -}}"
    "{%- else -%}{{- '<|im_' + message.role + '|>' + message.role + '<|im_middle|>'"
    " + message.content -}}{%- endif -%}{{- '<|im_end|>' -}}{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_assistant|>assistant<|im_middle|>' -}}"
    "{%- endif -%}"
)


# Command R7B's template is under Cohere's CC-BY-NC licence, not shipped: a small one in
# its style (tools as a JSON list in the system turn, a past call's thoughts and its
# numbered calls one a line in <|START_ACTION|>, an answer in <|START_RESPONSE|>, results
# in <|START_TOOL_RESULT|>, and a generation prompt that closes an empty thinking block
# unless enable_thinking, or opens one with Cohere2 MoE's reasoning switch).
COMMAND_R7B_LIKE = (
    "{{- bos_token -}}{%- set ns = namespace(call=0, result=0) -%}"
    "{{- '<|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|># System Preamble\\n' -}}"
    "{%- if tools -%}{{- '## Available Tools\\nWrite <|START_ACTION|> followed by a list of"
    " JSON tool calls, then <|END_ACTION|>.\\n```json\\n[\\n' -}}"
    "{%- for tool in tools -%}"
    '{{- \'    {"name": "\' + tool.function.name + \'", "parameters": \''
    " + tool.function.parameters | tojson + ', \"responses\": null}' -}}"
    "{{- ',\\n' if not loop.last else '\\n' -}}{%- endfor -%}{{- ']\\n```\\n' -}}{%- endif -%}"
    "{{- '<|END_OF_TURN_TOKEN|>' -}}"
    "{%- for message in messages -%}"
    "{%- if message.role == 'assistant' and message.tool_calls -%}"
    "{{- '<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|><|START_THINKING|>'"
    " + (message.reasoning_content or '') + '<|END_THINKING|><|START_ACTION|>[\\n' -}}"
    "{%- for tc in message.tool_calls -%}"
    '{{- \'    {"tool_call_id": "\' + ns.call | string + \'", "tool_name": "\''
    " + tc.function.name + '\", \"parameters\": ' + tc.function.arguments | tojson + '}' -}}"
    "{{- ',\\n' if not loop.last else '\\n' -}}{%- set ns.call = ns.call + 1 -%}{%- endfor -%}"
    "{{- ']<|END_ACTION|><|END_OF_TURN_TOKEN|>' -}}"
    "{%- elif message.role == 'assistant' -%}"
    "{{- '<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|><|START_RESPONSE|>' + message.content"
    " + '<|END_RESPONSE|><|END_OF_TURN_TOKEN|>' -}}"
    "{%- elif message.role == 'tool' -%}"
    "{{- '<|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|><|START_TOOL_RESULT|>[\\n'"
    ' + \'    {"tool_call_id": "\' + ns.result | string + \'", "results": {"0": \''
    " + message.content | tojson"
    " + '}, \"is_error\": null}\\n]<|END_TOOL_RESULT|><|END_OF_TURN_TOKEN|>' -}}"
    "{%- set ns.result = ns.result + 1 -%}"
    "{%- else -%}{{- '<|START_OF_TURN_TOKEN|><|' + message.role | upper + '_TOKEN|>'"
    " + message.content + '<|END_OF_TURN_TOKEN|>' -}}{%- endif -%}{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>' -}}"
    "{%- if reasoning -%}{{- '<|START_THINKING|>' -}}"
    "{%- elif not enable_thinking -%}{{- '<|START_THINKING|><|END_THINKING|>' -}}{%- endif -%}"
    "{%- endif -%}"
)

# MiniCPM5's template is not shipped (its licence could not be confirmed offline): a
# small one in its style (ChatML, tools as JSON lines in the system turn, a past call's
# values right between <param> tags, a string wrapped in CDATA when it holds <, & or a
# newline and any other value printed as Jinja prints it, results in <tool_response>,
# and a generation prompt that opens <think> when enable_thinking).
MINICPM5_LIKE = (
    "{{- bos_token -}}{%- if tools -%}{{- '<|im_start|>system\\n# Tools\\n<tools>' -}}"
    "{%- for tool in tools -%}{{- '\\n' + tool | tojson -}}{%- endfor -%}"
    "{{- '\\n</tools>\\n\\nTool usage guidelines:\\n- When calling a function, use:\\n"
    '<function name="function-name"><param name="param-name">param-value</param>'
    "</function><|im_end|>\\n' -}}{%- endif -%}"
    "{%- for message in messages -%}"
    "{%- if message.role == 'assistant' -%}"
    "{{- '<|im_start|>assistant\\n' + (message.content or '') -}}"
    "{%- for call in message.tool_calls or [] -%}"
    "{{- '\\n' if message.content or not loop.first -}}"
    "{{- '<function name=\"' ~ call.function.name ~ '\">' -}}"
    "{%- for name, value in call.function.arguments.items() -%}"
    "{{- '<param name=\"' ~ name ~ '\">' -}}"
    "{%- if value is string and ('<' in value or '&' in value or '\\n' in value) -%}"
    "{{- '<![CDATA[' + value + ']]>' -}}{%- else -%}{{- value -}}{%- endif -%}"
    "{{- '</param>' -}}{%- endfor -%}{{- '</function>' -}}{%- endfor -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- elif message.role == 'tool' -%}"
    "{{- '<|im_start|>user\\n<tool_response>\\n' + message.content"
    " + '\\n</tool_response><|im_end|>\\n' -}}"
    "{%- else -%}{{- '<|im_start|>' + message.role + '\\n' + message.content"
    " + '<|im_end|>\\n' -}}{%- endif -%}{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}"
    "{%- if enable_thinking is defined and enable_thinking -%}{{- '<think>\\n' -}}"
    "{%- elif enable_thinking is defined -%}{{- '<think>\\n\\n</think>\\n\\n' -}}"
    "{%- endif -%}{%- endif -%}"
)


def _source(name: str) -> str:
    if name == "llama-like":
        return LLAMA_LIKE
    if name == "gemma4-like":
        return GEMMA4_LIKE
    if name == "lfm2-like":
        return LFM2_LIKE
    if name == "nemotron-v2-like":
        return NEMOTRON_V2_LIKE
    if name == "minimax-m2-like":
        return MINIMAX_M2_LIKE
    if name == "kimi-k2-like":
        return KIMI_K2_LIKE
    if name == "command-r7b-like":
        return COMMAND_R7B_LIKE
    if name == "minicpm5-like":
        return MINICPM5_LIKE
    return (TEMPLATES / name).read_text(encoding="utf-8")


def test_every_shipped_template_is_listed_with_its_licence() -> None:
    shipped = {p.name for p in TEMPLATES.glob("*.jinja")}
    assert shipped == set(EXPECTED)
    licences = (TEMPLATES / "LICENSES.md").read_text(encoding="utf-8")
    for name in shipped:
        assert f"`{name}`" in licences, name


@pytest.mark.parametrize(("name", "family"), sorted(EXPECTED.items()))
def test_detect_family(name: str, family: Family) -> None:
    assert detect_family(_source(name)) is family


def test_detect_family_llama_and_fallbacks() -> None:
    assert detect_family(LLAMA_LIKE) is Family.LLAMA3
    # Gemma 4 (its own templates are not shipped: see tests/gemma4_like.py); Granite's
    # <|tool_call|> is another marker.
    assert detect_family(GEMMA4_LIKE) is Family.GEMMA4
    assert detect_family("{{ '<|tool_call>call:' + name + '{' }}{{ '}<tool_call|>' }}") is (
        Family.GEMMA4
    )
    # Phi-4-mini's <|tool_call|> (no Granite <|start_of_role|>) stays generic.
    assert detect_family("{{ '<|tool_call|>' }}") is Family.GENERIC
    assert detect_family("'<|start_of_role|>' ' <|tool_call|> '") is Family.GRANITE3
    assert detect_family(NEMOTRON_V2_LIKE) is Family.NEMOTRON_V2
    assert detect_family(MINIMAX_M2_LIKE) is Family.MINIMAX_M2
    # MiniMax M3 writes its parameters as tags in ]<]minimax[>[ markers: not M2's form.
    m3 = "{%- set ns_token = ']<]minimax[>[' -%}{{ ns_token + '<invoke name=\"x\">' }}"
    assert detect_family(m3) is Family.GENERIC
    assert detect_family(KIMI_K2_LIKE) is Family.KIMI_K2
    # Kimi K3 writes its calls as <|open|>call tool=".."<|sep|>..<|close|>call tags.
    k3 = "{{- '<|open|>' + tag + '<|sep|>' -}}{{- '<|close|>' + tag -}}'<|end_of_msg|>'"
    assert detect_family(k3) is Family.GENERIC
    assert detect_family("'<TOOLCALL>[' + calls + ']</TOOLCALL>'") is Family.NEMOTRON_V2
    # Command R7B, Command A and Cohere2 MoE write <|START_ACTION|>; Command R+'s
    # "Action:" and a fenced JSON list is another syntax, left generic.
    assert detect_family(COMMAND_R7B_LIKE) is Family.COMMAND_R7B
    assert detect_family("'<|START_TEXT|>' '<|START_ACTION|>['") is Family.COMMAND_R7B
    r_plus = "'<|CHATBOT_TOKEN|>' '\\nAction:\\n```json\\n[' '\"tool_name\": '"
    assert detect_family(r_plus) is Family.GENERIC
    # MiniCPM5's <function name=".."><param name=".."> (llama.cpp tells it by these and
    # "Tool usage guidelines:"); Qwen3-Coder's <function=..> is another syntax.
    assert detect_family(MINICPM5_LIKE) is Family.MINICPM5
    assert detect_family("'<function name=\"' + n + '\"><param name=\"'") is Family.MINICPM5
    assert detect_family("'<function name=\"' + n + '\">'") is Family.GENERIC
    assert detect_family("{{ '<|python_tag|>' }}") is Family.LLAMA3
    assert detect_family(None) is Family.GENERIC
    assert detect_family("") is Family.GENERIC
    assert detect_family("{{ messages[0].content }}") is Family.GENERIC
    assert detect_family(LFM2_LIKE) is Family.LFM2
    # llama.cpp's tests: LFM2-8B-A1B's template lists tools between markers and shows
    # no call; LFM2.5-Instruct's lists them plainly; LFM2.5-8B-A1B's writes calls.
    assert detect_family("'List of tools: <|tool_list_start|>[' ']<|tool_list_end|>'") is (
        Family.LFM2
    )
    assert detect_family("'List of tools: [' + tools + ']'") is Family.LFM2
    assert detect_family("'<|tool_call_start|>[' + calls + ']<|tool_call_end|>'") is Family.LFM2
    # Functionary v3.1 mentions <|python_tag|> but calls with <function=...>{json}.
    assert detect_family("'<|python_tag|>' '<function=' + name + '>'") is Family.GENERIC


def test_override_wins() -> None:
    source = _source("Qwen-Qwen2.5-7B-Instruct.jinja")
    assert detect_family(source, override="mistral") is Family.MISTRAL
    assert detect_family(None, override="gpt-oss") is Family.HARMONY
    assert detect_family(source, override="") is Family.HERMES


@pytest.mark.parametrize(
    ("name", "family"),
    [
        ("hermes", Family.HERMES),
        ("Qwen2.5", Family.HERMES),
        ("qwen3_coder", Family.QWEN3_CODER),
        ("qwen3-coder", Family.QWEN3_CODER),
        ("QWEN3.5", Family.QWEN3_CODER),
        ("llama3.1", Family.LLAMA3),
        ("deepseek-r1", Family.DEEPSEEK),
        ("deepseek-v3.1", Family.DEEPSEEK),
        ("deepseek_dsml", Family.DEEPSEEK_DSML),
        ("DeepSeek-V3.2", Family.DEEPSEEK_DSML),
        ("deepseek-v4", Family.DEEPSEEK_DSML),
        ("dsml", Family.DEEPSEEK_DSML),
        ("kimi_k2", Family.KIMI_K2),
        ("Kimi", Family.KIMI_K2),
        ("Kimi-K2-Thinking", Family.KIMI_K2),
        (" gpt-oss ", Family.HARMONY),
        ("json", Family.GENERIC),
        ("glm", Family.GLM),
        ("nemotron_v2", Family.NEMOTRON_V2),
        ("Nemotron-Nano-v2", Family.NEMOTRON_V2),
        ("nemotron-v2", Family.NEMOTRON_V2),
        ("granite3", Family.GRANITE3),
        ("granite-3", Family.GRANITE3),
        ("Granite3.3", Family.GRANITE3),
        ("GLM-4.6", Family.GLM),
        ("seed_oss", Family.SEED_OSS),
        ("Seed-OSS", Family.SEED_OSS),
        ("seed", Family.SEED_OSS),
        ("minimax_m2", Family.MINIMAX_M2),
        ("minimax-m2", Family.MINIMAX_M2),
        ("MiniMax", Family.MINIMAX_M2),
        ("gemma4", Family.GEMMA4),
        ("Gemma-4", Family.GEMMA4),
        ("gemma_4_it", Family.GEMMA4),
        ("lfm2", Family.LFM2),
        ("LFM2.5", Family.LFM2),
        ("liquid", Family.LFM2),
        ("command_r7b", Family.COMMAND_R7B),
        ("Command-R7B", Family.COMMAND_R7B),
        ("cohere", Family.COMMAND_R7B),
        ("command-a", Family.COMMAND_R7B),
        ("Cohere2_MoE", Family.COMMAND_R7B),
        ("apertus", Family.APERTUS),
        ("Apertus-8B", Family.APERTUS),
        ("swiss_ai", Family.APERTUS),
        ("minicpm5", Family.MINICPM5),
        ("MiniCPM-5", Family.MINICPM5),
        ("minicpm", Family.MINICPM5),
    ],
)
def test_family_from_name(name: str, family: Family) -> None:
    assert family_from_name(name) is family


def test_family_from_unknown_name() -> None:
    with pytest.raises(ValueError, match="unknown tool-call family 'kimi-k3'"):
        family_from_name("kimi-k3")


USER = {"role": "user", "content": "Hi"}


@pytest.mark.parametrize(
    ("name", "variables", "opens"),
    [
        ("Qwen-QwQ-32B.jinja", {"enable_thinking": True}, True),
        ("Qwen-QwQ-32B.jinja", {"enable_thinking": False}, False),
        ("deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja", {"enable_thinking": True}, True),
        ("deepseek-ai-DeepSeek-V3.1.jinja", {"thinking": True}, True),
        ("deepseek-ai-DeepSeek-V3.1.jinja", {"thinking": False}, False),
        ("llama-cpp-deepseek-r1.jinja", {}, True),
        # DeepSeek V3.2 closes an empty block unless thinking, V4 writes its close alone.
        ("deepseek-ai-DeepSeek-V3.2.jinja", {"thinking": True}, True),
        ("deepseek-ai-DeepSeek-V3.2.jinja", {}, False),
        ("deepseek-ai-DeepSeek-V4.jinja", {"thinking": True}, True),
        ("deepseek-ai-DeepSeek-V4.jinja", {"enable_thinking": False}, False),
        ("deepseek-ai-DeepSeek-V4-Flash-0731.jinja", {"enable_thinking": True}, True),
        ("Qwen-Qwen3-0.6B.jinja", {}, False),
        ("Qwen-Qwen3-0.6B.jinja", {"enable_thinking": False}, False),
        ("Qwen-Qwen2.5-7B-Instruct.jinja", {}, False),
        ("mistralai-Ministral-3-14B-Reasoning-2512.jinja", {}, False),
        ("openai-gpt-oss-120b.jinja", {}, False),
        # Gemma 4 closes an empty thought channel unless thinking; with it, the model
        # opens the channel itself.
        ("gemma4-like", {}, False),
        ("gemma4-like", {"enable_thinking": True}, False),
        ("nemotron-v2-like", {}, True),
        ("nemotron-v2-like", {"enable_thinking": False}, False),
        ("minimax-m2-like", {}, True),
        ("kimi-k2-like", {}, False),
        # Command R7B closes an empty thinking block unless thinking; with it, the model
        # opens the block itself.
        ("command-r7b-like", {}, False),
        ("command-r7b-like", {"enable_thinking": True}, False),
        ("command-r7b-like", {"reasoning": True}, True),
        # Apertus deliberates on its own: its prompt only opens the assistant's turn.
        ("Apertus-8B-Instruct.jinja", {}, False),
        ("Apertus-8B-Instruct.jinja", {"enable_thinking": True}, False),
        ("minicpm5-like", {}, False),
        ("minicpm5-like", {"enable_thinking": True}, True),
        ("minicpm5-like", {"enable_thinking": False}, False),
    ],
)
def test_prompt_opens_reasoning(name: str, variables: dict[str, Any], opens: bool) -> None:
    source = _source(name)
    prompt = ChatTemplate(source, bos_token="<s>", eos_token="</s>").render([USER], **variables)
    assert prompt_opens_reasoning(prompt, detect_family(source)) is opens


def test_prompt_opens_reasoning_markers() -> None:
    assert prompt_opens_reasoning("[INST]Hi[/INST][THINK]", Family.MISTRAL)
    assert not prompt_opens_reasoning("[INST]Hi[/INST][THINK]", Family.HERMES)
    assert prompt_opens_reasoning(
        "<|start|>assistant<|channel|>analysis<|message|>", Family.HARMONY
    )
    assert not prompt_opens_reasoning("<think></think>", Family.DEEPSEEK)
    assert prompt_opens_reasoning("<|turn>model\n<|channel>thought\n", Family.GEMMA4)
    assert not prompt_opens_reasoning("<|channel>thought\n<channel|>", Family.GEMMA4)
    assert prompt_opens_reasoning("<seed:bos>assistant\n<seed:think>", Family.SEED_OSS)
    assert not prompt_opens_reasoning("<seed:bos>assistant\n<think>", Family.SEED_OSS)
    # Cohere2 MoE's prompt opens the block unless reasoning is off.
    assert prompt_opens_reasoning("<|CHATBOT_TOKEN|><|START_THINKING|>", Family.COMMAND_R7B)
    assert not prompt_opens_reasoning("<|START_THINKING|><|END_THINKING|>", Family.COMMAND_R7B)
    assert prompt_opens_reasoning("<|assistant_start|><|inner_prefix|>", Family.APERTUS)


TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_time",
            "description": "The time in a city.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]
CALL = {
    "role": "assistant",
    "content": "",
    "tool_calls": [
        {
            "id": "abcdefghi",
            "type": "function",
            "function": {"name": "get_time", "arguments": {"city": "Paris"}},
        }
    ],
}
# End-of-turn tokens the engine stops on (and strips); the template renders them.
EOT = (
    "<|im_end|>",
    "</s>",
    "<｜end▁of▁sentence｜>",
    "<|end_of_text|>",
    "<|return|>",
    "<|end|>",
    "<|eot_id|>",
    "<turn|>",
    "<seed:eos>",
)

ROUND_TRIP = [
    "Qwen-Qwen2.5-7B-Instruct.jinja",
    "Qwen-Qwen3-0.6B.jinja",
    "ibm-granite-granite-4.0.jinja",
    "Qwen3-Coder.jinja",
    "mistralai-Mistral-Nemo-Instruct-2407.jinja",
    "Mistral-Small-3.2-24B-Instruct-2506.jinja",
    "unsloth-mistral-Devstral-Small-2507.jinja",
    "mistralai-Ministral-3-14B-Reasoning-2512.jinja",
    "deepseek-ai-DeepSeek-V3.1.jinja",
    "openai-gpt-oss-120b.jinja",
    "GLM-4.6.jinja",
    "ByteDance-Seed-OSS.jinja",
    # Not DeepSeek V3.2: without thinking its prompt ends with an empty <think></think>
    # that a past turn does not repeat (see test_deepseek_v3_2_renders_calls_it_reads).
    "deepseek-ai-DeepSeek-V4.jinja",
    "deepseek-ai-DeepSeek-V4-Flash-0731.jinja",
    # Not GLM-4.7-Flash: its prompt ends with an opened <think> that a past turn does not
    # repeat ("<|assistant|></think>..."), so no past turn extends the prompt; its call
    # form is in the corpus.
    "llama-like",
    # Not gemma4-like (nor Gemma 4's own templates): without thinking its prompt ends
    # with an empty closed thought channel that a past turn does not repeat; see
    # test_gemma4_renders_typed_values_and_reasoning_it_reads.
    "lfm2-like",
    "kimi-k2-like",
    "Apertus-8B-Instruct.jinja",
    "minicpm5-like",
]


def _rendered_turn(template: ChatTemplate, message: dict[str, Any]) -> tuple[str, str]:
    """(prompt, what the model would have written for ``message``), from the template."""
    prompt = template.render([USER], tools=TOOLS)
    full = template.render([USER, message], add_generation_prompt=False, tools=TOOLS)
    assert full.startswith(prompt)
    output = full[len(prompt) :].rstrip()
    for token in EOT:
        output = output.removesuffix(token).rstrip()
    return prompt, output


@pytest.mark.parametrize("name", ROUND_TRIP)
def test_template_renders_calls_its_family_reads(name: str) -> None:
    """A past call, as the template renders it, parses back to the same call."""
    source = _source(name)
    family = detect_family(source)
    template = ChatTemplate(source, bos_token="<s>", eos_token="</s>")
    prompt, output = _rendered_turn(template, CALL)
    message = parse_output(output, family, reasoning_started=prompt_opens_reasoning(prompt, family))
    assert [(c.name, c.arguments) for c in message.tool_calls] == [
        ("get_time", '{"city": "Paris"}')
    ], output
    assert message.content == ""
    assert not message.malformed_tool_call


@pytest.mark.parametrize("name", ROUND_TRIP)
def test_template_renders_content_its_family_reads(name: str) -> None:
    source = _source(name)
    family = detect_family(source)
    template = ChatTemplate(source, bos_token="<s>", eos_token="</s>")
    answer = {"role": "assistant", "content": "The time is 10:00."}
    prompt, output = _rendered_turn(template, answer)
    message = parse_output(output, family, reasoning_started=prompt_opens_reasoning(prompt, family))
    assert message.content == "The time is 10:00.", output
    assert message.tool_calls == ()


def test_gemma4_renders_typed_values_and_reasoning_it_reads() -> None:
    """Gemma 4's notation for every kind of value, and a past turn's reasoning, as its
    style of template renders them, parse back to the same call and reasoning."""
    arguments = {
        "city": 'Paris, "France" {x}\nline 2 — 格',
        "days": 3,
        "ratio": -0.5,
        "metric": False,
        "none": None,
        "tags": ["a", 1, [True], {"k": "v"}],
        "nested": {"inner": {"deep": [], "empty": {}}},
    }
    message = {
        "role": "assistant",
        "content": "",
        "reasoning_content": "I'm\nthinking",
        "tool_calls": [
            {
                "id": "c",
                "type": "function",
                "function": {"name": "get_time", "arguments": arguments},
            }
        ],
    }
    template = ChatTemplate(GEMMA4_LIKE, bos_token="<s>", eos_token="</s>")
    answer = {"role": "assistant", "content": "The time is 10:00."}
    outputs = []
    for past in (message, answer):
        # With thinking on, the prompt ends "<|turn>model\n", as a past turn starts.
        prompt = template.render([USER], tools=TOOLS, enable_thinking=True)
        full = template.render(
            [USER, past], add_generation_prompt=False, tools=TOOLS, enable_thinking=True
        )
        assert full.startswith(prompt)
        outputs.append(full[len(prompt) :].removesuffix("<turn|>\n"))
    parsed = parse_output(outputs[0], Family.GEMMA4)
    assert parsed.reasoning == "I'm\nthinking"
    assert [(c.name, json.loads(c.arguments)) for c in parsed.tool_calls] == [
        ("get_time", arguments)
    ], outputs[0]
    assert parsed.content == ""
    assert not parsed.malformed_tool_call
    parsed = parse_output(outputs[1], Family.GEMMA4)
    assert parsed.content == "The time is 10:00."
    assert parsed.tool_calls == ()


def test_nemotron_v2_renders_calls_it_reads() -> None:
    """Past calls as a Nemotron Nano v2-style template renders them (arguments as an
    object or as the JSON string a client sends) parse back to the same calls. Not in
    ROUND_TRIP: the prompt opens <think>, which a past turn does not repeat."""
    call: dict[str, Any] = {"name": "get_time", "arguments": '{"city": "Zürich \\"Z\\""}'}
    second = {"id": "b", "type": "function", "function": call}
    turn = {**CALL, "tool_calls": [*CALL["tool_calls"], second]}
    template = ChatTemplate(NEMOTRON_V2_LIKE, bos_token="<s>", eos_token="</s>")
    text = template.render([USER, turn], add_generation_prompt=False)
    output = text.rsplit("<SPECIAL_11>Assistant\n", 1)[1].split("\n<SPECIAL_12>")[0]
    message = parse_output(output, Family.NEMOTRON_V2)
    assert [(c.name, c.arguments) for c in message.tool_calls] == [
        ("get_time", '{"city": "Paris"}'),
        ("get_time", '{"city": "Zürich \\"Z\\""}'),
    ], output
    assert message.content == ""


# A value of every kind, as a second call's arguments (objects, as the daemon passes them).
TYPED = {"city": 'Paris "x"\nline 2', "days": 3, "metric": False, "tags": ["a", 1]}


def _with_typed_call(content: str = "") -> dict[str, Any]:
    """CALL's turn with ``content`` and a second call, of TYPED."""
    second = {"id": "b", "type": "function", "function": {"name": "get_time", "arguments": TYPED}}
    return {**CALL, "content": content, "tool_calls": [*CALL["tool_calls"], second]}


def _reads_both_calls(message: ParsedMessage, output: str, content: str = "") -> None:
    assert [(c.name, json.loads(c.arguments)) for c in message.tool_calls] == [
        ("get_time", {"city": "Paris"}),
        ("get_time", TYPED),
    ], output
    assert message.content == content
    assert not message.malformed_tool_call


def test_minimax_m2_renders_calls_it_reads() -> None:
    """Past calls as a MiniMax M2-style template renders them (strings as text, other
    values as JSON, every call in one block) parse back to the same calls. Not in
    ROUND_TRIP: the prompt opens <think>, which a past turn does not repeat."""
    template = ChatTemplate(MINIMAX_M2_LIKE, bos_token="<s>", eos_token="</s>")
    text = template.render([USER, _with_typed_call()], add_generation_prompt=False, tools=TOOLS)
    output = text.rsplit("]~b]ai\n", 1)[1].split("[e~[")[0]
    _reads_both_calls(parse_output(output, Family.MINIMAX_M2), output)


def test_deepseek_v3_2_renders_calls_it_reads() -> None:
    """Past calls as DeepSeek V3.2's template renders them (strings as text marked
    string="true", other values as JSON, every call in one block) parse back to the
    same calls, read by that mark alone (no schemas). Not in ROUND_TRIP: its prompt
    ends with <think></think> (or an opened <think>), which a past turn does not
    repeat."""
    source = _source("deepseek-ai-DeepSeek-V3.2.jinja")
    template = ChatTemplate(source, bos_token="<s>", eos_token="</s>")
    turn = _with_typed_call("Checking.")
    text = template.render([USER, turn], add_generation_prompt=False, tools=TOOLS)
    output = text.rsplit("<｜Assistant｜></think>", 1)[1].removesuffix("<｜end▁of▁sentence｜>")
    message = parse_output(output, Family.DEEPSEEK_DSML, tool_schemas={"get_time": {}})
    _reads_both_calls(message, output, "Checking.")


def test_kimi_k2_renders_calls_ids_and_reasoning_it_reads() -> None:
    """Past calls as a Kimi K2-style template renders them (ids counted over the
    conversation, a client's arguments as its JSON string) parse back to the same calls,
    their ids and the turn's reasoning."""
    arguments = '{"city": "Zürich \\"Z\\"", "days": [1, 2]}'
    second = {"id": "b", "type": "function", "function": {"name": "get_time"}}
    second["function"]["arguments"] = arguments
    result = {"role": "tool", "tool_call_id": "functions.get_time:0", "content": "10:00"}
    turn = {**_with_typed_call(), "reasoning_content": "I'm\nthinking"}
    turn["tool_calls"] = [*turn["tool_calls"], second]
    template = ChatTemplate(KIMI_K2_LIKE, bos_token="<s>", eos_token="</s>")
    text = template.render([USER, CALL, result, turn], add_generation_prompt=False)
    output = text.rsplit("<|im_assistant|>assistant<|im_middle|>", 1)[1]
    message = parse_output(output.removesuffix("<|im_end|>"), Family.KIMI_K2)
    assert message.reasoning == "I'm\nthinking"
    assert [(c.id, c.name, json.loads(c.arguments)) for c in message.tool_calls] == [
        ("functions.get_time:1", "get_time", {"city": "Paris"}),
        ("functions.get_time:2", "get_time", TYPED),
        ("functions.get_time:3", "get_time", json.loads(arguments)),
    ], output
    assert message.content == ""
    assert "## Return of functions.get_time:0\n10:00" in text


def _two_calls_read_back(
    source: str, family: Family, arguments: dict[str, Any], **parse: Any
) -> str:
    """A past turn of two calls (CALL's, then get_time with ``arguments``), as ``source``
    renders it, parses back to the same calls and nothing else; returns the turn's text
    (after the prompt that opened it)."""
    second = {"id": "b", "type": "function", "function": {"name": "get_time"}}
    second["function"]["arguments"] = arguments
    turn = {**CALL, "tool_calls": [*CALL["tool_calls"], second]}
    template = ChatTemplate(source, bos_token="<s>", eos_token="</s>")
    prompt = template.render([USER], tools=TOOLS)
    text = template.render([USER, turn], add_generation_prompt=False, tools=TOOLS)
    output = text[len(prompt.removesuffix("<think>\n")) :]
    for end in ("[e~[", "<|im_end|>"):
        output = output.split(end)[0]
    message = parse_output(output, family, **parse)
    assert [(c.name, json.loads(c.arguments)) for c in message.tool_calls] == [
        ("get_time", {"city": "Paris"}),
        ("get_time", arguments),
    ], output
    assert message.content == ""
    assert not message.malformed_tool_call
    return output


def test_command_r7b_renders_calls_it_reads() -> None:
    """Past calls as a Command R7B-style template renders them (numbered, one a line,
    arguments as an object or as the JSON string a client sends, after the turn's
    thoughts) and a past answer parse back to the same. Not in ROUND_TRIP: the prompt
    closes an empty thinking block that a past turn does not repeat."""
    arguments = {"city": 'Paris "x"\nline 2 <|END_ACTION|>', "days": 3, "tags": ["a", None]}
    second = {"id": "b", "type": "function", "function": {"name": "get_time"}}
    second["function"]["arguments"] = json.dumps(arguments)
    turn = {**CALL, "reasoning_content": "I'm\nthinking"}
    turn["tool_calls"] = [*CALL["tool_calls"], second]
    answer = {"role": "assistant", "content": "The time is 10:00."}
    template = ChatTemplate(COMMAND_R7B_LIKE, bos_token="<BOS_TOKEN>", eos_token="</s>")
    text = template.render([USER, turn, answer], add_generation_prompt=False, tools=TOOLS)
    outputs = [t.split("<|END_OF_TURN_TOKEN|>")[0] for t in text.split("<|CHATBOT_TOKEN|>")[1:]]
    call_turn = parse_output(outputs[0], Family.COMMAND_R7B)
    assert call_turn.reasoning == "I'm\nthinking"
    assert [(c.name, json.loads(c.arguments)) for c in call_turn.tool_calls] == [
        ("get_time", {"city": "Paris"}),
        ("get_time", arguments),
    ], outputs[0]
    assert call_turn.content == ""
    assert not call_turn.malformed_tool_call
    said = parse_output(outputs[1], Family.COMMAND_R7B)
    assert said.content == "The time is 10:00."
    assert said.tool_calls == ()


def test_minicpm5_renders_calls_it_reads() -> None:
    """Past calls as a MiniCPM5-style template renders them (a string in CDATA when it
    holds <, & or a newline, other values printed in Python's spelling: True, None,
    ['a', 1]) parse back to the same calls, read by the tools' schemas."""
    arguments = {"city": 'Paris "x" & <b>\nline 2', "days": 3, "metric": False, "tags": ["a", None]}
    schema = {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "days": {"type": "integer"},
            "metric": {"type": "boolean"},
            "tags": {"type": "array"},
        },
    }
    schemas = {"get_time": schema}
    turn = _two_calls_read_back(MINICPM5_LIKE, Family.MINICPM5, arguments, tool_schemas=schemas)
    assert "<![CDATA[Paris" in turn and "False" in turn and "['a', None]" in turn, turn
