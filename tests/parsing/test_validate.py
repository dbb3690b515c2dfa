"""schema_errors: a table of schemas and values, the error paths, and odd schemas
that must never raise."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.parsing.validate import schema_errors

CITY = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "minLength": 2, "maxLength": 10},
        "unit": {"enum": ["c", "f"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 14},
    },
    "required": ["city"],
    "additionalProperties": False,
}
DEFS = {
    "type": "object",
    "properties": {"color": {"$ref": "#/$defs/Color"}, "pt": {"$ref": "#/definitions/Pt"}},
    "$defs": {"Color": {"type": "string", "enum": ["red", "green"]}},
    "definitions": {
        "Pt": {
            "type": "object",
            "properties": {"x": {"type": "number"}, "y": {"type": "number"}},
            "required": ["x", "y"],
        }
    },
}
TREE = {
    "type": "object",
    "properties": {"v": {"type": "integer"}, "kids": {"type": "array", "items": {"$ref": "#"}}},
    "required": ["v"],
}

# (schema, value, ok)
CASES: list[tuple[Any, Any, bool]] = [
    # types
    ({"type": "string"}, "a", True),
    ({"type": "string"}, 3, False),
    ({"type": "integer"}, 3, True),
    ({"type": "integer"}, 3.0, True),  # JSON Schema: an integral number is an integer
    ({"type": "integer"}, 3.5, False),
    ({"type": "integer"}, True, False),
    ({"type": "number"}, 3, True),
    ({"type": "number"}, 2.5, True),
    ({"type": "number"}, False, False),
    ({"type": "boolean"}, False, True),
    ({"type": "boolean"}, 0, False),
    ({"type": "null"}, None, True),
    ({"type": "null"}, 0, False),
    ({"type": "object"}, {}, True),
    ({"type": "object"}, [], False),
    ({"type": "array"}, [], True),
    ({"type": "array"}, {}, False),
    ({"type": ["string", "null"]}, None, True),
    ({"type": ["string", "null"]}, "x", True),
    ({"type": ["string", "null"]}, 1, False),
    ({"type": "unknown-type"}, 1, True),
    # objects
    (CITY, {"city": "Oslo"}, True),
    (CITY, {"city": "Oslo", "unit": "c", "days": 3}, True),
    (CITY, {}, False),
    (CITY, {"city": 3}, False),
    (CITY, {"city": "O"}, False),
    (CITY, {"city": "Oslo", "extra": 1}, False),
    (CITY, {"city": "Oslo", "days": 0}, False),
    (CITY, {"city": "Oslo", "days": 15}, False),
    (CITY, {"city": "Oslo", "unit": "k"}, False),
    ({"type": "object", "additionalProperties": {"type": "integer"}}, {"a": 1}, True),
    ({"type": "object", "additionalProperties": {"type": "integer"}}, {"a": "1"}, False),
    ({"type": "object", "properties": {"a": {}}}, {"b": [1]}, True),
    (
        {
            "type": "object",
            "patternProperties": {"^x-": {"type": "integer"}},
            "additionalProperties": False,
        },
        {"x-a": 1},
        True,
    ),
    (
        {
            "type": "object",
            "patternProperties": {"^x-": {"type": "integer"}},
            "additionalProperties": False,
        },
        {"y": 1},
        False,
    ),
    # arrays
    ({"type": "array", "items": {"type": "integer"}}, [1, 2], True),
    ({"type": "array", "items": {"type": "integer"}}, [1, "2"], False),
    ({"type": "array", "minItems": 1}, [], False),
    ({"type": "array", "maxItems": 1}, [1, 2], False),
    ({"type": "array", "uniqueItems": True}, [1, 1.0], False),
    ({"type": "array", "uniqueItems": True}, [1, True], True),
    (
        {"type": "array", "prefixItems": [{"type": "string"}], "items": {"type": "integer"}},
        ["a", 1],
        True,
    ),
    (
        {"type": "array", "prefixItems": [{"type": "string"}], "items": {"type": "integer"}},
        [1],
        False,
    ),
    # enum / const: JSON equality
    ({"enum": [1, "a", None]}, 1.0, True),
    ({"enum": [1, "a", None]}, True, False),
    ({"enum": [[1, 2], {"a": 1}]}, {"a": 1}, True),
    ({"const": "x"}, "x", True),
    ({"const": "x"}, "y", False),
    ({"const": False}, 0, False),
    # combinators
    ({"anyOf": [{"type": "string"}, {"type": "integer"}]}, 3, True),
    ({"anyOf": [{"type": "string"}, {"type": "integer"}]}, 3.5, False),
    ({"oneOf": [{"type": "integer"}, {"type": "number"}]}, 3, False),  # both match
    ({"oneOf": [{"type": "integer"}, {"type": "string"}]}, 3, True),
    ({"oneOf": [{"type": "integer"}, {"type": "string"}]}, None, False),
    ({"allOf": [{"type": "integer"}, {"minimum": 2}]}, 3, True),
    ({"allOf": [{"type": "integer"}, {"minimum": 2}]}, 1, False),
    # numbers
    ({"minimum": 1}, 1, True),
    ({"exclusiveMinimum": 1}, 1, False),
    ({"minimum": 1, "exclusiveMinimum": True}, 1, False),  # draft 4
    ({"maximum": 1, "exclusiveMaximum": True}, 0.5, True),
    ({"exclusiveMaximum": 1}, 1, False),
    ({"minimum": 1}, "0", True),  # only numbers are bounded
    ({"type": "number", "maximum": 1}, float("nan"), True),
    # strings count characters, not bytes
    ({"type": "string", "maxLength": 2}, "éé", True),
    ({"type": "string", "minLength": 3}, "éé", False),
    # nullable (OpenAPI)
    ({"type": "string", "nullable": True}, None, True),
    ({"type": "string"}, None, False),
    # $ref
    (DEFS, {"color": "red", "pt": {"x": 1, "y": 2.5}}, True),
    (DEFS, {"color": "blue"}, False),
    (DEFS, {"pt": {"x": 1}}, False),
    (TREE, {"v": 1, "kids": [{"v": 2, "kids": [{"v": 3}]}]}, True),
    (TREE, {"v": 1, "kids": [{"v": 2, "kids": [{"v": "3"}]}]}, False),
    ({"$ref": "#/$defs/missing"}, 1, True),
    ({"$ref": "https://example.com/schema.json"}, 1, True),
    # ignored keywords and odd schemas
    (
        {"type": "string", "format": "email", "pattern": "^x$", "title": "t", "default": 1},
        "a",
        True,
    ),
    ({}, {"anything": [1]}, True),
    (True, 1, True),
    (False, 1, False),
    ("not a schema", 1, True),
    ({"type": 5, "required": "city", "minimum": "a", "items": 3, "properties": []}, {"a": 1}, True),
    ({"anyOf": "x", "enum": "abc", "maxLength": -1}, "abcd", True),
]


@pytest.mark.parametrize(("schema", "value", "ok"), CASES)
def test_table(schema: Any, value: Any, ok: bool) -> None:
    errors = schema_errors(value, schema)
    assert (not errors) is ok, errors
    assert all(isinstance(e, str) and e.startswith("arguments") for e in errors)


def test_errors_name_the_path() -> None:
    assert schema_errors({"city": 3}, CITY) == ["arguments.city: expected string, got 3"]
    assert schema_errors({}, CITY) == ["arguments.city: required property is missing"]
    assert schema_errors({"city": "Oslo", "x y": 1}, CITY) == [
        'arguments["x y"]: unexpected property'
    ]
    nested = {
        "type": "array",
        "items": {"type": "object", "properties": {"color": {"$ref": "#/$defs/Color"}}},
        "$defs": DEFS["$defs"],  # refs resolve from the root
    }
    assert schema_errors([{}, {"color": "blue"}], nested, root="tool") == [
        'tool[1].color: expected one of ["red", "green"], got "blue"'
    ]
    assert schema_errors(True, {"type": ["integer", "null"]}) == [
        "arguments: expected integer or null, got true"
    ]


def test_a_ref_cycle_that_never_descends_ends() -> None:
    schema = {
        "$ref": "#/$defs/a",
        "$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}},
    }
    assert schema_errors(1, schema) == []
    assert schema_errors(1, {"$ref": "#"}) == []


def test_very_deep_values_do_not_raise() -> None:
    value: Any = 1
    for _ in range(5000):
        value = [value]
    schema = {
        "$ref": "#/$defs/n",
        "$defs": {
            "n": {"anyOf": [{"type": "integer"}, {"type": "array", "items": {"$ref": "#/$defs/n"}}]}
        },
    }
    errors = schema_errors(value, schema)
    assert errors in ([], ["arguments: too deeply nested to check"])


def test_huge_numbers_are_reported_not_raised() -> None:
    errors = schema_errors(10**5000, {"type": "string"})
    assert len(errors) == 1 and errors[0].startswith("arguments: expected string")


# --- never raises -----------------------------------------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=12,
)
_keywords = st.sampled_from(
    [
        "type",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "prefixItems",
        "enum",
        "const",
        "anyOf",
        "oneOf",
        "allOf",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "minLength",
        "maxLength",
        "minItems",
        "maxItems",
        "uniqueItems",
        "nullable",
        "$ref",
        "$defs",
        "definitions",
        "patternProperties",
        "format",
        "pattern",
        "title",
    ]
)
_keyword_values = (
    _json
    | st.sampled_from(["string", "integer", "number", "object", "array", "null", "boolean"])
    | st.sampled_from(
        ["#", "#/$defs/a", "#/definitions/a", "#/properties/x", "#/$defs/a~1b", "[", "(a"]
    )
    | st.lists(st.sampled_from(["string", "null", "integer"]), max_size=3)
)
_schemas = st.recursive(
    st.booleans() | st.dictionaries(_keywords, _keyword_values, max_size=4),
    lambda inner: st.dictionaries(
        _keywords,
        inner
        | st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["a", "x", "a/b"]), inner, max_size=3)
        | _keyword_values,
        max_size=5,
    ),
    max_leaves=16,
)


@settings(max_examples=300, deadline=None)
@given(schema=_schemas, value=_json)
def test_never_raises(schema: Any, value: Any) -> None:
    errors = schema_errors(value, schema)
    assert isinstance(errors, list)
    assert all(isinstance(e, str) for e in errors)
