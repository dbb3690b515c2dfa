"""llama-server's routes that ask about the model and generate nothing: `/tokenize`,
`/detokenize`, `/apply-template` (answered by the worker's reader, `token_service.py`),
`/props` and `/slots` (what SillyTavern and llama.vscode read the context size, the
template and the slots from). Each takes an optional `model`; without one, the default
chat model answers, loaded as llama-server's always is."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from appliance.api.errors import invalid_request
from appliance.api.pipeline import (
    chat_frame,
    first_frame,
    manager_of,
    model_name,
    read_object,
    worker_frames,
)
from appliance.api.schemas import parse_chat_request
from appliance.engines.protocol import Frame
from appliance.tiers.errors import ModelError
from appliance.tiers.manager import ModelManager

__all__ = ["routes"]


def native_model(manager: ModelManager, requested: str) -> str:
    """The model a llama-server client names, else the default: llama-server serves its
    one model whatever `model` says (Continue sends a placeholder), so a name this
    server does not know falls back to the default chat model."""
    if requested:
        try:
            return manager.canonical(requested)
        except ModelError:
            pass
    return model_name(manager, "", embedding=False)


async def _ask(request: Request, body: dict[str, Any], frame: Frame) -> Frame:
    """One question to the model's worker (loaded if it is not): its answer frame."""
    name = native_model(manager_of(request), _model(body))
    frames = worker_frames(request, name, frame, want_embedding=None)
    answer = await first_frame(frames)
    await frames.aclose()
    return answer


def _model(body: dict[str, Any]) -> str:
    value = body.get("model") or ""
    if not isinstance(value, str):
        raise invalid_request("'model' must be a string.", "model")
    return value


async def tokenize(request: Request) -> Response:
    body = await read_object(request)
    content = body.get("content")
    if not isinstance(content, str):
        raise invalid_request("'content' is required: the text to tokenize.", "content")
    frame: Frame = {
        "type": "tokenize",
        "content": content,
        "add_special": bool(body.get("add_special", False)),
        "parse_special": bool(body.get("parse_special", True)),
        "with_pieces": bool(body.get("with_pieces", False)),
    }
    answer = await _ask(request, body, frame)
    ids = list(answer.get("tokens") or [])
    if frame["with_pieces"]:
        pieces = list(answer.get("pieces") or [])
        return JSONResponse(
            {"tokens": [{"id": t, "piece": p} for t, p in zip(ids, pieces, strict=True)]}
        )
    return JSONResponse({"tokens": ids})


async def detokenize(request: Request) -> Response:
    body = await read_object(request)
    tokens = body.get("tokens", [])
    if not isinstance(tokens, list) or not all(
        isinstance(t, int) and not isinstance(t, bool) for t in tokens
    ):
        raise invalid_request("'tokens' must be a list of token ids.", "tokens")
    answer = await _ask(request, body, {"type": "detokenize", "tokens": tokens})
    return JSONResponse({"content": answer.get("content", "")})


async def apply_template(request: Request) -> Response:
    """The chat prompt the model's template makes of `messages`, generating nothing."""
    settings = request.app.state.settings
    body = await read_object(request)
    req = parse_chat_request(
        {**body, "stream": False, "max_tokens": 1},
        default_max_tokens=settings.default_max_tokens,
        max_tokens_limit=settings.max_tokens_limit,
    )
    answer = await _ask(request, body, chat_frame(req, kind="render"))
    return JSONResponse({"prompt": answer.get("content", "")})


async def _loaded(request: Request) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """The model `?model=` names (else the default), loaded as llama-server's always is
    (unless `autoload=false`, as llama-server's router takes it: llama.vscode asks so of
    every model listed), with its engine's facts and its view."""
    manager = manager_of(request)
    name = native_model(manager, request.query_params.get("model", ""))
    slot = manager.slots.get(name)
    if slot is not None and slot.worker is not None and slot.worker.alive:
        return name, dict(slot.worker.info), manager.describe(name)
    if request.query_params.get("autoload", "true").lower() in ("false", "0", "no"):
        entry = manager.catalog.exact(name)
        context = entry.context if entry is not None else None
        return name, {"n_ctx": context or manager.settings.default_context}, manager.describe(name)
    worker = await manager.load(name, reason="first request")
    return name, dict(worker.info), manager.describe(name)


async def props(request: Request) -> Response:
    """llama-server's server properties for the model (`?model=`, else the default):
    what SillyTavern and llama.vscode read the context size and template from (the model
    is loaded first, as llama-server's always is)."""
    from appliance import __version__

    name, engine, view = await _loaded(request)
    n_ctx = engine.get("n_ctx")
    slots = engine.get("slots") or 1
    defaults = {
        "n_predict": -1,
        "seed": -1,
        "temperature": 0.8,
        "top_k": 40,
        "top_p": 0.95,
        "min_p": 0.05,
        "repeat_last_n": 64,
        "repeat_penalty": 1.0,
        "presence_penalty": 0.0,
        "frequency_penalty": 0.0,
        "stop": [],
        "stream": False,
        "n_probs": 0,
    }
    return JSONResponse(
        {
            "default_generation_settings": {
                "id": 0,
                "id_task": -1,
                "n_ctx": n_ctx,
                "is_processing": bool(view.get("slots_busy")),
                "params": defaults,
            },
            "total_slots": slots,
            "model_path": name,
            "model_alias": name,
            "chat_template": engine.get("chat_template", ""),
            "modalities": {"vision": False, "audio": False},
            "build_info": f"appliance {__version__}",
            "is_sleeping": False,
        }
    )


async def slots(request: Request) -> Response:
    """Each slot of the model and whether it is busy (llama-server's `/slots`, short)."""
    name, engine, view = await _loaded(request)
    n_ctx = engine.get("n_ctx")
    count = int(engine.get("slots") or 1)
    busy = int(view.get("slots_busy") or 0)
    return JSONResponse(
        [{"id": i, "n_ctx": n_ctx, "model": name, "is_processing": i < busy} for i in range(count)]
    )


routes = [
    Route("/tokenize", tokenize, methods=["POST"]),
    Route("/detokenize", detokenize, methods=["POST"]),
    Route("/apply-template", apply_template, methods=["POST"]),
    Route("/props", props, methods=["GET"]),
    Route("/slots", slots, methods=["GET"]),
]
