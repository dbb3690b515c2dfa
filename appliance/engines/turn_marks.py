"""Where a chat prompt's turns begin and end, found from its template.

A recurrent model's state cannot be cut back to a prefix, so its prompt cache serves a
prompt only from a state saved exactly where the prompt still matches (see
`KVStreams.plan_checkpoint`). The places later prompts share are the turns' edges:
- where the first user's turn starts: a new conversation on the same system prompt and
  tools (or few-shot turns) shares everything before it;
- where the history ends, before the generation prompt: the next turn renders the same
  history, whatever it makes of the answer after it (Qwen3.5's generation prompt opens
  `<think>`, its history shows none).

The template's markers for them are found by rendering small probes, as llama.cpp's
template analysis finds a template's role delimiters.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from appliance.engines.chat_template import ChatTemplate, ChatTemplateError
from appliance.engines.prefix_cache import common_prefix

_SYSTEM, _FIRST, _ANSWER, _SECOND = "S0-7f3a9c", "Q1-7f3a9c", "A1-7f3a9c", "Q2-7f3a9c"


@dataclass(frozen=True)
class TurnMarkers:
    opening: str = ""  # the generation prompt: `<|im_start|>assistant\n` ("" unknown)
    user_start: str = ""  # what opens a user's turn: `<|im_start|>user\n` ("" unknown)


def template_markers(template: ChatTemplate) -> TurnMarkers:
    """The template's generation prompt and user-turn opening, each "" when the probes
    do not show one (a template that refuses them, or writes no such text)."""
    first = [{"role": "user", "content": _FIRST}]
    turns = [
        *first,
        {"role": "assistant", "content": _ANSWER},
        {"role": "user", "content": _SECOND},
    ]
    try:
        opened = template.render(first, add_generation_prompt=True)
        closed = template.render(first, add_generation_prompt=False)
        later = template.render(turns, add_generation_prompt=False)
    except ChatTemplateError:
        return TurnMarkers()
    opening = opened[len(closed) :] if opened.startswith(closed) else ""
    # What precedes a user's text first (after any preamble), after an answer and after a
    # system message (when the template takes one: Gemma 2's refuses it).
    before = [_between(closed, "", _FIRST), _between(later, _ANSWER, _SECOND)]
    try:
        system = [{"role": "system", "content": _SYSTEM}, *first]
        before.append(
            _between(template.render(system, add_generation_prompt=False), _SYSTEM, _FIRST)
        )
    except ChatTemplateError:
        pass
    user_start = "" if None in before else _common_suffix([b or "" for b in before])
    return TurnMarkers(opening, user_start if user_start.strip() else "")


def _between(text: str, after: str, before: str) -> str | None:
    start = text.find(after)
    end = text.find(before, start + len(after)) if start >= 0 else -1
    return text[start + len(after) : end] if end >= 0 else None


def _common_suffix(texts: list[str]) -> str:
    n = 0
    shortest = min(len(t) for t in texts)
    while n < shortest and len({t[-1 - n] for t in texts}) == 1:
        n += 1
    return texts[0][len(texts[0]) - n :]


def chat_marks(
    text: str, tokens: Sequence[int], markers: TurnMarkers, tokenize: Callable[[str], list[int]]
) -> list[int]:
    """Token positions in a chat prompt (`text`, tokenized as `tokens`) where its first
    user turn starts and where its history ends, those the markers find, ascending."""
    cuts = set()
    if markers.opening and text.endswith(markers.opening):  # not a prefill
        cuts.add(len(text) - len(markers.opening))
    if markers.user_start and (start := text.find(markers.user_start)) > 0:
        cuts.add(start)
    marks = {common_prefix(tokens, tokenize(text[:cut])) for cut in cuts}
    return sorted(m for m in marks if 0 < m < len(tokens))
