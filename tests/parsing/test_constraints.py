"""Tool-call grammars: llama.cpp accepts the GBNF and onnxruntime-genai (llguidance)
the Lark; what a model samples under them parses, family by family, into calls
whose arguments match the tools' schemas. The models are the tiny random-weight
fixtures, so the arguments are gibberish that only the grammar keeps in shape."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.parsing import Family, detect_family, parse_output
from appliance.parsing.constraints import (
    special_token_ids,
    tool_call_gbnf,
    tool_call_lark,
    tool_call_trigger,
)
from appliance.parsing.gbnf_schema import SchemaGrammarError, integer_range, number_range
from appliance.parsing.validate import schema_errors
from tests.parsing.test_forced_text import tool_call_forced

TEMPLATES = Path(__file__).resolve().parents[1] / "fixtures" / "chat_templates"
ONNX_CHAT = Path(__file__).resolve().parents[1] / "fixtures" / "onnx" / "tiny-chat-int4"
PROMPT = "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def fn(name: str, parameters: Any = None) -> dict[str, Any]:
    function: dict[str, Any] = {"name": name, "description": f"{name} things"}
    if parameters is not None:
        function["parameters"] = parameters
    return {"type": "function", "function": function}


# Every string and array is bounded, so a random model finishes its calls.
TOOLS = [
    fn("get_time", {"type": "object", "properties": {}}),
    fn(
        "get_weather",
        {
            "type": "object",
            "properties": {
                "city": {"type": "string", "maxLength": 8, "description": "where"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer", "minimum": 1, "maximum": 14},
            },
            "required": ["city"],
        },
    ),
    fn(
        "book",
        {
            "type": "object",
            "properties": {
                "guest": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string", "minLength": 1, "maxLength": 6},
                        "vip": {"type": "boolean"},
                    },
                    "required": ["name", "vip"],
                },
                "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "maxItems": 3},
                "score": {"type": "number", "minimum": 0, "maximum": 1},
                "note": {"type": ["string", "null"], "maxLength": 4},
                "color": {"$ref": "#/$defs/Color"},
            },
            "required": ["guest", "score", "color"],
            "$defs": {"Color": {"type": "string", "enum": ["red", "green"]}},
        },
    ),
    # Property and definition names that are also the converter's rule names, and a
    # "Color" that is not the other tool's.
    fn(
        "collide",
        {
            "type": "object",
            "properties": {
                "root": {"type": "integer", "exclusiveMinimum": -3, "maximum": 3},
                "space": {"type": "boolean", "nullable": True},
                "string": {"$ref": "#/definitions/Color"},
                "char": {"allOf": [{"type": "string"}, {"maxLength": 3}]},
                "value": {"anyOf": [{"type": "integer", "minimum": 100}, {"const": "none"}]},
            },
            "required": ["root", "string", "char", "value"],
            "definitions": {"Color": {"type": "integer", "enum": [1, 2, 3]}},
        },
    ),
    fn("no_schema"),
]
NAMES = [t["function"]["name"] for t in TOOLS]
SCHEMAS = {t["function"]["name"]: t["function"].get("parameters") or {} for t in TOOLS}


def template(name: str) -> str:
    return (TEMPLATES / name).read_text()


# (id, family, chat template or None): every family, and the second syntax of the four
# families that have two.
CASES = [
    ("hermes", Family.HERMES, None),
    ("qwen3_coder", Family.QWEN3_CODER, None),
    ("glm", Family.GLM, None),
    ("glm-compact", Family.GLM, "GLM-4.7-Flash.jinja"),
    ("seed_oss", Family.SEED_OSS, "ByteDance-Seed-OSS.jinja"),
    ("minimax_m2", Family.MINIMAX_M2, None),
    ("deepseek_dsml", Family.DEEPSEEK_DSML, "deepseek-ai-DeepSeek-V4.jinja"),
    ("deepseek_dsml-v3.2", Family.DEEPSEEK_DSML, "deepseek-ai-DeepSeek-V3.2.jinja"),
    ("kimi_k2", Family.KIMI_K2, None),
    ("gemma4", Family.GEMMA4, None),
    ("lfm2", Family.LFM2, None),
    ("nemotron_v2", Family.NEMOTRON_V2, None),
    ("granite3", Family.GRANITE3, None),
    ("command_r7b", Family.COMMAND_R7B, None),
    ("apertus", Family.APERTUS, "Apertus-8B-Instruct.jinja"),
    ("minicpm5", Family.MINICPM5, None),
    ("llama3", Family.LLAMA3, None),
    ("mistral", Family.MISTRAL, None),
    ("mistral-list", Family.MISTRAL, "mistralai-Mistral-Nemo-Instruct-2407.jinja"),
    ("deepseek", Family.DEEPSEEK, None),
    ("deepseek-v3.1", Family.DEEPSEEK, "deepseek-ai-DeepSeek-V3.1.jinja"),
    ("harmony", Family.HARMONY, None),
    ("generic", Family.GENERIC, None),
]
CASE_IDS = [c[0] for c in CASES]
# JSON calls (Hermes) and the families that spell values their own way, which the
# named-tool and odd-schema tests go through (DeepSeek DSML too, where it can be sampled).
SPELLED = [
    Family.HERMES,
    Family.QWEN3_CODER,
    Family.GLM,
    Family.GEMMA4,
    Family.LFM2,
    Family.MINICPM5,
]


def problems(text: str, family: Family, *, parallel: bool, name: str | None = None) -> list[str]:
    """What is wrong with an output that should be nothing but valid calls."""
    message = parse_output(text, family, known_tools=NAMES, tool_schemas=SCHEMAS)
    found: list[str] = []
    if not message.tool_calls:
        found.append("no call")
    if message.malformed_tool_call or message.content or message.unknown_tools:
        found.append(f"not only calls: content={message.content!r}")
    if not parallel and len(message.tool_calls) > 1:
        found.append(f"{len(message.tool_calls)} calls without parallel")
    for call in message.tool_calls:
        if name is not None and call.name != name:
            found.append(f"called {call.name}, not {name}")
        errors = schema_errors(json.loads(call.arguments), SCHEMAS.get(call.name, {}))
        found += [f"{call.name}: {e}" for e in errors]
    return found


# --- llama.cpp ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def llm(tiny_gguf: Path) -> Any:
    llama_cpp = pytest.importorskip("llama_cpp")
    return llama_cpp.Llama(model_path=str(tiny_gguf), n_ctx=1024, verbose=False)


def accepted_by_llama_cpp(llm: Any, gbnf: str) -> bool:
    """llama.cpp parses a grammar when a sampler is made from it (LlamaGrammar only
    keeps the text); a refused one gives a null sampler."""
    import llama_cpp
    from llama_cpp.llama_grammar import LlamaGrammar

    grammar = LlamaGrammar.from_string(gbnf, verbose=False)
    sampler = llama_cpp.llama_sampler_init_grammar(
        llm._model.vocab, grammar._grammar.encode(), grammar._root.encode()
    )
    if not sampler:
        return False
    llama_cpp.llama_sampler_free(sampler)
    return True


def sample_gbnf(llm: Any, gbnf: str, seed: int, max_tokens: int) -> tuple[str, bool]:
    """(text, finished) for one sample at temperature 1."""
    from llama_cpp.llama_grammar import LlamaGrammar

    out = llm(
        PROMPT,
        grammar=LlamaGrammar.from_string(gbnf, verbose=False),
        max_tokens=max_tokens,
        temperature=1.0,
        seed=seed,
    )
    choice = out["choices"][0]
    return choice["text"], choice["finish_reason"] == "stop"


@pytest.mark.parametrize("name", [None, "book"])
@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize(("case", "family", "tpl"), CASES, ids=CASE_IDS)
def test_llama_cpp_accepts_the_gbnf(
    llm: Any, case: str, family: Family, tpl: str | None, parallel: bool, name: str | None
) -> None:
    gbnf = tool_call_gbnf(
        family, TOOLS, parallel=parallel, name=name, template=template(tpl) if tpl else None
    )
    assert accepted_by_llama_cpp(llm, gbnf), gbnf
    rules = [line.split(" ::= ", 1)[0] for line in gbnf.splitlines()]
    assert rules[0] == "root" and len(rules) == len(set(rules))


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize(("case", "family", "tpl"), CASES, ids=CASE_IDS)
def test_gbnf_samples_parse_into_valid_calls(
    llm: Any, case: str, family: Family, tpl: str | None, parallel: bool
) -> None:
    if parallel and family is Family.DEEPSEEK_DSML:
        pytest.skip("the tiny model never closes the block: test_gbnf_dsml_parallel_samples")
    source = template(tpl) if tpl else None
    gbnf = tool_call_gbnf(family, TOOLS, parallel=parallel, template=source)
    trigger = tool_call_trigger(family, parallel=parallel, template=source)
    # What the scheduler writes unsampled: every output of the grammar starts with it.
    forced = tool_call_forced(family, TOOLS, parallel=parallel, template=source)
    finished = 0
    for seed in range(3):
        # GLM spells its tags in text: its calls take more tokens of the tiny model's;
        # MiniMax M2's and DeepSeek DSML's take more still.
        budget = 800 if parallel else 500
        if family in (Family.MINIMAX_M2, Family.DEEPSEEK_DSML):
            budget *= 2
        text, done = sample_gbnf(llm, gbnf, seed, budget)
        assert text.startswith(trigger) or (family is Family.GENERIC and text.startswith("{"))
        assert text.startswith(forced)
        if done:  # a sample cut at max_tokens is an unfinished call, as expected
            finished += 1
            assert problems(text, family, parallel=parallel) == [], text
    assert finished >= 2


@pytest.mark.parametrize(
    "tpl", ["deepseek-ai-DeepSeek-V3.2.jinja", "deepseek-ai-DeepSeek-V4.jinja"]
)
def test_gbnf_dsml_parallel_samples(llm: Any, tpl: str) -> None:
    """DeepSeek DSML's calls follow each other in one block, and the tiny model always
    takes another <｜DSML｜invoke> over the block's close: its samples run to the token
    limit. Closed after their last whole call, they are valid calls."""
    source = template(tpl)
    gbnf = tool_call_gbnf(Family.DEEPSEEK_DSML, TOOLS, parallel=True, template=source)
    block = tool_call_trigger(Family.DEEPSEEK_DSML, template=source)
    for seed in range(2):
        text, _ = sample_gbnf(llm, gbnf, seed, 900)
        assert text.startswith(block + "\n"), text
        invoke_end = "</｜DSML｜invoke>\n"
        whole = text[: text.rindex(invoke_end) + len(invoke_end)] + "</" + block[1:]
        assert problems(whole, Family.DEEPSEEK_DSML, parallel=True) == [], whole
        assert whole.count(invoke_end) >= 2


@pytest.mark.parametrize("family", [*SPELLED, Family.DEEPSEEK_DSML])
@pytest.mark.parametrize("tool", NAMES)
def test_gbnf_named_tool(llm: Any, family: Family, tool: str) -> None:
    gbnf = tool_call_gbnf(family, TOOLS, parallel=False, name=tool)
    forced = tool_call_forced(family, TOOLS, parallel=False, name=tool)
    assert tool in forced
    # DSML's tags take many more of the tiny model's tokens.
    budget = 800 if family is Family.DEEPSEEK_DSML else 400
    for seed in range(2):
        text, done = sample_gbnf(llm, gbnf, seed, budget)
        assert done, text
        assert text.startswith(forced)
        assert problems(text, family, parallel=False, name=tool) == [], text


# --- onnxruntime-genai (llguidance) -------------------------------------------------------


@pytest.fixture(scope="module")
def onnx_chat() -> tuple[Any, Any, list[int]]:
    og = pytest.importorskip("onnxruntime_genai")
    model = og.Model(str(ONNX_CHAT))
    tokenizer = og.Tokenizer(model)
    return model, tokenizer, list(tokenizer.encode(PROMPT))


def lark_generator(onnx_chat: tuple[Any, Any, list[int]], lark: str, seed: int, n: int) -> Any:
    import onnxruntime_genai as og

    model, _, prompt = onnx_chat
    params = og.GeneratorParams(model)
    params.set_search_options(
        max_length=len(prompt) + n, do_sample=True, temperature=1.0, random_seed=seed
    )
    params.set_guidance("lark_grammar", lark)
    return og.Generator(model, params)  # compiles the grammar: raises if refused


def sample_lark(
    onnx_chat: tuple[Any, Any, list[int]], lark: str, seed: int, n: int
) -> tuple[str, bool]:
    _, tokenizer, prompt = onnx_chat
    generator = lark_generator(onnx_chat, lark, seed, n)
    generator.append_tokens(prompt)
    tokens: list[int] = []
    while not generator.is_done():
        generator.generate_next_token()
        tokens.append(int(generator.get_next_tokens()[0]))
    finished = bool(tokens) and tokens[-1] in (0, 2)  # the fixture's EOS ids
    return tokenizer.decode(tokens), finished


# Forcing a literal with 3-byte UTF-8 characters (DeepSeek's markers, written out
# rather than as special tokens) fails inside onnxruntime-genai 0.18 with this byte
# BPE tokenizer ("forced bytes: got '\u{9c}'"); those grammars are only compiled.
UNSAMPLED_LARK = (Family.DEEPSEEK, Family.DEEPSEEK_DSML)
SAMPLED_LARK = [c for c in CASES if c[1] not in UNSAMPLED_LARK]


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize(("case", "family", "tpl"), SAMPLED_LARK, ids=[c[0] for c in SAMPLED_LARK])
def test_lark_samples_parse_into_valid_calls(
    onnx_chat: Any, case: str, family: Family, tpl: str | None, parallel: bool
) -> None:
    source = template(tpl) if tpl else None
    lark = tool_call_lark(family, TOOLS, parallel=parallel, template=source)
    trigger = tool_call_trigger(family, parallel=parallel, template=source)
    finished = 0
    for seed in range(3):
        # GLM 4.7's calls follow each other with nothing between: the tiny model ends
        # the list by chance, after many.
        text, done = sample_lark(onnx_chat, lark, seed, 1600 if parallel else 500)
        assert text.startswith(trigger) or (family is Family.GENERIC and text.startswith("{"))
        if done:
            finished += 1
            assert problems(text, family, parallel=parallel) == [], text
    assert finished >= 2


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize(
    ("case", "family", "tpl"),
    [c for c in CASES if c[1] in UNSAMPLED_LARK],
    ids=[c[0] for c in CASES if c[1] in UNSAMPLED_LARK],
)
def test_lark_deepseek_compiles(
    onnx_chat: Any, case: str, family: Family, tpl: str | None, parallel: bool
) -> None:
    source = template(tpl) if tpl else None
    lark = tool_call_lark(family, TOOLS, parallel=parallel, template=source)
    lark_generator(onnx_chat, lark, 0, 8)


@pytest.mark.parametrize("family", SPELLED)
@pytest.mark.parametrize("tool", NAMES)
def test_lark_named_tool(onnx_chat: Any, family: Family, tool: str) -> None:
    lark = tool_call_lark(family, TOOLS, parallel=False, name=tool)
    for seed in range(2):
        text, done = sample_lark(onnx_chat, lark, seed, 400)
        assert done, text
        assert problems(text, family, parallel=False, name=tool) == [], text


ANSWER = {
    "type": "object",
    "properties": {"sky": {"type": "string", "enum": ["sunny", "rain"]}},
    "required": ["sky"],
    "additionalProperties": False,
}


def calls_or_answer(text: str, family: Family) -> str:
    """ "answer" for JSON following ANSWER, "calls" for valid calls; fails otherwise."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = None
    if isinstance(value, dict) and "name" not in value:
        assert schema_errors(value, ANSWER) == [], text
        return "answer"
    assert problems(text, family, parallel=False) == [], text
    return "calls"


