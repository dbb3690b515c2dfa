"""The worker's quick answers that run no model step: llama-server's `/tokenize`,
`/detokenize` and `/apply-template`, and a chat prompt's token count (`count`: what the
Responses API's `truncation: "auto"` fits to the context). They read only the vocabulary
and the chat template, so the worker's reader thread answers them at once, beside the
scheduler's steps (as llama-server's HTTP threads tokenize beside its decode loop)."""

from __future__ import annotations

from typing import Any, Protocol

from appliance.engines.engine import (
    ChatRenderer,
    EngineRequestError,
    check_token_ids,
    error_frame,
    render_chat_frame,
)
from appliance.engines.protocol import Frame

__all__ = ["QUESTIONS", "answer"]

QUESTIONS = frozenset({"tokenize", "detokenize", "render", "count"})


class Vocabulary(ChatRenderer, Protocol):
    n_vocab: int

    def tokenize_text(self, text: str, *, add_special: bool, parse_special: bool) -> list[int]: ...

    def special_piece(self, token: int) -> bytes: ...

    n_ctx: int

    def prompt_tokens(self, text: str, *, templated: bool) -> list[int]: ...


def _piece_json(piece: bytes) -> str | list[int]:
    """A piece as llama-server shows it: its text, or its bytes when not whole UTF-8."""
    try:
        return piece.decode("utf-8")
    except UnicodeDecodeError:
        return list(piece)


def _answer(engine: Any, frame: Frame) -> Frame:
    request_id = str(frame.get("id"))
    kind = frame["type"]
    if not hasattr(engine, "tokenize_text"):
        raise EngineRequestError("This model's engine cannot tokenize.", param="model")
    vocab: Vocabulary = engine
    if kind == "tokenize":
        ids = vocab.tokenize_text(
            str(frame.get("content", "")),
            add_special=bool(frame.get("add_special")),
            parse_special=bool(frame.get("parse_special", True)),
        )
        out: Frame = {"type": "tokens", "id": request_id, "tokens": ids}
        if frame.get("with_pieces"):
            out["pieces"] = [_piece_json(vocab.special_piece(t)) for t in ids]
        return out
    if kind == "detokenize":
        ids = check_token_ids(list(frame.get("tokens") or []), vocab.n_vocab, "tokens")
        text = b"".join(vocab.special_piece(t) for t in ids).decode("utf-8", "replace")
        return {"type": "text", "id": request_id, "content": text}
    prompt, _ = render_chat_frame(vocab, frame, dict(frame.get("params") or {}))
    if kind == "count":
        n = len(vocab.prompt_tokens(prompt, templated=True))
        return {"type": "count", "id": request_id, "tokens": n, "n_ctx": vocab.n_ctx}
    return {"type": "text", "id": request_id, "content": prompt}


def answer(engine: Any, frame: Frame) -> Frame:
    """The answer frame (terminal) to one question frame; an error frame if it fails."""
    try:
        return _answer(engine, frame)
    except Exception as exc:
        return error_frame(str(frame.get("id")), exc)
