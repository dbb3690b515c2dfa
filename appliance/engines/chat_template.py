"""Chat templates (Jinja, as in Hugging Face tokenizers and GGUF metadata), rendered sandboxed.

Templates come with downloaded models, so they are untrusted code. They run in Jinja's
``ImmutableSandboxedEnvironment`` with the globals and filters Hugging Face transformers
provides (``raise_exception``, ``strftime_now``, its ``tojson``), and with guards on top:

- any access to an unsafe attribute fails at once (Jinja would render it as empty);
- the rendered text is capped (``max_output_chars``) while it is produced;
- ``range()`` loops and function calls respect a time budget (``timeout_s``);
- ``*``, ``**`` and ``%`` refuse operands that would build huge values; calls and filters
  refuse integer arguments beyond the output cap (``'x'.ljust(10**10)``, ``|center(10**10)``)
  and format widths beyond it.

This bounds the obvious abuses, not all of them: Jinja has no preemption, and a loop over
input data with no call and no output inside, or a filter chain that multiplies sizes
(``|replace``), is only bounded by the input. Render in a process that can be ended.
"""

from __future__ import annotations

import contextvars
import copy
import functools
import json
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, NoReturn

import jinja2
import jinja2.ext
import jinja2.filters
import jinja2.nodes
import jinja2.parser
import jinja2.runtime
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment, safe_range

__all__ = [
    "DEFAULT_MAX_OUTPUT_CHARS",
    "DEFAULT_TIMEOUT_S",
    "ChatTemplate",
    "ChatTemplateError",
]

DEFAULT_MAX_OUTPUT_CHARS = 8 * 1024 * 1024
DEFAULT_TIMEOUT_S = 10.0
_MAX_POW_BITS = 1 << 16
_PERCENT_WIDTH = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\d+)?(?:\.(\d+))?")
_BRACE_SPEC = re.compile(r"\{[^{}]*\}")


class ChatTemplateError(ValueError):
    """A chat template that does not compile, fails, or misbehaves while rendering."""


class _Budget:
    def __init__(self, deadline: float, timeout_s: float, max_chars: int) -> None:
        self.deadline = deadline
        self.timeout_s = timeout_s
        self.max_chars = max_chars

    def check(self) -> None:
        if time.monotonic() > self.deadline:
            raise ChatTemplateError(
                f"chat template took too long to render (over {self.timeout_s:g}s)"
            )


_budget: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar(
    "chat_template_budget", default=None
)


def _check_budget() -> None:
    budget = _budget.get()
    if budget is not None:
        budget.check()


def _max_chars() -> int:
    budget = _budget.get()
    return budget.max_chars if budget is not None else DEFAULT_MAX_OUTPUT_CHARS


class _BudgetedRange:
    """``range`` for templates: bounded like Jinja's, and checks the time budget per step."""

    def __init__(self, *args: int) -> None:
        self._range: range = safe_range(*args)

    def __iter__(self) -> Iterator[int]:
        for i in self._range:
            _check_budget()
            yield i

    def __reversed__(self) -> Iterator[int]:
        for i in reversed(self._range):
            _check_budget()
            yield i

    def __len__(self) -> int:
        return len(self._range)

    def __getitem__(self, index: int) -> int:
        return self._range[index]

    def __contains__(self, value: object) -> bool:
        return value in self._range

    def __repr__(self) -> str:
        return repr(self._range)


def _raise_exception(message: str) -> NoReturn:
    raise ChatTemplateError(str(message))


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


