"""A chat request's prompt: the messages (and tools) through the model's template.

Tools for a template that cannot show them are offered as llama-server and LM Studio
offer them (`tool_prompt`), and a template's known slips after tool results are mended.

A final assistant message with text and no tool calls is a prefill (Anthropic's, and
llama-server's for chat completions): the prompt ends with its text, not with its turn
closed, so the answer continues it (and is only what follows). The template renders that
turn as a finished one (`add_generation_prompt` false), cut where the text starts and the
text written there. A reasoning template's generation prompt (an opened `<think>`) is so
not used: the prefill is the answer's text, the template writes whatever it writes for a
finished answer (Qwen3 an empty think block), and the output is read as content
(llama-server likewise turns reasoning off for a prefill).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from appliance.engines.chat_template import ChatTemplate, ChatTemplateError
from appliance.engines.engine import EngineRequestError
from appliance.engines.tool_prompt import (
    Message,
    example_call,
    example_turns,
    native_instructions,
    tool_turns_as_text,
    with_generic_tools,
    with_instructions,
)
from appliance.engines.turn_marks import TurnMarkers, template_markers
from appliance.parsing import Family, prompt_opens_reasoning

MAX_MARKERS_KEPT = 32


class TemplateChat:
    """An engine's `render_chat` (engine.ChatRenderer) from its chat template and tool
    family, the same for every engine."""

    template: ChatTemplate
    tool_family: str
    _markers: dict[str, TurnMarkers]

    def render_chat(
        self,
        messages: Sequence[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
        parallel: bool = True,
        variables: dict[str, Any] | None = None,
    ) -> tuple[str, bool]:
        return render_prompt(
            self.template,
            messages,
            tools,
            family=self.tool_family,
            parallel=parallel,
            variables=variables,
        )

    def turn_markers(self, variables: Mapping[str, Any] | None = None) -> TurnMarkers:
        """The template's generation prompt and user-turn opening, with a request's
        variables (`turn_marks`)."""
        if not hasattr(self, "_markers") or len(self._markers) >= MAX_MARKERS_KEPT:
            self._markers = {}  # clients choose the variables: the memory is bounded
        key = repr(sorted((variables or {}).items()))
        if key not in self._markers:
            self._markers[key] = template_markers(self.template.bound(variables or {}))
        return self._markers[key]


def render_prompt(
    template: ChatTemplate,
    messages: Sequence[Mapping[str, Any]],
    tools: list[dict[str, Any]] | None = None,
    *,
    family: str = "generic",
    parallel: bool = True,
    variables: Mapping[str, Any] | None = None,
) -> tuple[str, bool]:
    """The prompt for a chat request, and whether it opens a reasoning block.

    Tools for a template that cannot show them, as llama-server and LM Studio offer them
    (`tool_prompt`): a model whose calls are read as plain JSON (the generic family) gets
    them described in a system message; one whose template writes calls in another
    syntax, with an example call the template wrote. A template that can write no call
    is refused (400 naming `tools`): the model would answer without knowing them."""
    template = template.bound(variables or {})
    messages = developer_as_system(template.source, messages)
    prefill = is_prefill(messages)
    if tools and not supports_tools(template.source):
        if family != "generic":
            return _render_native_tools(template, messages, tools, prefill, family)
        text = _render_described(
            template,
            lambda system_role: with_generic_tools(
                messages, tools, parallel=parallel, system_role=system_role
            ),
            prefill,
        )
        return text, opens_reasoning(text)
    if not tools and has_tool_turns(messages) and "tool_calls" not in template.source:
        # A history with calls, sent without the tools (the final answer's turn, as
        # LangChain sends it), to a template that never looks at calls: the calls and
        # results as text, not an empty turn.
        messages = tool_turns_as_text(messages, parallel=parallel)
    extra = {"tools": tools} if tools else {}
    text = _answer_after_tool_results(template, _render(template, messages, prefill, **extra))
    return text, opens_reasoning(text, family if tools else None)


def has_tool_turns(messages: Sequence[Mapping[str, Any]]) -> bool:
    return any(m.get("role") == "tool" or m.get("tool_calls") for m in messages)


def developer_as_system(
    source: str, messages: Sequence[Mapping[str, Any]]
) -> Sequence[Mapping[str, Any]]:
    """OpenAI's `developer` role as `system`, for a template that does not know it (most:
    SmolLM's opened a turn named "developer" after its own default system prompt, so the
    instructions lost their place). llama-server maps it the same way."""
    if "developer" in source or not any(m.get("role") == "developer" for m in messages):
        return messages
    return [{**m, "role": "system"} if m.get("role") == "developer" else m for m in messages]


def is_prefill(messages: Sequence[Mapping[str, Any]]) -> bool:
    """Whether the last message is an assistant's text to continue (not a finished turn
    with tool calls, nor an empty one)."""
    if not messages:
        return False
    last = messages[-1]
    content = last.get("content")
    return (
        last.get("role") == "assistant"
        and not last.get("tool_calls")
        and isinstance(content, str)
        and content != ""
    )


# Stands for the prefill while the template renders, to find where its text starts: plain
# letters, which no template trims, escapes or looks for.
_PREFILL_MARK = "PrefillMark7f3a9c"


def _render_continued(
    template: ChatTemplate, messages: Sequence[Mapping[str, Any]], **extra: Any
) -> str:
    """The prompt that ends with the last message's text (a prefill, see the module).

    The mark stands for the text, so a template that trims or splits the content, or whose
    end-of-turn marker contains the text (a prefill of `|`), still gives the place. A
    template that does not show the mark, or fails on a final assistant turn, gets
    llama-server's way: the turn before opened with the generation prompt, the text after."""
    *head, last = messages
    text = str(last["content"])
    try:
        marked = template.render(
            [*head, {**last, "content": _PREFILL_MARK}], add_generation_prompt=False, **extra
        )
    except ChatTemplateError:
        marked = ""
    at = marked.rfind(_PREFILL_MARK)
    if at < 0:
        opened = template.render(head, add_generation_prompt=True, **extra)
        # A reasoning template's generation prompt may open <think>: the prefill is the
        # answer, so it starts after that block is closed, as the finished-turn rendering.
        if opened.rstrip().endswith("<think>"):
            opened = opened.rstrip() + "\n\n</think>\n\n"
        return opened + text
    return marked[:at] + text


