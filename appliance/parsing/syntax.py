"""Each family's markers: reasoning tags, tool-call openers and how a region reads."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass

from appliance.parsing.calls import (
    CALL_BEGIN,
    DSML,
    DSML_TAGS,
    KIMI_CALL,
    KIMI_SECTION,
    KIMI_SECTION_END,
    MINIMAX_TAGS,
    InvokeTags,
    RawCall,
    ToolSchemas,
    apertus_calls,
    calls_from_json_text,
    command_r7b_calls,
    deepseek_calls,
    glm_calls,
    invoke_calls,
    kimi_calls,
    python_tag_calls,
    xml_calls,
)
from appliance.parsing.families import Family, family_from_name
from appliance.parsing.minicpm5_calls import MINICPM5_CALL, MINICPM5_CALL_END, minicpm5_call
from appliance.parsing.notation_calls import (
    GEMMA_CALL,
    GEMMA_CALL_END,
    LFM2_CALL,
    LFM2_CALL_END,
    gemma4_calls,
    lfm2_calls,
)
from appliance.parsing.regions import (
    BareJson,
    CdataRegion,
    JsonRegion,
    MistralRegion,
    PythonTagRegion,
    Region,
    TaggedRegion,
)

__all__ = ["Context", "Syntax", "marks_reasoning_otherwise", "syntax_for"]

THINK = ("<think>", "</think>")
TOOL_CALL, TOOL_CALL_END = "<tool_call>", "</tool_call>"
SEED_THINK = ("<seed:think>", "</seed:think>")
SEED_CALL, SEED_CALL_END = "<seed:tool_call>", "</seed:tool_call>"
MINIMAX_CALL = "<minimax:tool_call>"
FUNCTION, FUNCTION_END = "<function=", "</function>"
GEMMA_THOUGHT = ("<|channel>thought", "<channel|>")
NEMOTRON_CALL, NEMOTRON_CALL_END = "<TOOLCALL>", "</TOOLCALL>"
GRANITE_CALL = "<|tool_call|>"
COHERE_THINK = ("<|START_THINKING|>", "<|END_THINKING|>")
COHERE_ACTION, COHERE_ACTION_END = "<|START_ACTION|>", "<|END_ACTION|>"
# Command R7B answers in <|START_RESPONSE|>, Cohere2 MoE in <|START_TEXT|>: dropped.
COHERE_ANSWER = ("<|START_RESPONSE|>", "<|END_RESPONSE|>", "<|START_TEXT|>", "<|END_TEXT|>")
APERTUS_INNER = ("<|inner_prefix|>", "<|inner_suffix|>")
APERTUS_CALL, APERTUS_CALL_END = "<|tools_prefix|>", "<|tools_suffix|>"
DEEPSEEK_BEGINS = (
    "<｜tool▁calls▁begin｜>",
    "<｜tool_calls_begin｜>",
    "<｜tool calls begin｜>",
    "<｜tool\\_calls\\_begin｜>",
    "<｜tool▁calls｜>",
)
DEEPSEEK_ENDS = ("<｜tool▁calls▁end｜>", "<｜tool_calls_end｜>", "<｜tool calls end｜>")
# DeepSeek V3.2 opens its block with function_calls, V4 with tool_calls.
DSML_BLOCKS = (f"<{DSML}function_calls>", f"<{DSML}tool_calls>")


@dataclass(frozen=True, slots=True)
class Context:
    """What a parse knows about the request's tools."""

    known_tools: Collection[str] | None
    schemas: ToolSchemas


@dataclass(frozen=True, slots=True)
class Syntax:
    """``think``: (open, close) reasoning tags. ``openers``: markers that start a
    tool-call region. ``bare``: calls as bare JSON at the start of the content.
    ``after_call``: leftovers dropped right after a call (a stray ``</tool_call>``,
    Llama's ``;`` between calls). ``id_length``: 9 for Mistral templates, which
    refuse other ids; None for ``call_`` ids. ``later_reasoning``: a reasoning block
    may open in the content too, not only at the start (Gemma 4 writes an empty one
    at the end of some answers). ``strays``: markers dropped from the content (Gemma
    4's unmatched ``<channel|>``, an empty ``<|channel>``)."""

    think: tuple[tuple[str, str], ...]
    openers: tuple[str, ...]
    region: Callable[[str, Context], Region]
    bare: BareJson | None = None
    after_call: tuple[str, ...] = ()
    id_length: int | None = None
    later_reasoning: bool = False
    strays: tuple[str, ...] = ()


