"""Check a value against a tool's ``parameters`` JSON schema: a small, pure validator.

It covers what tool schemas use: ``type`` (a name or a list; ``integer`` is a number
with no fraction, a boolean is never a number), ``properties``, ``required``,
``additionalProperties`` (a boolean or a schema), ``patternProperties``, ``items``
(a schema, or a list for tuples), ``enum``, ``const``, ``anyOf`` / ``oneOf`` /
``allOf``, ``minimum`` / ``maximum`` / ``exclusiveMinimum`` / ``exclusiveMaximum``,
``minLength`` / ``maxLength``, ``minItems`` / ``maxItems``, ``uniqueItems``, OpenAPI's
``nullable``, and ``$ref`` to ``#/$defs/...``, ``#/definitions/...`` (any local JSON
pointer, ``#`` included). Every other keyword (``format``, ``pattern``, ``title``,
``description``, ``default``, ...) is ignored, and so is a keyword whose value has
the wrong shape: an odd schema never raises, it just checks less.

Each error names where it is, from ``root``: ``arguments.city: expected string, got 3``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["schema_errors"]

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_MAX_ERRORS = 50


def schema_errors(value: Any, schema: Any, *, root: str = "arguments") -> list[str]:
    """The ways ``value`` breaks ``schema`` (empty when it conforms).

    ``value`` is a loaded JSON value (dict, list, str, int, float, bool, None).
    ``schema`` is a JSON schema; ``True`` and anything that is not a mapping accept
    everything, ``False`` accepts nothing. Never raises.
    """
    checker = _Checker(schema)
    try:
        checker.check(value, schema, root)
    except RecursionError:
        checker.errors.append(f"{root}: too deeply nested to check")
    return checker.errors[:_MAX_ERRORS]


def _show(value: Any, limit: int = 60) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=True, default=repr)
    except (TypeError, ValueError, RecursionError):
        try:
            text = repr(value)
        except (ValueError, RecursionError):  # an int past Python's digit limit
            text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _child(path: str, key: str) -> str:
    return (
        f"{path}.{key}" if _IDENT.match(key) else f"{path}[{json.dumps(key, ensure_ascii=False)}]"
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_type(value: Any, name: str) -> bool | None:
    """Whether ``value`` has JSON type ``name``; None for a name that is no type."""
    if name == "string":
        return isinstance(value, str)
    if name == "integer":
        if isinstance(value, bool):
            return False
        if isinstance(value, int):
            return True
        return isinstance(value, float) and math.isfinite(value) and value.is_integer()
    if name == "number":
        return _is_number(value)
    if name == "boolean":
        return isinstance(value, bool)
    if name == "null":
        return value is None
    if name == "object":
        return isinstance(value, Mapping)
    if name == "array":
        return isinstance(value, list | tuple)
    return None


def _json_equal(a: Any, b: Any) -> bool:
    """Equality as JSON sees it: ``1 == 1.0``, but ``true != 1``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if _is_number(a) and _is_number(b):
        return bool(a == b)
    if isinstance(a, str) or isinstance(b, str):
        return isinstance(a, str) and isinstance(b, str) and a == b
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    return False


def _number(value: Any) -> float | int | None:
    return value if _is_number(value) else None


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