@pytest.mark.parametrize("family", [Family.HERMES, Family.GENERIC, Family.LLAMA3])
def test_gbnf_calls_or_an_answer_in_the_format(llm: Any, family: Family) -> None:
    """tool_choice auto with a response_format: every sample is calls or the answer."""
    gbnf = tool_call_gbnf(family, TOOLS, parallel=False, answer=ANSWER)
    assert accepted_by_llama_cpp(llm, gbnf), gbnf
    for seed in range(4):  # a sample cut at max_tokens would fail too: none is
        calls_or_answer(sample_gbnf(llm, gbnf, seed, 250)[0], family)


@pytest.mark.parametrize("family", [Family.HERMES, Family.GENERIC])
def test_lark_calls_or_an_answer_in_the_format(onnx_chat: Any, family: Family) -> None:
    lark = tool_call_lark(family, TOOLS, parallel=False, answer=ANSWER)
    kinds = [
        calls_or_answer(sample_lark(onnx_chat, lark, seed, 250)[0], family) for seed in range(4)
    ]
    assert "calls" in kinds  # (llguidance's samples here take both ways)


def test_lark_writes_special_tokens_by_id() -> None:
    special = {"[TOOL_CALLS]": 9, "[ARGS]": 42}
    lark = tool_call_lark(Family.MISTRAL, TOOLS, parallel=True, special_tokens=special)
    assert "<[9]>" in lark and "<[42]>" in lark
    assert "[TOOL_CALLS]" not in lark and "[ARGS]" not in lark
    plain = tool_call_lark(Family.MISTRAL, TOOLS, parallel=True)
    assert '"[TOOL_CALLS]get_time[ARGS]"' in plain