def _tojson(
    value: Any,
    ensure_ascii: bool = False,
    indent: int | str | None = None,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    # As Hugging Face transformers: no HTML escaping, and json.dumps' options exposed.
    # A filter chain (`tools | map(attribute='function')`) yields a generator: as a list,
    # as llama.cpp's renderer does.
    return json.dumps(
        value,
        ensure_ascii=ensure_ascii,
        indent=indent,
        separators=separators,
        sort_keys=sort_keys,
        default=_listed,
    )


def _listed(value: Any) -> Any:
    if isinstance(value, Iterator):
        _check_budget()
        return list(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


class _GenerationExtension(jinja2.ext.Extension):
    """``{% generation %}...{% endgeneration %}`` (transformers' assistant mask marker): a no-op."""

    tags = {"generation"}  # noqa: RUF012 - Jinja's API

    def parse(self, parser: jinja2.parser.Parser) -> jinja2.nodes.Node:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_render", []), [], [], body).set_lineno(
            lineno
        )

    def _render(self, caller: Callable[[], str]) -> str:
        return caller()


def _check_int_args(args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
    limit = _max_chars()
    for arg in (*args, *kwargs.values()):
        if isinstance(arg, int) and not isinstance(arg, bool) and abs(arg) > limit:
            raise SecurityError(f"integer argument {arg} in the template is too large")


def _check_percent_format(fmt: str) -> None:
    limit = _max_chars()
    for width, precision in _PERCENT_WIDTH.findall(fmt):
        if int(width or 0) > limit or int(precision or 0) > limit:
            raise SecurityError("format width in the template is too large")


def _check_format_spec(fmt: str) -> None:
    limit = _max_chars()
    for spec in _BRACE_SPEC.findall(fmt):
        if any(int(n) > limit for n in re.findall(r"\d+", spec)):
            raise SecurityError("format width in the template is too large")


def _guard_filter(func: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a filter so that integer arguments (widths, counts) stay within the output cap."""
    skip = 2 if hasattr(func, "jinja_pass_arg") else 1  # (context,) value

    @functools.wraps(func)  # keeps jinja_pass_arg
    def guarded(*args: Any, **kwargs: Any) -> Any:
        _check_budget()
        _check_int_args(args[skip:], kwargs)
        return func(*args, **kwargs)

    return guarded


def _format_filter(value: Any, *args: Any, **kwargs: Any) -> str:
    _check_percent_format(str(value))
    return jinja2.filters.do_format(value, *args, **kwargs)


def _blank_and_text(left: Any, right: Any) -> bool:
    def blank(value: Any) -> bool:
        return value is None or isinstance(value, jinja2.Undefined)

    return (blank(left) and isinstance(right, str)) or (isinstance(left, str) and blank(right))


def _sequence_len(value: Any) -> int | None:
    if isinstance(value, str | bytes | list | tuple):
        return len(value)
    return None


class _Environment(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        # llama.cpp's template engine lets a template grow and drain a list (Kimi K2's
        # templates queue their call ids so); `render` hands each render its own copy of
        # the request's data, so only the template's own values change. Each call is
        # budgeted (`call`), so a loop of appends ends with the render's time.
        if isinstance(obj, list) and attr in ("append", "pop"):
            return True
        return bool(super().is_safe_attribute(obj, attr, value))

    def unsafe_undefined(self, obj: Any, attribute: str) -> jinja2.Undefined:
        raise SecurityError(
            f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe"
        )

    def call_binop(
        self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any
    ) -> Any:
        limit = _max_chars()
        if operator == "+" and _blank_and_text(left, right):
            # As llama.cpp's template engine: a missing value (a tool without its
            # optional description, which Apertus's template adds to text) or null,
            # added to text, is empty text.
            return (left if isinstance(left, str) else "") + (
                right if isinstance(right, str) else ""
            )
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                size = _sequence_len(seq)
                if size is not None and isinstance(n, int) and size * n > limit:
                    raise SecurityError("repetition in the template builds too large a value")
        elif operator == "**":
            if (
                isinstance(left, int)
                and isinstance(right, int)
                and abs(left) > 1
                and right > 0
                and abs(left).bit_length() * right > _MAX_POW_BITS
            ):
                raise SecurityError("power in the template builds too large a number")
        elif operator == "%" and isinstance(left, str):
            _check_percent_format(left)
        return super().call_binop(context, operator, left, right)

    def call(
        __self,  # mirrors Jinja's signature
        __context: jinja2.runtime.Context,
        __obj: Any,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        _check_budget()
        _check_int_args(args, kwargs)
        target = getattr(__obj, "__wrapped__", __obj)  # Jinja wraps str.format
        owner = getattr(target, "__self__", None)
        if isinstance(owner, str) and getattr(target, "__name__", "") in ("format", "format_map"):
            _check_format_spec(owner)
        return super().call(__context, __obj, *args, **kwargs)


def _make_environment() -> _Environment:
    env = _Environment(
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=[jinja2.ext.loopcontrols, _GenerationExtension],
    )
    env.filters["format"] = _format_filter
    env.filters["tojson"] = _tojson
    env.filters = {name: _guard_filter(func) for name, func in env.filters.items()}
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    env.globals["range"] = _BudgetedRange
    return env


class ChatTemplate:
    """A compiled chat template. Compile errors raise :class:`ChatTemplateError`."""

    def __init__(
        self,
        source: str,
        *,
        bos_token: str = "",
        eos_token: str = "",
        max_output_chars: int = DEFAULT_MAX_OUTPUT_CHARS,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        if not isinstance(source, str):
            raise ChatTemplateError("chat template must be a string")
        self.source = source
        self.bos_token = bos_token
        self.eos_token = eos_token
        # A request's own variables (`enable_thinking`, `reasoning_effort`): see `bound`.
        self.variables: dict[str, Any] = {}
        self.max_output_chars = max_output_chars
        self.timeout_s = timeout_s
        self._env = _make_environment()
        try:
            self._template = self._env.from_string(source)
        except jinja2.TemplateSyntaxError as exc:
            raise ChatTemplateError(
                f"chat template does not compile: {exc.message} (line {exc.lineno})"
            ) from exc
        except Exception as exc:  # any compile failure is the template's
            raise ChatTemplateError(f"chat template does not compile: {exc}") from exc

    def bound(self, variables: Mapping[str, Any]) -> ChatTemplate:
        """This template with a request's variables in every render (llama-server's and
        vLLM's `chat_template_kwargs`: Qwen3's `enable_thinking`, gpt-oss's
        `reasoning_effort`); the compiled template is shared."""
        if not variables:
            return self
        bound = copy.copy(self)
        bound.variables = {**self.variables, **variables}
        return bound

    def render(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        add_generation_prompt: bool = True,
        **extra: Any,
    ) -> str:
        """Render the prompt for ``messages``; ``extra`` become template variables."""
        variables: dict[str, Any] = {
            "bos_token": self.bos_token,
            "eos_token": self.eos_token,
            **self.variables,
        }
        variables.update(copy.deepcopy(extra))
        variables["messages"] = copy.deepcopy([dict(m) for m in messages])
        variables["add_generation_prompt"] = add_generation_prompt
        token = _budget.set(
            _Budget(time.monotonic() + self.timeout_s, self.timeout_s, self.max_output_chars)
        )
        try:
            return self._render(variables)
        finally:
            _budget.reset(token)

    def _render(self, variables: dict[str, Any]) -> str:
        parts: list[str] = []
        size = 0
        try:
            for chunk in self._template.generate(variables):
                size += len(chunk)
                if size > self.max_output_chars:
                    raise ChatTemplateError(
                        f"chat template output is over {self.max_output_chars} characters"
                    )
                parts.append(chunk)
        except ChatTemplateError:
            raise
        except SecurityError as exc:
            raise ChatTemplateError(f"chat template did something unsafe: {exc}") from exc
        except RecursionError as exc:
            raise ChatTemplateError("chat template recursed too deeply") from exc
        except MemoryError as exc:
            raise ChatTemplateError("chat template ran out of memory") from exc
        except Exception as exc:
            raise ChatTemplateError(
                f"chat template failed to render: {type(exc).__name__}: {exc}"
            ) from exc
        return "".join(parts)