def _json_between(
    close: str, reader: Callable[[str], list[RawCall] | None]
) -> Callable[[str, Context], Region]:
    """A region of JSON calls from its opener to ``close`` (a marker inside a JSON string
    does not end it; the opener again before the close does, as a broken call)."""

    def region(opener: str, ctx: Context) -> Region:
        return TaggedRegion(
            opener,
            (close,),
            lambda inner, _closed: reader(inner),
            json_body=True,
            restarts=(opener,),
        )

    return region


_json_tag = _json_between(TOOL_CALL_END, calls_from_json_text)


def _xml_tag(opener: str, ctx: Context) -> Region:
    if opener == TOOL_CALL:
        return TaggedRegion(
            opener,
            (TOOL_CALL_END,),
            lambda inner, _closed: xml_calls(inner, ctx.schemas),
            restarts=(TOOL_CALL,),
        )
    return TaggedRegion(
        opener,
        (FUNCTION_END,),
        lambda inner, closed: (
            xml_calls(FUNCTION + inner + FUNCTION_END, ctx.schemas) if closed else None
        ),
        restarts=(FUNCTION, TOOL_CALL),
    )


def _seed_tag(opener: str, ctx: Context) -> Region:
    # Qwen3-Coder's calls in Seed's tags, each value written with no newline around it.
    return TaggedRegion(
        opener,
        (SEED_CALL_END,),
        lambda inner, _closed: xml_calls(inner, ctx.schemas, strip=False),
        restarts=(SEED_CALL,),
    )


def _invoke_block(opener: str, ctx: Context, tags: InvokeTags, restarts: tuple[str, ...]) -> Region:
    """A block of <invoke name=..><parameter name=..>value</parameter></invoke> calls,
    values kept whole, closed by the opener's closing tag."""
    return TaggedRegion(
        opener,
        ("</" + opener[1:],),
        lambda inner, _closed: invoke_calls(inner, ctx.schemas, tags),
        restarts=restarts,
    )


def _minimax_tag(opener: str, ctx: Context) -> Region:
    return _invoke_block(opener, ctx, MINIMAX_TAGS, (MINIMAX_CALL,))


def _dsml_block(opener: str, ctx: Context) -> Region:
    return _invoke_block(opener, ctx, DSML_TAGS, DSML_BLOCKS)


def _glm_tag(opener: str, ctx: Context) -> Region:
    return TaggedRegion(
        opener,
        (TOOL_CALL_END,),
        lambda inner, _closed: glm_calls(inner, ctx.schemas),
        restarts=(TOOL_CALL,),
    )


def _gemma4_tag(opener: str, ctx: Context) -> Region:
    return TaggedRegion(
        opener,
        (GEMMA_CALL_END,),
        lambda inner, _closed: gemma4_calls(inner),
        restarts=(GEMMA_CALL,),
    )


def _lfm2(opener: str, ctx: Context) -> Region:
    return TaggedRegion(
        opener,
        (LFM2_CALL_END,),
        lambda inner, _closed: lfm2_calls(inner),
        restarts=(LFM2_CALL,),
    )


_nemotron = _json_between(NEMOTRON_CALL_END, calls_from_json_text)


def _granite(opener: str, ctx: Context) -> Region:
    return JsonRegion(opener, calls_from_json_text)


_command_r7b = _json_between(COHERE_ACTION_END, command_r7b_calls)
_apertus = _json_between(APERTUS_CALL_END, apertus_calls)


def _minicpm5(opener: str, ctx: Context) -> Region:
    return CdataRegion(
        opener, MINICPM5_CALL_END, lambda inner, _closed: minicpm5_call(inner, ctx.schemas)
    )


def _deepseek(opener: str, ctx: Context) -> Region:
    prefix = opener if opener == CALL_BEGIN else ""
    return TaggedRegion(
        opener,
        DEEPSEEK_ENDS,
        lambda inner, _closed: deepseek_calls(prefix + inner),
        restarts=DEEPSEEK_BEGINS,
    )