def test_special_tokens_are_sampled_as_tokens(onnx_chat: Any) -> None:
    """A marker that is a special token is generated as that token. The fixture has
    no harmony tokens: its <|im_start|> stands in for <|channel|>."""
    special = special_token_ids(json.loads((ONNX_CHAT / "tokenizer.json").read_text()))
    assert special == {"<|endoftext|>": 0, "<|im_start|>": 1, "<|im_end|>": 2}
    lark = tool_call_lark(
        Family.HARMONY,
        TOOLS,
        parallel=False,
        name="get_weather",
        special_tokens={"<|channel|>": special["<|im_start|>"]},
    )
    _, tokenizer, _ = onnx_chat
    generator = lark_generator(onnx_chat, lark, 0, 120)
    generator.append_tokens(onnx_chat[2])
    tokens: list[int] = []
    while not generator.is_done():
        generator.generate_next_token()
        tokens.append(int(generator.get_next_tokens()[0]))
    assert tokens[0] == 1 and tokens[-1] in (0, 2)
    text = "<|channel|>" + tokenizer.decode(tokens[1:])  # the stand-in decodes to nothing
    assert problems(text, Family.HARMONY, parallel=False, name="get_weather") == [], text


# --- odd schemas, errors, syntax choices ----------------------------------------------------

