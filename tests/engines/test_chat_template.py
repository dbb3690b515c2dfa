import time
from pathlib import Path

import pytest

from appliance.engines.chat_prompt import developer_as_system, opens_reasoning, render_prompt
from appliance.engines.chat_template import ChatTemplate, ChatTemplateError
from appliance.parsing import detect_family
from appliance.tiny_model import CHATML_TEMPLATE
from tests.conftest import THINK_TEMPLATE
from tests.parsing.test_families import COMMAND_R7B_LIKE

CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

LLAMA3 = """{{- bos_token }}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}
{{- "<|start_header_id|>system<|end_header_id|>\\n\\n" }}
{{- "Today Date: " + date_string + "\\n\\n" if date_string is defined else "" }}
{{- system_message }}
{{- "<|eot_id|>" }}
{%- for message in messages %}
    {%- if not (message.role == 'user' or message.role == 'assistant') %}
        {{- raise_exception("Only user and assistant roles are supported after system") }}
    {%- endif %}
    {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' }}
    {{- message['content'] | trim + '<|eot_id|>' }}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}
{%- endif %}
"""

THINKING = (
    "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>"
    "{% if enable_thinking is defined and not enable_thinking %}<think>\n\n</think>\n\n"
    "{% else %}<think>\n{% endif %}{% endif %}"
)

MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi"},
]


def test_chatml_renders() -> None:
    out = ChatTemplate(CHATML).render(MESSAGES)
    assert out == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    no_prompt = ChatTemplate(CHATML).render(MESSAGES, add_generation_prompt=False)
    assert not no_prompt.endswith("assistant\n")


def test_llama3_style_with_bos_token_and_extra_variables() -> None:
    tpl = ChatTemplate(LLAMA3, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>")
    out = tpl.render(MESSAGES, date_string="26 Jul 2024")
    assert out == (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
        "Today Date: 26 Jul 2024\n\nBe brief.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )


def test_raise_exception_carries_the_templates_message() -> None:
    tpl = ChatTemplate(LLAMA3)
    with pytest.raises(ChatTemplateError, match="Only user and assistant roles"):
        tpl.render([{"role": "tool", "content": "x"}])


def test_huggingface_helpers() -> None:
    tpl = ChatTemplate(
        "{{ tools|tojson }}|{{ tools|tojson(indent=2, sort_keys=true) }}|"
        "{{ strftime_now('%Y') }}|{% for i in range(5) %}{% if i == 2 %}{% break %}{% endif %}"
        "{{ i }}{% endfor %}|{% generation %}{{ 'gen' }}{% endgeneration %}"
    )
    out = tpl.render([], tools={"b": "<é>", "a": 1})
    parts = out.split("|")
    assert parts[0] == '{"b": "<é>", "a": 1}'
    assert parts[1] == '{\n  "a": 1,\n  "b": "<é>"\n}'
    assert parts[2] == time.strftime("%Y")
    assert parts[3:] == ["01", "gen"]


def test_undefined_variables_render_empty_as_in_jinja() -> None:
    assert ChatTemplate("[{{ nothing }}]").render([]) == "[]"


def test_compile_errors() -> None:
    with pytest.raises(ChatTemplateError, match="does not compile"):
        ChatTemplate("{% for m in messages %}")
    with pytest.raises(ChatTemplateError, match="does not compile"):
        ChatTemplate("{{ x | no_such_filter }}")


def test_render_errors_are_chat_template_errors() -> None:
    with pytest.raises(ChatTemplateError, match="failed to render"):
        ChatTemplate("{{ messages[0]['content'].nope() }}").render(MESSAGES)
    with pytest.raises(ChatTemplateError, match="recursed"):
        ChatTemplate("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}").render([])


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ ''.__class__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ cycler.__init__.__globals__.os.system('touch /tmp/pwned') }}",
        "{{ joiner.__init__.__globals__['__builtins__'] }}",
        "{{ messages.__class__.__base__.__subclasses__() }}",
        "{{ namespace.__init__ }}",
        "{{ raise_exception.__globals__ }}",
        "{{ self._TemplateReference__context }}",
        "{% set x = messages.extend([1]) %}",
        "{% set x = messages.insert(0, 1) %}",
        "{{ messages[0].update({'role': 'x'}) }}",
        "{{ messages[0].clear() }}",
    ],
)
def test_sandbox_escapes_fail_and_reach_nothing(source: str) -> None:
    messages = [{"role": "user", "content": "hi"}]
    with pytest.raises(ChatTemplateError):
        ChatTemplate(source).render(messages)
    assert messages == [{"role": "user", "content": "hi"}]


def test_a_template_grows_and_drains_its_own_lists_only() -> None:
    """llama.cpp's template engine takes list.append and list.pop, and Kimi K2's templates
    queue their call ids with them; the request's own data never changes."""
    queue = (
        "{%- set q = namespace(ids=[]) -%}"
        "{%- for m in messages %}{% set _ = q.ids.append(m.content) %}{% endfor -%}"
        "{{ q.ids.pop(0) }},{{ q.ids | length }};"
        "{{ messages.pop().content }}{{ messages[0].tool_calls.append(9) }}"
    )
    messages = [
        {"role": "user", "content": "a", "tool_calls": [1]},
        {"role": "user", "content": "b"},
    ]
    template = ChatTemplate(queue)
    assert template.render(messages) == "a,1;bNone"
    assert template.render(messages) == "a,1;bNone"  # each render from the request's data
    assert messages == [
        {"role": "user", "content": "a", "tool_calls": [1]},
        {"role": "user", "content": "b"},
    ]


