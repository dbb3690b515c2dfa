"""Output families, and choosing one from a chat template's source.

A model's tool-call syntax is fixed by its training, and its chat template is the one
place that shows it (the template renders past calls back into the prompt), so the
markers a template contains name the family. An explicit name overrides.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Family", "detect_family", "family_from_name", "prompt_opens_reasoning"]


class Family(StrEnum):
    HERMES = "hermes"  # <tool_call>{json}</tool_call>: Hermes 2/3, Qwen2.5, Qwen3, QwQ
    QWEN3_CODER = "qwen3_coder"  # <tool_call><function=..><parameter=..>: Qwen3-Coder, 3.5
    SEED_OSS = "seed_oss"  # <seed:tool_call><function=..><parameter=..>: Seed-OSS
    MINIMAX_M2 = "minimax_m2"  # <minimax:tool_call><invoke name=..><parameter name=..>: M2
    GLM = "glm"  # <tool_call>name<arg_key>..</arg_key><arg_value>..</arg_value>: GLM 4.5-4.7
    GEMMA4 = "gemma4"  # <|tool_call>call:name{key:value}<tool_call|>: Gemma 4
    LFM2 = "lfm2"  # <|tool_call_start|>[name(key=value, ...)]<|tool_call_end|>: LFM2, LFM2.5
    NEMOTRON_V2 = "nemotron_v2"  # <TOOLCALL>[{json}, ...]</TOOLCALL>: Nemotron Nano v2
    GRANITE3 = "granite3"  # <|tool_call|>[{json}, ...] (no close): Granite 3.x
    COMMAND_R7B = "command_r7b"  # <|START_ACTION|>[{"tool_name", ..}]: R7B, Command A
    APERTUS = "apertus"  # <|tools_prefix|>[{"NAME": {args}}, ...]<|tools_suffix|>: Apertus
    MINICPM5 = "minicpm5"  # <function name=".."><param name="..">..</param>: MiniCPM5
    LLAMA3 = "llama3"  # {"name", "parameters"} / <|python_tag|>: Llama 3.1-3.3
    MISTRAL = "mistral"  # [TOOL_CALLS]: Mistral, Mixtral, Nemo, Small, Devstral, Magistral
    DEEPSEEK = "deepseek"  # <｜tool▁calls▁begin｜>: DeepSeek R1, V3, V3.1
    DEEPSEEK_DSML = "deepseek_dsml"  # <｜DSML｜invoke name=..><｜DSML｜parameter ..>: V3.2, V4
    KIMI_K2 = "kimi_k2"  # <|tool_call_begin|>functions.NAME:IDX<|tool_call_argument_begin|>{json}
    HARMONY = "harmony"  # <|channel|>: gpt-oss
    GENERIC = "generic"  # bare JSON calls (and <tool_call> tags) for anything else


_ALIASES: dict[str, Family] = {
    "qwen": Family.HERMES,
    "qwen2": Family.HERMES,
    "qwen2.5": Family.HERMES,
    "qwen3": Family.HERMES,
    "qwq": Family.HERMES,
    "nous": Family.HERMES,
    "qwen3-coder": Family.QWEN3_CODER,
    "qwen3.5": Family.QWEN3_CODER,
    "xml": Family.QWEN3_CODER,
    "llama": Family.LLAMA3,
    "llama3.1": Family.LLAMA3,
    "llama3.2": Family.LLAMA3,
    "llama3.3": Family.LLAMA3,
    "seed": Family.SEED_OSS,
    "seed-oss-36b": Family.SEED_OSS,
    "minimax": Family.MINIMAX_M2,
    "minimax-m2.1": Family.MINIMAX_M2,
    "glm-4.5": Family.GLM,
    "glm-4.6": Family.GLM,
    "glm-4.7": Family.GLM,
    "glm4": Family.GLM,
    "gemma-4": Family.GEMMA4,
    "gemma4-it": Family.GEMMA4,
    "gemma-4-it": Family.GEMMA4,
    "lfm": Family.LFM2,
    "lfm2.5": Family.LFM2,
    "liquid": Family.LFM2,
    "nemotron-nano-v2": Family.NEMOTRON_V2,
    "nemotron-v2": Family.NEMOTRON_V2,
    "nemotron-nano-2": Family.NEMOTRON_V2,
    "granite-3": Family.GRANITE3,
    "granite3.3": Family.GRANITE3,
    "granite-3.3": Family.GRANITE3,
    "cohere": Family.COMMAND_R7B,
    "command-a": Family.COMMAND_R7B,
    "command-r7b-12-2024": Family.COMMAND_R7B,
    "cohere2": Family.COMMAND_R7B,
    "cohere2-moe": Family.COMMAND_R7B,
    "apertus-8b": Family.APERTUS,
    "apertus-70b": Family.APERTUS,
    "swiss-ai": Family.APERTUS,
    "minicpm": Family.MINICPM5,
    "minicpm-5": Family.MINICPM5,
    "deepseek-r1": Family.DEEPSEEK,
    "deepseek-v3": Family.DEEPSEEK,
    "deepseek-v3.1": Family.DEEPSEEK,
    "dsml": Family.DEEPSEEK_DSML,
    "deepseek-v3.2": Family.DEEPSEEK_DSML,
    "deepseek-v4": Family.DEEPSEEK_DSML,
    "kimi": Family.KIMI_K2,
    "kimi-k2-instruct": Family.KIMI_K2,
    "kimi-k2-thinking": Family.KIMI_K2,
    "gpt-oss": Family.HARMONY,
    "json": Family.GENERIC,
}

# Markers of formats this package does not read; their templates get GENERIC so a
# lookalike marker (GLM's <tool_call>name<arg_key>...) is not misread as Hermes.
_FOREIGN = (
    "<arg_key>",  # Ling 3.0 (GLM's markers with <role> sections: read as GLM above)
    '<invoke name="',  # MiniMax M3 (]<]minimax[>[<invoke ..>, its parameters as tags)
    "<|tool_call|>",  # Phi-4-mini (Granite 3's, with <|start_of_role|>, is read above)
    "functools[",  # FireFunction
)


def family_from_name(name: str) -> Family:
    """A family by its value or a common alias (``"qwen2.5"``, ``"gpt-oss"``, ...)."""
    key = name.strip().lower().replace("_", "-")
    for family in Family:
        if key == family.value.replace("_", "-"):
            return family
    if key in _ALIASES:
        return _ALIASES[key]
    known = ", ".join(sorted({f.value for f in Family} | set(_ALIASES)))
    raise ValueError(f"unknown tool-call family {name!r}; known: {known}")


def detect_family(template: str | None, override: str | None = None) -> Family:
    """The family of a model from its chat template source (Jinja text).

    ``override`` (a family name or alias) wins; no template, or one with no known
    markers, gives GENERIC.
    """
    if override:
        return family_from_name(override)
    t = template or ""
    if "<|channel|>" in t and "<|message|>" in t:
        return Family.HARMONY
    if "tool▁calls▁begin" in t or "tool▁call▁begin" in t:
        return Family.DEEPSEEK
    if "｜DSML｜" in t:
        # DeepSeek V3.2 and V4 name the token (dsml_token) and build their tags from it.
        return Family.DEEPSEEK_DSML
    if "[TOOL_CALLS]" in t:
        return Family.MISTRAL
    if "<arg_key>" in t and "<arg_value>" in t and "<role>ASSISTANT</role>" not in t:
        return Family.GLM
    if "<|tool_call>" in t and "<tool_call|>" in t:
        return Family.GEMMA4
    if _is_lfm2(t):
        return Family.LFM2
    if "<TOOLCALL>" in t:
        return Family.NEMOTRON_V2
    if "<|tool_call|>" in t and "<|start_of_role|>" in t:
        # Granite 3.x writes roles as <|start_of_role|>..<|end_of_role|>; Phi-4-mini,
        # whose tokenizer has <|tool_call|> too, writes <|user|>, <|assistant|>.
        return Family.GRANITE3
    if "<|tool_calls_section_begin|>" in t and "<|tool_call_begin|>" in t:
        return Family.KIMI_K2  # Kimi K3 writes calls in <|open|>call ..<|sep|> tags: generic
    if "<seed:tool_call>" in t:
        return Family.SEED_OSS
    if "<minimax:tool_call>" in t:
        return Family.MINIMAX_M2
    if "<|START_ACTION|>" in t:
        # Command R7B, Command A and Cohere2 MoE; Command R+'s "Action:" with a fenced
        # JSON list stays generic.
        return Family.COMMAND_R7B
    if "<|tools_prefix|>" in t:
        return Family.APERTUS
    if '<function name="' in t and '<param name="' in t:
        return Family.MINICPM5
    if any(marker in t for marker in _FOREIGN):
        return Family.GENERIC
    if "<tool_call>" in t:
        if "<function=" in t and "<parameter=" in t:
            return Family.QWEN3_CODER
        return Family.HERMES
    if "<|python_tag|>" in t and "<function=" not in t:
        return Family.LLAMA3
    if "<|start_header_id|>" in t and '"parameters"' in t:
        return Family.LLAMA3
    return Family.GENERIC


def _is_lfm2(t: str) -> bool:
    """LFM2 writes calls with <|tool_call_start|>, lists tools between
    <|tool_list_start|> and <|tool_list_end|> (LFM2-8B-A1B's template shows no call at
    all) or, in LFM2.5-Instruct's template, as a plain "List of tools: [" with neither
    (llama.cpp's is_lfm2_template and its LFM2.5 check)."""
    if "<|tool_call_start|>" in t:
        return True
    if "<|tool_list_start|>" in t and "<|tool_list_end|>" in t:
        return True
    return "List of tools: [" in t


_OPENERS: dict[Family, tuple[str, ...]] = {
    Family.MISTRAL: ("[THINK]", "<think>"),
    Family.HARMONY: ("<|channel|>analysis<|message|>",),
    Family.GEMMA4: ("<|channel>thought",),
    Family.SEED_OSS: ("<seed:think>",),
    Family.COMMAND_R7B: ("<|START_THINKING|>",),
    Family.APERTUS: ("<|inner_prefix|>",),
}


def reasoning_openers(family: Family) -> tuple[str, ...]:
    return _OPENERS.get(family, ("<think>",))


def prompt_opens_reasoning(prompt: str, family: Family) -> bool:
    """True when a rendered prompt ends inside an open reasoning block.

    Templates such as QwQ, DeepSeek R1 and Qwen3.5 end the generation prompt with
    ``<think>`` so the output starts inside the reasoning; pass the result as
    ``reasoning_started``.
    """
    tail = prompt.rstrip()
    return any(tail.endswith(tag) for tag in reasoning_openers(family))
