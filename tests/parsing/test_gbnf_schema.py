"""JSON-schema GBNF (response formats, tool arguments): patterns are written one by
one, so one that GBNF cannot say does not take the others with it; what the grammar
allows matches the pattern; what llama.cpp would refuse is an error that says why.

What a grammar allows is checked by reading it as a Python regex (its patterns are
regular), against strings that do and do not match."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from appliance.parsing import Family
from appliance.parsing.constraints import json_gbnf, tool_call_gbnf
from appliance.parsing.gbnf_schema import GRAMMAR_COUNT_LIMIT, SchemaGrammarError

# What zod 4.6 writes (z.toJSONSchema) for .datetime(), .email(), .uuid(), z.ipv4(),
# z.ipv6(), z.base64(), z.e164(), z.nanoid(), z.ulid(), z.cidrv4(), z.iso.date(),
# z.iso.time() and .regex(/^[A-Z]{3}$/).
ZOD = {
    "when": (
        "date-time",
        r"^(?:(?:\d\d[2468][048]|\d\d[13579][26]|\d\d0[48]|[02468][048]00|[13579][26]00)"
        r"-02-29|\d{4}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12]\d|3[01])|(?:0[469]|11)-"
        r"(?:0[1-9]|[12]\d|30)|(?:02)-(?:0[1-9]|1\d|2[0-8])))T(?:(?:[01]\d|2[0-3]):[0-5]\d:"
        r"[0-5]\d(?:\.\d+)?(?:Z))$",
    ),
    "email": (
        "email",
        r"^(?:[A-Za-z0-9_'+\-]+\.)*[A-Za-z0-9_'+\-]*[A-Za-z0-9_+-]@(?:[A-Za-z0-9]"
        r"[A-Za-z0-9\-]*\.)+[A-Za-z]{2,}$",
    ),
    "code": (None, r"^[A-Z]{3}$"),
    "u": (
        "uuid",
        r"^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[1-8][0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-"
        r"[0-9a-fA-F]{12}|00000000-0000-0000-0000-000000000000|ffffffff-ffff-ffff-ffff-"
        r"ffffffffffff)$",
    ),
    "ip4": (
        "ipv4",
        r"^(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])\.){3}(?:25[0-5]|"
        r"2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])$",
    ),
    "ip6": (
        "ipv6",
        r"^(([0-9a-fA-F]{1,4}:){7}[0-9a-fA-F]{1,4}|([0-9a-fA-F]{1,4}:){1,7}:|"
        r"([0-9a-fA-F]{1,4}:){1,6}:[0-9a-fA-F]{1,4}|([0-9a-fA-F]{1,4}:){1,5}"
        r"(:[0-9a-fA-F]{1,4}){1,2}|([0-9a-fA-F]{1,4}:){1,4}(:[0-9a-fA-F]{1,4}){1,3}|"
        r"([0-9a-fA-F]{1,4}:){1,3}(:[0-9a-fA-F]{1,4}){1,4}|([0-9a-fA-F]{1,4}:){1,2}"
        r"(:[0-9a-fA-F]{1,4}){1,5}|[0-9a-fA-F]{1,4}:((:[0-9a-fA-F]{1,4}){1,6})|"
        r":((:[0-9a-fA-F]{1,4}){1,7}|:))$",
    ),
    "b64": (
        "base64",
        r"^$|^(?:[0-9a-zA-Z+/]{4})*(?:(?:[0-9a-zA-Z+/]{2}==)|(?:[0-9a-zA-Z+/]{3}=))?$",
    ),
    "e164": ("e164", r"^\+[1-9]\d{6,14}$"),
    "nano": ("nanoid", r"^[a-zA-Z0-9_-]{21}$"),
    "ulid": ("ulid", r"^[0-7][0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{25}$"),
    "cidr": (
        "cidrv4",
        r"^((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])\.){3}(25[0-5]|2[0-4][0-9]|"
        r"1[0-9][0-9]|[1-9][0-9]|[0-9])\/([0-9]|[1-2][0-9]|3[0-2])$",
    ),
    "date": (
        "date",
        r"^(?:(?:\d\d[2468][048]|\d\d[13579][26]|\d\d0[48]|[02468][048]00|[13579][26]00)"
        r"-02-29|\d{4}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12]\d|3[01])|(?:0[469]|11)-"
        r"(?:0[1-9]|[12]\d|30)|(?:02)-(?:0[1-9]|1\d|2[0-8])))$",
    ),
    "time": (None, r"^(?:[01]\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:\.\d+)?)?$"),
}
# Hand-written ones, as tool schemas have them.
HAND = [
    r"^\d{3}-\d{4}$",
    r"^[^@\s]+@[^@\s]+\.[^@\s]+$",
    r"^#[0-9a-fA-F]{6}$",
    r"^https?://\S+$",
    r"^[\w.-]+$",
    r"[A-Z]{3}",  # unanchored: somewhere in the string
    r"^v\d+(\.\d+){2}",
    r'^say "hi" \\ bye\t$',
    r"^(?P<word>[a-z]+)(?:-(?P=word))?$",  # a back-reference: cannot be written
    r"^\u00e9[\u4e00-\u9fff]{1,2}.$",
]
VALUES = [
    "2025-03-04T05:06:07Z", "2024-02-29T00:00:00.5Z", "2023-02-29T00:00:00Z",
    "2025-13-01T00:00:00Z", "2025-03-04T05:06:07+01:00", "2025-03-04", "2025-02-30",
    "12:30", "12:30:59.25", "24:00", "a.b+c@example.co", "me@x.y", "me@@x.io", "ABC", "AB",
    "ABCD", "xABCx", "abc", "123e4567-e89b-12d3-a456-426614174000",
    "123e4567-e89b-92d3-a456-426614174000", "192.168.0.1", "256.1.1.1", "10.0.0.0/8",
    "10.0.0.0/33", "::1", "fe80::1:2", "1:2:3:4:5:6:7:8", "1::2::3", "", "YWJj", "YWI=",
    "YW=", "+14155552671", "+0415555", "V1StGXR8_Z5jdHi6B-myT", "V1StGXR8_Z5jdHi6B-myT!",
    "01ARZ3NDEKTSV4RRFFQ69G5FAV", "81ARZ3NDEKTSV4RRFFQ69G5FAV", "555-1234", "55-1234",
    "#a0B1c2", "#a0B1c", "http://x.io/a", "https://", "a.b-c_d", "a b", "v1.2.3", "v1.2",
    'say "hi" \\ bye\t', "say hi bye", "ab-ab", "ab-cd", "é中文x", "é中文\n", "e中x",
    "\n", '"', "\\", "x\u2028y",
]  # fmt: skip


def rules_of(gbnf: str) -> dict[str, str]:
    return dict(line.split(" ::= ", 1) for line in gbnf.splitlines())


def as_regex(rules: dict[str, str], name: str = "root") -> str:
    """A rule as a Python regex: GBNF's classes, counts and operators are the same,
    literals are escaped, and rules are written in place (these do not recurse)."""
    body, out, i = rules[name], [], 0
    while i < len(body):
        c = body[i]
        if c == '"':
            j = i + 1
            while body[j] != '"':
                j += 2 if body[j] == "\\" else 1
            text = json.loads(body[i : j + 1])  # GBNF's escapes here are JSON's
            out.append(re.escape(text))
            i = j + 1
        elif c == "[":
            j = i + 1
            while body[j] != "]":
                j += 2 if body[j] == "\\" else 1
            out.append(body[i : j + 1])
            i = j + 1
        elif c == "{":
            j = body.index("}", i)
            out.append(body[i : j + 1])
            i = j + 1
        elif re.match(r"[\w-]", c):
            m = re.match(r"[\w-]+", body[i:])
            assert m is not None
            out.append(f"(?:{as_regex(rules, m.group())})")
            i += len(m.group())
        else:
            out.append({"(": "(?:", " ": ""}.get(c, c))
            i += 1
    return "".join(out)


def allowed(schema: dict[str, Any]) -> re.Pattern[str]:
    """What the grammar of ``schema`` lets a model write, as a regex."""
    return re.compile(as_regex(rules_of(json_gbnf(schema))), re.DOTALL)


def writes(grammar: re.Pattern[str], value: Any) -> bool:
    return bool(grammar.fullmatch(json.dumps(value, ensure_ascii=False) + " "))


@pytest.fixture(scope="module")
def llm(tiny_gguf: Path) -> Any:
    llama_cpp = pytest.importorskip("llama_cpp")
    return llama_cpp.Llama(model_path=str(tiny_gguf), n_ctx=256, verbose=False)


def accepted_by_llama_cpp(llm: Any, gbnf: str) -> bool:
    """llama.cpp gives no sampler for a grammar it refuses."""
    import llama_cpp

    sampler = llama_cpp.llama_sampler_init_grammar(llm._model.vocab, gbnf.encode(), b"root")
    if not sampler:
        return False
    llama_cpp.llama_sampler_free(sampler)
    return True


@pytest.mark.parametrize(
    ("fmt", "pattern"), [*ZOD.values(), *((None, p) for p in HAND)], ids=[*ZOD, *HAND]
)
def test_patterns_hold(llm: Any, fmt: str | None, pattern: str) -> None:
    """Whatever the grammar lets through matches the pattern, the matching examples
    get through, and llama.cpp takes the grammar."""
    schema = {"type": "string", "pattern": pattern, **({"format": fmt} if fmt else {})}
    assert accepted_by_llama_cpp(llm, json_gbnf(schema))
    grammar = allowed(schema)
    written = [v for v in VALUES if writes(grammar, v)]
    if "(?P=" in pattern:  # left out: the grammar allows any string
        assert len(written) == len(VALUES)
        return
    assert written, pattern
    for value in VALUES:
        if writes(grammar, value):
            assert re.search(pattern, value), value
        elif value.isascii() and value.isprintable():  # \w, \s: ECMA's, narrower
            assert not re.search(pattern, value), value


def test_one_pattern_the_grammar_cannot_say_leaves_the_others() -> None:
    """zod's patterns together, with one GBNF cannot say ((?i)): only that one is
    dropped, and its format still holds."""
    props: dict[str, Any] = {
        name: {"type": "string", "pattern": p, **({"format": f} if f else {})}
        for name, (f, p) in ZOD.items()
    }
    props["when"]["pattern"] = r"(?i)^\d{4}-\d\d-\d\dt.*$"
    schema = {"type": "object", "properties": props, "required": list(props)}
    good = {
        "when": "2025-03-04T05:06:07Z", "email": "a.b+c@example.co", "code": "ABC",
        "u": "123e4567-e89b-12d3-a456-426614174000", "ip4": "192.168.0.1", "ip6": "fe80::1:2",
        "b64": "YWI=", "e164": "+14155552671", "nano": "V1StGXR8_Z5jdHi6B-myT",
        "ulid": "01ARZ3NDEKTSV4RRFFQ69G5FAV", "cidr": "10.0.0.0/8", "date": "2024-02-29",
        "time": "12:30",
    }  # fmt: skip
    grammar = allowed(schema)
    assert writes(grammar, good)
    for name, bad in [
        ("when", "junk"), ("email", "me@@x.io"), ("code", "abc"), ("u", "x"),
        ("ip4", "256.1.1.1"), ("date", "2023-02-29"), ("time", "24:00"),
    ]:  # fmt: skip
        assert not writes(grammar, {**good, name: bad}), name


def test_counts_past_llama_cpps_limit_are_errors(llm: Any) -> None:
    """llama.cpp refuses a least count over its limit: the schema is refused first,
    saying which keyword; a most over it means no most (llama.cpp reads it so)."""
    assert accepted_by_llama_cpp(llm, f'root ::= "a"{{{GRAMMAR_COUNT_LIMIT}}}')
    assert not accepted_by_llama_cpp(llm, f'root ::= "a"{{{GRAMMAR_COUNT_LIMIT + 1}}}')
    cases = [
        ({"type": "string", "minLength": 100000}, "minLength 100000"),
        ({"type": "string", "format": "email", "minLength": 2001}, "minLength 2001"),
        ({"type": "array", "minItems": 1000000000}, "minItems 1000000000"),
        (
            {"type": "object", "properties": {"x": {"type": "array", "minItems": 5000}}},
            "minItems 5000",
        ),
    ]
    for schema, said in cases:
        with pytest.raises(SchemaGrammarError, match=f"{said} .* at most 200[01]"):
            json_gbnf(schema)
    for schema in (
        {"type": "string", "minLength": 2000, "maxLength": 100000},
        {"type": "string", "format": "email", "maxLength": 5000},
        {"type": "array", "minItems": 2001, "maxItems": 1000000000},
        {"type": "string", "pattern": r"^a{0,3000}[a-z]{2,5000}(ab|c){1500}$"},
    ):
        assert accepted_by_llama_cpp(llm, json_gbnf(schema)), schema
    assert writes(allowed({"type": "string", "format": "email", "maxLength": 3}), "abc")
    assert not writes(allowed({"type": "string", "format": "email", "maxLength": 3}), "abcd")


def test_ref_cycles_are_errors(llm: Any) -> None:
    """Refs that come back to themselves before writing anything are a left-recursive
    grammar llama.cpp refuses; recursion inside a value is fine."""
    for schema in (
        {"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"},
        {"$ref": "#"},
        {"anyOf": [{"type": "null"}, {"$ref": "#"}]},
        {
            "type": "object",
            "properties": {"x": {"$ref": "#/$defs/a"}},
            "$defs": {"a": {"$ref": "#/$defs/a"}},
        },
    ):
        with pytest.raises(SchemaGrammarError, match=r"\$ref cycle .*->"):
            json_gbnf(schema)
    # A tool's parameters that are only a reference to themselves (found by hypothesis).
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"$ref": "#"}}}]
    with pytest.raises(SchemaGrammarError, match=r"\$ref cycle"):
        tool_call_gbnf(Family.HERMES, tools, parallel=True)
    tree = {"type": "object", "properties": {"kids": {"type": "array", "items": {"$ref": "#"}}}}
    assert accepted_by_llama_cpp(llm, json_gbnf(tree))


# A node whose "x" is a node again, its definitions inside the property that uses them.
NESTED_NODE: dict[str, Any] = {
    "type": "object",
    "properties": {
        "a": {
            "$defs": {
                "n": {"type": "object", "properties": {"x": {"$ref": "#/properties/a/$defs/n"}}}
            },
            "$ref": "#/properties/a/$defs/n",
        }
    },
}


def required(schema: dict[str, Any], *path: str) -> dict[str, Any]:
    """``schema`` (a copy) with the property at the end of ``path`` required."""
    out = json.loads(json.dumps(schema))
    node = out
    for key in path[:-1]:
        node = node[key]
    node["required"] = [path[-1]]
    return out


def test_refs_whose_values_never_end_are_errors(llm: Any) -> None:
    """A value that must hold another of itself (a required property or item that
    refers back) never ends: llama.cpp takes the grammar, and the model nests until its
    tokens run out. It is a cycle error like the left-recursive ones, wherever the
    definitions sit; recursion through an optional part stays a grammar."""
    inner = ("properties", "a", "$defs", "n", "x")
    for schema in (
        required(NESTED_NODE, *inner),
        required(required(NESTED_NODE, *inner), "a"),
        {"type": "object", "properties": {"x": {"$ref": "#"}}, "required": ["x"]},
        {
            "type": "object",
            "properties": {"kids": {"type": "array", "items": {"$ref": "#"}, "minItems": 1}},
            "required": ["kids"],
        },
        {"type": "array", "prefixItems": [{"$ref": "#"}]},
        {
            "$defs": {
                "a": {
                    "type": "object",
                    "properties": {"b": {"$ref": "#/$defs/b"}},
                    "required": ["b"],
                },
                "b": {"type": "array", "items": {"$ref": "#/$defs/a"}, "minItems": 2},
            },
            "type": "object",
            "properties": {"a": {"$ref": "#/$defs/a"}},
            "required": ["a"],
        },
        {
            "definitions": {
                "a": {
                    "anyOf": [
                        {"type": "object", "properties": {"x": {"$ref": "#/definitions/a"}}},
                        {"type": "array", "items": {"$ref": "#/definitions/a"}},
                    ],
                    "required": ["x"],
                    "minItems": 1,
                }
            },
            "$ref": "#/definitions/a",
        },
    ):
        with pytest.raises(SchemaGrammarError, match=r"\$ref cycle .*->.*no value ever ends"):
            json_gbnf(schema)
        if schema.get("type") == "array":
            continue  # a tool's arguments are an object
        tools = [{"type": "function", "function": {"name": "f", "parameters": schema}}]
        with pytest.raises(SchemaGrammarError, match=r"\$ref cycle"):
            tool_call_gbnf(Family.HERMES, tools, parallel=True)
    linked = {
        "type": "object",
        "properties": {"next": {"anyOf": [{"$ref": "#"}, {"type": "null"}]}},
        "required": ["next"],
    }
    for schema in (
        NESTED_NODE,
        required(NESTED_NODE, "a"),
        linked,
        {"type": "object", "properties": {"kids": {"type": "array", "items": {"$ref": "#"}}}},
        {"type": "array", "items": {"$ref": "#"}, "minItems": 0},
        {"type": "object", "properties": {"x": {"$ref": "#/$defs/nowhere"}}, "required": ["x"]},
    ):
        assert accepted_by_llama_cpp(llm, json_gbnf(schema)), schema