class _Checker:
    def __init__(self, root_schema: Any) -> None:
        self.root = root_schema
        self.errors: list[str] = []
        self._active: set[tuple[int, int]] = set()

    def _fail(self, path: str, message: str) -> None:
        self.errors.append(f"{path}: {message}")

    # --- $ref -----------------------------------------------------------------

    def _resolve(self, ref: str) -> Any:
        """A local JSON pointer (``#``, ``#/$defs/X``, ``#/definitions/X``, ...);
        None when it points nowhere."""
        if not ref.startswith("#"):
            return None
        target: Any = self.root
        pointer = ref[1:]
        if not pointer:
            return target
        if not pointer.startswith("/"):
            return None
        for raw in pointer[1:].split("/"):
            part = raw.replace("~1", "/").replace("~0", "~")
            if isinstance(target, Mapping) and part in target:
                target = target[part]
            elif isinstance(target, list) and part.isdigit() and int(part) < len(target):
                target = target[int(part)]
            else:
                return None
        return target

    # --- the walk -------------------------------------------------------------

    def check(self, value: Any, schema: Any, path: str) -> None:
        if len(self.errors) >= _MAX_ERRORS:
            return
        if schema is False:
            self._fail(path, "no value is allowed here")
            return
        if not isinstance(schema, Mapping):
            return
        key = (id(schema), id(value))
        if key in self._active:  # a $ref cycle that does not descend into the value
            return
        self._active.add(key)
        try:
            self._check(value, schema, path)
        finally:
            self._active.discard(key)

    def _check(self, value: Any, schema: Mapping[str, Any], path: str) -> None:
        if value is None and schema.get("nullable") is True:
            return
        ref = schema.get("$ref")
        if isinstance(ref, str):
            target = self._resolve(ref)
            if target is not None:
                self.check(value, target, path)
        if not self._check_type(value, schema, path):
            return  # the other keywords would only repeat the type error
        self._check_values(value, schema, path)
        self._check_combinators(value, schema, path)
        if _is_number(value):
            self._check_number(value, schema, path)
        elif isinstance(value, str):
            self._check_string(value, schema, path)
        elif isinstance(value, list | tuple):
            self._check_array(value, schema, path)
        elif isinstance(value, Mapping):
            self._check_object(value, schema, path)

    def _check_type(self, value: Any, schema: Mapping[str, Any], path: str) -> bool:
        declared = schema.get("type")
        names: list[str]
        if isinstance(declared, str):
            names = [declared]
        elif isinstance(declared, list) and all(isinstance(n, str) for n in declared):
            names = list(declared)
        else:
            return True
        verdicts = [_is_type(value, n) for n in names]
        if any(v is None for v in verdicts) or any(verdicts) or not names:
            return True  # an unknown type name: not ours to judge
        self._fail(path, f"expected {' or '.join(names)}, got {_show(value)}")
        return False

    def _check_values(self, value: Any, schema: Mapping[str, Any], path: str) -> None:
        if "const" in schema and not _json_equal(value, schema["const"]):
            self._fail(path, f"expected {_show(schema['const'])}, got {_show(value)}")
        enum = schema.get("enum")
        if isinstance(enum, list) and not any(_json_equal(value, e) for e in enum):
            self._fail(path, f"expected one of {_show(enum, 120)}, got {_show(value)}")

    def _matches(self, value: Any, schema: Any, path: str) -> list[str]:
        saved = self.errors
        self.errors = []
        try:
            self.check(value, schema, path)
            return self.errors
        finally:
            self.errors = saved

    def _check_combinators(self, value: Any, schema: Mapping[str, Any], path: str) -> None:
        all_of = schema.get("allOf")
        if isinstance(all_of, list):
            for sub in all_of:
                self.check(value, sub, path)
        any_of = schema.get("anyOf")
        if isinstance(any_of, list) and any_of:
            results = [self._matches(value, sub, path) for sub in any_of]
            if all(results):
                best = min(results, key=len)
                detail = f" (closest: {best[0]})" if len(best) == 1 else ""
                self._fail(path, f"matches none of the anyOf alternatives{detail}")
        one_of = schema.get("oneOf")
        if isinstance(one_of, list) and one_of:
            results = [self._matches(value, sub, path) for sub in one_of]
            passed = sum(1 for r in results if not r)
            if passed == 0:
                best = min(results, key=len)
                detail = f" (closest: {best[0]})" if len(best) == 1 else ""
                self._fail(path, f"matches none of the oneOf alternatives{detail}")
            elif passed > 1:
                self._fail(path, f"matches {passed} of the oneOf alternatives, expected exactly 1")

    def _check_number(self, value: float, schema: Mapping[str, Any], path: str) -> None:
        if isinstance(value, float) and math.isnan(value):
            return
        minimum, maximum = _number(schema.get("minimum")), _number(schema.get("maximum"))
        ex_min: Any = schema.get("exclusiveMinimum")
        ex_max: Any = schema.get("exclusiveMaximum")
        if minimum is not None:
            if ex_min is True and value <= minimum:  # draft 4: a flag on minimum
                self._fail(path, f"{_show(value)} is not greater than {_show(minimum)}")
            elif value < minimum:
                self._fail(path, f"{_show(value)} is less than the minimum {_show(minimum)}")
        if maximum is not None:
            if ex_max is True and value >= maximum:
                self._fail(path, f"{_show(value)} is not less than {_show(maximum)}")
            elif value > maximum:
                self._fail(path, f"{_show(value)} is more than the maximum {_show(maximum)}")
        if _number(ex_min) is not None and value <= ex_min:
            self._fail(path, f"{_show(value)} is not greater than {_show(ex_min)}")
        if _number(ex_max) is not None and value >= ex_max:
            self._fail(path, f"{_show(value)} is not less than {_show(ex_max)}")

    def _check_string(self, value: str, schema: Mapping[str, Any], path: str) -> None:
        low, high = _count(schema.get("minLength")), _count(schema.get("maxLength"))
        if low is not None and len(value) < low:
            self._fail(path, f"{_show(value)} is shorter than {low} characters")
        if high is not None and len(value) > high:
            self._fail(path, f"{_show(value)} is longer than {high} characters")

    def _check_array(self, value: Sequence[Any], schema: Mapping[str, Any], path: str) -> None:
        low, high = _count(schema.get("minItems")), _count(schema.get("maxItems"))
        if low is not None and len(value) < low:
            self._fail(path, f"expected at least {low} items, got {len(value)}")
        if high is not None and len(value) > high:
            self._fail(path, f"expected at most {high} items, got {len(value)}")
        if schema.get("uniqueItems") is True:
            for i in range(len(value)):
                if any(_json_equal(value[i], value[j]) for j in range(i)):
                    self._fail(f"{path}[{i}]", "repeats an earlier item (uniqueItems)")
                    break
        items = schema.get("items")
        prefix = schema.get("prefixItems")
        if isinstance(prefix, list):
            positional, rest = prefix, items
        elif isinstance(items, list):  # draft 4-7 tuples
            positional, rest = items, schema.get("additionalItems")
        else:
            positional, rest = [], items
        for i, item in enumerate(value):
            sub = positional[i] if i < len(positional) else rest
            if sub is not None:
                self.check(item, sub, f"{path}[{i}]")

    def _check_object(self, value: Mapping[Any, Any], schema: Mapping[str, Any], path: str) -> None:
        properties = schema.get("properties")
        if not isinstance(properties, Mapping):
            properties = {}
        required = schema.get("required")
        if isinstance(required, list):
            for name in required:
                if isinstance(name, str) and name not in value:
                    self._fail(_child(path, name), "required property is missing")
        patterns: list[tuple[re.Pattern[str], Any]] = []
        pattern_props = schema.get("patternProperties")
        if isinstance(pattern_props, Mapping):
            for pattern, sub in pattern_props.items():
                try:
                    patterns.append((re.compile(str(pattern)), sub))
                except (re.error, RecursionError, OverflowError):
                    continue
        additional = schema.get("additionalProperties", True)
        for name, item in value.items():
            key = str(name)
            where = _child(path, key)
            matched = False
            if key in properties:
                matched = True
                self.check(item, properties[key], where)
            for regex, sub in patterns:
                if regex.search(key):
                    matched = True
                    self.check(item, sub, where)
            if matched:
                continue
            if additional is False:
                self._fail(where, "unexpected property")
            elif isinstance(additional, Mapping):
                self.check(item, additional, where)