ODD = [
    None,
    {},
    {"type": "string"},
    {"type": "object"},
    {"type": "object", "additionalProperties": {"type": "integer"}},
    {"properties": {"a": {"type": "whatever"}, "b": True, "c": {"$ref": "#/nowhere"}}},
    {"type": "object", "properties": {"r": {"$ref": "#"}}},
    {
        "type": "object",
        "properties": {"x": {"type": ["integer", "string", "null"], "enum": [1, "a"]}},
    },
    {"type": "object", "properties": {"x": {"type": "array", "items": True, "minItems": 2}}},
    {"type": "object", "properties": {"x": {"type": "string", "pattern": "^[a-z]{2}$"}}},
    {"type": "object", "properties": {"x": {"type": "string", "pattern": "(?<=x)y"}}},
    {"type": "object", "properties": {"x": {"type": "string", "format": "date-time"}}},
    {"type": "object", "properties": {"x": {"type": "integer", "minimum": 5, "maximum": 2}}},
    {"type": "object", "properties": {"x": {"type": "number", "minimum": -1e300}}},
    {"type": "object", "properties": {"x": {"enum": []}}, "required": ["x", "y"]},
    {"anyOf": [{"type": "object", "properties": {"a": {"type": "integer"}}}, {"type": "object"}]},
    {
        "$ref": "#/$defs/Node",
        "$defs": {
            "Node": {
                "type": "object",
                "properties": {"next": {"anyOf": [{"$ref": "#/$defs/Node"}, {"type": "null"}]}},
            },
            "a/b~c": {"allOf": [{"$ref": "#/$defs/a~1b~0c"}]},
        },
    },
]


