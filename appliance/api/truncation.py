"""The Responses API's `truncation: "auto"`: a conversation longer than the model's
context loses its oldest turns, whole, until it fits (OpenAI drops items from the
beginning). A turn runs from a user message to the next, so a call and its results go
together; the system messages (the instructions) and the last turn always stay.

The worker counts each candidate's prompt (`count`: rendered and tokenized, no model
step); the fewest turns dropped that fit, with room left for an answer, are found by
bisection (a few counts, however long the conversation).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request

from appliance.api.pipeline import chat_frame, first_frame, worker_frames
from appliance.api.schemas import ChatRequest

__all__ = ["fit_to_context", "turn_starts", "without_oldest"]

ANSWER_SHARE = 4  # room kept for the answer: max_tokens, at most a quarter of the context


def turn_starts(messages: list[dict[str, Any]]) -> list[int]:
    """Where each turn begins: the user messages after the leading system ones."""
    lead = 0
    while lead < len(messages) and messages[lead].get("role") in ("system", "developer"):
        lead += 1
    return [i for i in range(lead, len(messages)) if messages[i].get("role") == "user"]


def without_oldest(messages: list[dict[str, Any]], dropped: int) -> list[dict[str, Any]]:
    """The leading system messages, then the conversation from turn `dropped` on."""
    starts = turn_starts(messages)
    if dropped <= 0 or not starts:
        return list(messages)
    return messages[: starts[0]] + messages[starts[min(dropped, len(starts) - 1)] :]


async def _prompt_tokens(request: Request, name: str, req: ChatRequest) -> tuple[int, int]:
    frame = chat_frame(req, kind="count")
    frames = worker_frames(request, name, frame, want_embedding=False)
    answer = await first_frame(frames)
    await frames.aclose()
    return int(answer["tokens"]), int(answer["n_ctx"])


async def fit_to_context(
    request: Request,
    name: str,
    chat_body: dict[str, Any],
    parse: Callable[[dict[str, Any]], ChatRequest],
) -> dict[str, Any] | None:
    """`chat_body` with the fewest oldest turns dropped that make its prompt fit, leaving
    room for the answer; None when only its last turn is left and it still does not."""
    messages = list(chat_body["messages"])
    turns = len(turn_starts(messages))

    async def fits(dropped: int) -> bool:
        req = parse({**chat_body, "messages": without_oldest(messages, dropped)})
        tokens, n_ctx = await _prompt_tokens(request, name, req)
        room = max(1, min(req.params.max_tokens, n_ctx // ANSWER_SHARE))
        return tokens + room <= n_ctx

    if turns < 2 or not await fits(turns - 1):
        return None
    low, high = 1, turns - 1  # dropping `high` turns fits; none dropped did not
    while low < high:
        middle = (low + high) // 2
        if await fits(middle):
            high = middle
        else:
            low = middle + 1
    return {**chat_body, "messages": without_oldest(messages, high)}