def _kimi(opener: str, ctx: Context) -> Region:
    # A section of calls, or calls written without one: those run to the end.
    prefix = opener if opener == KIMI_CALL else ""
    return TaggedRegion(
        opener,
        (KIMI_SECTION_END,),
        lambda inner, _closed: kimi_calls(prefix + inner),
        restarts=(KIMI_SECTION,),
    )


def _mistral(opener: str, ctx: Context) -> Region:
    return MistralRegion(opener)


def _llama(opener: str, ctx: Context) -> Region:
    return PythonTagRegion(opener, python_tag_calls)


_CALL_KEYS = frozenset({"name", "type", "function"})

_SYNTAX: dict[Family, Syntax] = {
    Family.HERMES: Syntax((THINK,), (TOOL_CALL,), _json_tag),
    Family.QWEN3_CODER: Syntax(
        (THINK,), (TOOL_CALL, FUNCTION), _xml_tag, after_call=(TOOL_CALL_END,)
    ),
    Family.SEED_OSS: Syntax((SEED_THINK,), (SEED_CALL,), _seed_tag),
    Family.MINIMAX_M2: Syntax((THINK,), (MINIMAX_CALL,), _minimax_tag),
    Family.GLM: Syntax((THINK,), (TOOL_CALL,), _glm_tag),
    Family.GEMMA4: Syntax(
        (GEMMA_THOUGHT,),
        (GEMMA_CALL,),
        _gemma4_tag,
        later_reasoning=True,
        strays=("<channel|>", "<|channel>"),
    ),
    Family.LFM2: Syntax((THINK,), (LFM2_CALL,), _lfm2),
    Family.NEMOTRON_V2: Syntax((THINK,), (NEMOTRON_CALL,), _nemotron),
    # Granite 3.3 thinks in <think></think>, then answers in <response></response>:
    # the answer's tags are dropped.
    Family.GRANITE3: Syntax(
        (THINK,), (GRANITE_CALL,), _granite, strays=("<response>", "</response>")
    ),
    Family.COMMAND_R7B: Syntax(
        (COHERE_THINK,), (COHERE_ACTION,), _command_r7b, strays=COHERE_ANSWER
    ),
    # Apertus deliberates between <|inner_prefix|> and <|inner_suffix|>.
    Family.APERTUS: Syntax((APERTUS_INNER,), (APERTUS_CALL,), _apertus),
    Family.MINICPM5: Syntax((THINK,), (MINICPM5_CALL,), _minicpm5),
    Family.LLAMA3: Syntax(
        (THINK,),
        ("<|python_tag|>",),
        _llama,
        bare=BareJson(_CALL_KEYS),
        after_call=(";", "<|eom_id|>", "<|eot_id|>"),
    ),
    Family.MISTRAL: Syntax(
        (("[THINK]", "[/THINK]"), THINK), ("[TOOL_CALLS]",), _mistral, id_length=9
    ),
    Family.DEEPSEEK: Syntax((THINK,), (*DEEPSEEK_BEGINS, CALL_BEGIN), _deepseek),
    Family.DEEPSEEK_DSML: Syntax((THINK,), DSML_BLOCKS, _dsml_block),
    Family.KIMI_K2: Syntax((THINK,), (KIMI_SECTION, KIMI_CALL), _kimi),
    Family.GENERIC: Syntax(
        (THINK,),
        (TOOL_CALL,),
        _json_tag,
        bare=BareJson(_CALL_KEYS | {"tool_call", "tool_calls"}, arrays=True, fences=True),
    ),
}


def syntax_for(family: Family) -> Syntax:
    """The syntax of every family except HARMONY, which has its own parser."""
    return _SYNTAX[family]


def marks_reasoning_otherwise(family: str | None) -> bool:
    """Whether a family (by name) writes reasoning, or markers to drop, other than in a
    <think> block at the start, the one an answer without tools needs no parser for."""
    if family is None:
        return False
    try:
        parsed = family_from_name(family)
    except ValueError:
        return False
    if parsed is Family.HARMONY:
        return True
    syntax = syntax_for(parsed)
    return syntax.think != (THINK,) or bool(syntax.strays) or syntax.later_reasoning