@pytest.mark.parametrize("params", ODD, ids=[str(i) for i in range(len(ODD))])
def test_odd_schemas_still_give_grammars(llm: Any, onnx_chat: Any, params: Any) -> None:
    tools = [fn("odd", params)]
    for family in (*SPELLED, Family.DEEPSEEK_DSML, Family.GENERIC):
        assert accepted_by_llama_cpp(llm, tool_call_gbnf(family, tools, parallel=True))
        lark_generator(onnx_chat, tool_call_lark(family, tools, parallel=True), 0, 8)


def test_no_tool_to_call_is_an_error() -> None:
    with pytest.raises(ValueError, match="no function tool named 'nope'"):
        tool_call_gbnf(Family.HERMES, TOOLS, parallel=False, name="nope")
    with pytest.raises(ValueError, match="no function tools"):
        tool_call_lark(Family.HERMES, [{"type": "code_interpreter"}], parallel=False)


def test_the_syntax_follows_the_template() -> None:
    """A family with two call syntaxes writes the one its template renders."""
    for path in sorted(TEMPLATES.glob("*.jinja")):
        source = path.read_text()
        family = detect_family(source)
        if family not in (Family.MISTRAL, Family.DEEPSEEK, Family.DEEPSEEK_DSML):
            continue
        gbnf = tool_call_gbnf(family, TOOLS[:1], parallel=False, template=source)
        if family is Family.DEEPSEEK_DSML:
            # V3.2's block is function_calls, V4's tool_calls: the trigger is the same.
            block = "function_calls" if "function_calls" in source else "tool_calls"
            trigger = tool_call_trigger(family, template=source)
            assert trigger == f"<｜DSML｜{block}>" and gbnf.count(block) == 2, path.name
        elif family is Family.MISTRAL:
            listed = "[TOOL_CALLS][" in source
            assert ("[ARGS]" in gbnf) is not listed, path.name
            assert ("[ARGS]" in source) is not listed, path.name
        else:
            fenced = "```json" in source
            assert ("```json" in gbnf) is fenced, path.name
    assert tool_call_trigger(Family.HERMES) == "<tool_call>"
    assert tool_call_trigger(Family.QWEN3_CODER) == "<tool_call>"
    assert tool_call_trigger(Family.LFM2) == "<|tool_call_start|>"
    assert tool_call_trigger(Family.NEMOTRON_V2) == "<TOOLCALL>"
    assert tool_call_trigger(Family.GRANITE3) == "<|tool_call|>"
    assert tool_call_trigger(Family.COMMAND_R7B) == "<|START_ACTION|>"
    assert tool_call_trigger(Family.APERTUS) == "<|tools_prefix|>"
    assert tool_call_trigger(Family.MINICPM5) == '<function name="'
    assert tool_call_trigger(Family.LLAMA3) == '{"name"'
    assert tool_call_trigger(Family.MISTRAL) == "[TOOL_CALLS]"
    assert tool_call_trigger(Family.DEEPSEEK) == "<｜tool▁calls▁begin｜>"
    assert tool_call_trigger(Family.DEEPSEEK_DSML) == "<｜DSML｜tool_calls>"
    assert tool_call_trigger(Family.KIMI_K2) == "<|tool_calls_section_begin|>"
    assert tool_call_trigger(Family.HARMONY) == "<|channel|>commentary to=functions."
    assert tool_call_trigger(Family.GENERIC) == '{"name"'
    assert tool_call_trigger(Family.GENERIC, parallel=True) == '[{"name"'