def test_a_loop_of_appends_ends_with_the_time_budget() -> None:
    grow = "{% set x = [] %}{% for i in range(100000) %}{% for j in range(100000) %}"
    grow += "{% set _ = x.append(j) %}{% endfor %}{% endfor %}"
    start = time.monotonic()
    with pytest.raises(ChatTemplateError, match="too long"):
        ChatTemplate(grow, timeout_s=0.3).render([])
    assert time.monotonic() - start < 3


@pytest.mark.parametrize(
    "source",
    [
        "{{ 'a' * 100000000000 }}",
        "{{ [0] * 100000000000 }}",
        "{{ 9 ** 99999999999 }}",
        "{{ '%99999999999s' % 'a' }}",
        "{{ '%99999999999s'|format('a') }}",
        "{{ '{:99999999999}'.format(1) }}",
        "{{ 'x'.ljust(99999999999) }}",
        "{{ 'x'|center(99999999999) }}",
        "{{ 'x'|indent(99999999999, true) }}",
        "{% for i in range(100000) %}{{ 'y' * 1000 }}{% endfor %}",
        "{{ range(10 ** 9)|list }}",
    ],
)
def test_runaway_output_is_capped(source: str) -> None:
    start = time.monotonic()
    with pytest.raises(ChatTemplateError):
        ChatTemplate(source).render([])
    assert time.monotonic() - start < 5


def test_output_cap_is_configurable() -> None:
    tpl = ChatTemplate("{% for m in messages %}{{ m.content }}{% endfor %}", max_output_chars=10)
    assert tpl.render([{"role": "user", "content": "x" * 10}]) == "x" * 10
    with pytest.raises(ChatTemplateError, match="over 10 characters"):
        tpl.render([{"role": "user", "content": "x" * 11}])


def test_runaway_loops_hit_the_time_budget() -> None:
    tpl = ChatTemplate(
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        timeout_s=0.3,
    )
    start = time.monotonic()
    with pytest.raises(ChatTemplateError, match="too long"):
        tpl.render([])
    assert time.monotonic() - start < 3


def test_opens_reasoning() -> None:
    tpl = ChatTemplate(THINKING)
    assert opens_reasoning(tpl.render(MESSAGES))
    assert not opens_reasoning(tpl.render(MESSAGES, enable_thinking=False))
    assert not opens_reasoning(ChatTemplate(CHATML).render(MESSAGES))
    assert opens_reasoning("<｜Assistant｜><think>\n")
    assert not opens_reasoning("<think>\nx</think>\n")
    assert not opens_reasoning("")


def test_with_tools_the_family_says_what_opens_reasoning() -> None:
    """Cohere2 MoE's prompt opens <|START_THINKING|>: with tools, the family's parser
    reads the output and knows the block; without, the <think> splitter does not."""
    tpl = ChatTemplate(COMMAND_R7B_LIKE).bound({"reasoning": True})
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    _, started = render_prompt(tpl, MESSAGES, [tool], family="command_r7b")
    assert started
    assert not render_prompt(tpl, MESSAGES, family="command_r7b")[1]
    closed = ChatTemplate(COMMAND_R7B_LIKE)  # Command R7B's: an empty block, closed
    assert not render_prompt(closed, MESSAGES, [tool], family="command_r7b")[1]
    assert opens_reasoning("<|CHATBOT_TOKEN|><|START_THINKING|>", "command_r7b")
    assert not opens_reasoning("<|CHATBOT_TOKEN|><|START_THINKING|>")
    assert opens_reasoning("<|im_start|>assistant\n<think>\n", "hermes")


# A final assistant message is a prefill: the prompt ends with its text, so the answer
# continues it (Anthropic's prefill, llama-server's for chat completions).
PREFILL = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Count from 1 to 20."},
    {"role": "assistant", "content": "1, 2, 3,"},
]
TEMPLATES = sorted((Path(__file__).parents[1] / "fixtures" / "chat_templates").glob("*.jinja"))


def test_a_final_assistant_message_is_continued() -> None:
    prompt, reasoning = render_prompt(ChatTemplate(CHATML_TEMPLATE), PREFILL)
    assert prompt == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nCount from 1 to 20.<|im_end|>\n"
        "<|im_start|>assistant\n1, 2, 3,"
    )
    assert not reasoning
    # A template that opens <think> for the answer: the prefill is the answer's text.
    think, reasoning = render_prompt(ChatTemplate(THINK_TEMPLATE), PREFILL)
    assert think == prompt and not reasoning