# DeepSeek R1's template ends a prompt after tool results with no assistant turn opened
# (llama-server mends it the same way).
_DANGLING_TOOL_OUTPUTS = "<｜tool▁outputs▁end｜>"


def _answer_after_tool_results(template: ChatTemplate, prompt: str) -> str:
    """`prompt`, with the assistant's turn opened when the template left it after the tool
    results."""
    if prompt.endswith(_DANGLING_TOOL_OUTPUTS):
        return prompt + template.eos_token + "<｜Assistant｜>"
    return prompt


def _render_native_tools(
    template: ChatTemplate,
    messages: Sequence[Mapping[str, Any]],
    tools: list[dict[str, Any]],
    prefill: bool,
    family: str,
) -> tuple[str, bool]:
    """Tools described with the call syntax the template writes (see `render_prompt`)."""
    before, after = example_turns()
    try:
        example = example_call(
            template.render(before, add_generation_prompt=True),
            template.render(after, add_generation_prompt=False),
            template.eos_token,
        )
    except ChatTemplateError:
        example = None
    if example is None:
        raise EngineRequestError(
            "this model's chat template does not support tools, so the model would never "
            "see them: remove 'tools', or give the model a template that can show tools "
            "(chat_template in models.toml: the path of a Jinja file)",
            code="tools_unsupported",
            status=400,
            param="tools",
        )
    text = native_instructions(tools, example)
    rendered = _render_described(
        template,
        lambda system_role: with_instructions(messages, text, system_role=system_role),
        prefill,
    )
    rendered = _answer_after_tool_results(template, rendered)
    return rendered, opens_reasoning(rendered, family)


def _render_described(
    template: ChatTemplate, described: Callable[[bool], list[Message]], prefill: bool
) -> str:
    """The prompt with the tools described in a system message (`described(True)`), or at
    the start of the first user turn for a template that refuses a system message."""
    try:
        return _render_raw(template, described(True), prefill)
    except ChatTemplateError:
        return _render(template, described(False), prefill)


def _render_raw(
    template: ChatTemplate, messages: Sequence[Mapping[str, Any]], prefill: bool, **extra: Any
) -> str:
    """The prompt that opens the assistant's answer, or continues its prefill."""
    if prefill:
        return _render_continued(template, messages, **extra)
    return template.render(messages, add_generation_prompt=True, **extra)


def _render(
    template: ChatTemplate, messages: Sequence[Mapping[str, Any]], prefill: bool, **extra: Any
) -> str:
    try:
        return _render_raw(template, messages, prefill, **extra)
    except ChatTemplateError as exc:
        raise EngineRequestError(
            str(exc), code="invalid_chat_template", status=400, param="messages"
        ) from exc


def supports_tools(source: str) -> bool:
    """Whether a template renders the request's tools (it reads a `tools` variable)."""
    return re.search(r"\btools\b", source) is not None


def opens_reasoning(rendered: str, family: str | None = None) -> bool:
    """True when the prompt ends inside an opened ``<think>`` (output starts as reasoning).
    With a ``family`` (a request with tools, whose output that family's parser reads),
    inside the family's own reasoning block: Cohere2 MoE's prompt opens
    ``<|START_THINKING|>``, which the `<think>` splitter of answers without tools does
    not know."""
    if family is not None:
        return prompt_opens_reasoning(rendered, Family(family))
    return rendered.rstrip().endswith("<think>")