# --- number ranges, checked against every number in a window --------------------------------


def as_regex(body: str) -> re.Pattern[str]:
    """The GBNF of a numeric range (quoted digits, "-", ".", classes, counts) as a regex."""
    pattern = re.sub(r'"([^"]*)"', lambda m: re.escape(m.group(1)), body).replace(" ", "")
    return re.compile(pattern)


@pytest.mark.parametrize(
    ("lo", "hi"),
    [
        (0, 0), (1, 14), (0, 9), (7, 7), (3, 250), (95, 1204), (-3, 3), (-120, -7), (-1, 0),
        (None, 12), (None, -40), (15, None), (0, None), (-25, None), (None, None), (100, 99),
    ],
)  # fmt: skip
def test_integer_ranges_are_exact(lo: int | None, hi: int | None) -> None:
    body = integer_range(lo, hi)
    if lo is not None and hi is not None and lo > hi:
        assert body is None
        return
    assert body is not None
    regex = as_regex(body)
    for n in range(-1500, 1501):
        inside = (lo is None or n >= lo) and (hi is None or n <= hi)
        assert bool(regex.fullmatch(str(n))) is inside, (n, body)
    for text in ("-0", "01", "007", "+1", ""):
        assert not regex.fullmatch(text), (text, body)
    if hi is None:
        assert regex.fullmatch("9" * 16) and not regex.fullmatch("1" + "0" * 16)