def test_the_prefill_is_written_as_given() -> None:
    """Where the template trims the content (Llama 3) or the text is in its end-of-turn
    marker (`|` in `<|eot_id|>`), the prompt still ends with the text as sent."""
    template = ChatTemplate(LLAMA3)
    for text in ("  {", "Sure: ", "|", "<|eot_id|"):
        prompt, _ = render_prompt(template, [*PREFILL[:2], {"role": "assistant", "content": text}])
        assert prompt.endswith("Count from 1 to 20.<|eot_id|>" + ASSISTANT_HEADER + text)


ASSISTANT_HEADER = "<|start_header_id|>assistant<|end_header_id|>\n\n"


def test_finished_assistant_turns_are_not_continued() -> None:
    """A final assistant message with tool calls, or with no text, is a finished turn: the
    answer starts a new one, as before."""
    template = ChatTemplate(CHATML_TEMPLATE)
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    for last in (
        {"role": "assistant", "content": "Let me look.", "tool_calls": [call]},
        {"role": "assistant", "content": ""},
    ):
        prompt, _ = render_prompt(template, [*PREFILL[:2], last])
        assert prompt.endswith("<|im_end|>\n<|im_start|>assistant\n")


def test_a_template_that_hides_the_final_turn_gets_the_text_after_a_new_turn() -> None:
    """llama-server's way when the template shows no final assistant turn (or refuses one):
    the generation prompt, then the text."""
    refuses = CHATML_TEMPLATE.replace(
        "{% for message in messages %}",
        "{% for message in messages %}{% if loop.last and message['role'] == 'assistant' %}"
        "{{ raise_exception('ends with the assistant') }}{% endif %}",
    )
    hides = CHATML_TEMPLATE.replace(
        "{% for message in messages %}",
        "{% for message in messages if message['role'] != 'assistant' %}",
    )
    for source in (refuses, hides):
        prompt, _ = render_prompt(ChatTemplate(source), PREFILL)
        assert prompt.endswith("Count from 1 to 20.<|im_end|>\n<|im_start|>assistant\n1, 2, 3,")
    # A reasoning template's generation prompt opens <think>: the prefill is the answer,
    # after a closed block (else the model's text after it read as reasoning).
    hides_think = THINK_TEMPLATE.replace(
        "{% for message in messages %}",
        "{% for message in messages if message['role'] != 'assistant' %}",
    )
    prompt, reasoning = render_prompt(ChatTemplate(hides_think), PREFILL)
    assert prompt.endswith("assistant\n<think>\n\n</think>\n\n1, 2, 3,"), prompt[-60:]
    assert not reasoning


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.stem)
def test_every_shipped_template_continues_a_prefill(path: Path) -> None:
    """With and without tools (shown by the template, or described for it): the prompt
    ends with the prefill."""
    source = path.read_text()
    template = ChatTemplate(source, bos_token="<s>", eos_token="</s>")
    family = detect_family(source).value
    prompt, _ = render_prompt(template, PREFILL)
    assert prompt.endswith("1, 2, 3,") and prompt.count("1, 2, 3,") == 1
    tool = {
        "type": "function",
        "function": {
            "name": "count_up",
            "description": "Counts",
            "parameters": {"type": "object", "properties": {}},
        },
    }
    with_tools, _ = render_prompt(template, PREFILL, [tool], family=family)
    assert with_tools.endswith("1, 2, 3,") and "count_up" in with_tools


def test_the_developer_role_is_a_system_message_unless_the_template_knows_it() -> None:
    """OpenAI's newer clients send `developer`; a template without that role (most) gets
    it as `system`, as llama-server maps it. gpt-oss's template has a developer turn."""
    messages = [
        {"role": "developer", "content": "Be terse."},
        {"role": "user", "content": "hi"},
    ]
    as_system = [{"role": "system", "content": "Be terse."}, messages[1]]
    chatml = ChatTemplate(CHATML_TEMPLATE)
    assert render_prompt(chatml, messages) == render_prompt(chatml, as_system)
    assert "developer" not in render_prompt(chatml, messages)[0]
    for name in ("gpt-oss", "DeepSeek-V3.2"):
        native = next(t for t in TEMPLATES if name in t.name).read_text()
        assert developer_as_system(native, messages) == messages


def test_a_missing_value_added_to_text_is_empty_text() -> None:
    """As llama.cpp's template engine reads `+`: Apertus's template adds every tool's
    description to its text, and a client may leave the optional description out (a 400
    before). A missing value added to a number still fails."""
    source = "{% for t in tools %}{{ t.name + ': ' + t.description + '|' + nothing }}{% endfor %}"
    tpl = ChatTemplate(source)
    assert tpl.render([], tools=[{"name": "f"}], nothing=None) == "f: |"
    with pytest.raises(ChatTemplateError, match="undefined"):
        ChatTemplate("{{ 1 + missing }}").render([])
    [path] = [p for p in TEMPLATES if p.name == "Apertus-8B-Instruct.jinja"]
    apertus = ChatTemplate(path.read_text())
    tools = [{"type": "function", "function": {"name": "get_time", "parameters": {}}}]
    prompt = apertus.render([{"role": "user", "content": "Hi"}], tools=tools)
    assert "get_time" in prompt