@pytest.mark.parametrize(
    ("schema", "example"),
    [
        ({"minimum": 0, "maximum": 1}, "0.5"),
        ({"minimum": 0.5, "maximum": 2.5}, "2"),
        ({"exclusiveMinimum": 0, "exclusiveMaximum": 3}, "2.999"),
        ({"minimum": 2}, "1234.5"),
        ({"minimum": 0, "exclusiveMaximum": 1}, "0.25"),
    ],
)
def test_number_ranges_stay_inside(schema: dict[str, Any], example: str) -> None:
    """Non-negative bounded numbers: what the grammar allows is within the bounds."""
    schema = {"type": "number", **schema}
    body = number_range(schema)
    assert body is not None
    regex = as_regex(body)
    assert regex.fullmatch(example)
    for whole in range(0, 5):
        for fraction in ("", ".0", ".25", ".5", ".999", ".000001"):
            text = f"{whole}{fraction}"
            if regex.fullmatch(text):
                assert schema_errors(float(text), schema) == [], text
    assert number_range({"type": "number", "minimum": -1}) is None  # left unbounded


# --- any schema at all ------------------------------------------------------------------------

_values = (
    st.none() | st.booleans() | st.integers(-50, 50) | st.floats(-1e3, 1e3) | st.text(max_size=3)
)
_keywords = st.sampled_from(
    [
        "type", "properties", "required", "additionalProperties", "items", "prefixItems",
        "enum", "const", "anyOf", "oneOf", "allOf", "minimum", "maximum", "exclusiveMinimum",
        "exclusiveMaximum", "minLength", "maxLength", "minItems", "maxItems", "nullable",
        "$ref", "$defs", "definitions", "pattern", "format",
    ]
)  # fmt: skip
_leaves = (
    _values
    | st.sampled_from(["string", "integer", "number", "object", "array", "null", "boolean"])
    | st.sampled_from(
        ["#", "#/$defs/a", "#/definitions/a", "#/$defs/b", "^[a-c]+$", "(?=x)", "date"]
    )
    | st.lists(st.sampled_from(["string", "null", "integer", "a", "b"]), max_size=3)
    | st.integers(0, 5)
)
_schemas = st.recursive(
    st.dictionaries(_keywords, _leaves, max_size=4),
    lambda inner: st.dictionaries(
        _keywords,
        inner
        | st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["a", "b", "root", "x y"]), inner, max_size=3)
        | _leaves,
        max_size=5,
    ),
    max_leaves=14,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(params=_schemas)
def test_any_schema_gives_a_grammar_llama_cpp_accepts(llm: Any, params: Any) -> None:
    tools = [fn("f", params), fn("g", {"type": "object", "properties": {"a": params}})]
    for family in (*SPELLED, Family.DEEPSEEK_DSML):
        try:
            gbnf = tool_call_gbnf(family, tools, parallel=True)
        except SchemaGrammarError as exc:  # refs round to themselves: no grammar can
            assert "$ref cycle" in str(exc)
            return
        assert accepted_by_llama_cpp(llm, gbnf), (params, gbnf)
        tool_call_lark(family, tools, parallel=True)
