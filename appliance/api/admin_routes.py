"""Admin routes under /admin: models and their state, load, unload, pull, import, events.

The CLI and (later) the TUI are clients of these routes; they never touch the
engine or the store directly while the daemon runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from appliance.api.errors import APIError, invalid_request, model_not_found
from appliance.api.openai_routes import SSE_HEADERS, read_json
from appliance.api.sse import follow, sse_data
from appliance.settings import parse_size
from appliance.store.gguf_meta import GGUFError
from appliance.store.model_folder import ModelFolderError, read_model_info
from appliance.store.store import StoreError
from appliance.tiers.estimate import estimate_memory
from appliance.tiers.manager import ModelManager
from appliance.tiers.policy import fmt_bytes
from appliance.tiers.serving import Serving, serving_for


def _manager(request: Request) -> ModelManager:
    manager: ModelManager = request.app.state.manager
    return manager


def _store_error(exc: StoreError) -> APIError:
    name = type(exc).__name__
    status = {
        "NotFoundError": 404,
        "InvalidNameError": 400,
        "AmbiguousFileError": 400,
        "DiskFullError": 507,
        "HubUnavailableError": 503,
        "IntegrityError": 502,
    }.get(name, 500)
    code = {
        "NotFoundError": "model_not_found",
        "DiskFullError": "disk_full",
        "HubUnavailableError": "hub_unavailable",
        "IntegrityError": "integrity_error",
        "InvalidNameError": "invalid_name",
        "AmbiguousFileError": "ambiguous_file",
    }.get(name)
    kind = "invalid_request_error" if status < 500 else "server_error"
    return APIError(status, str(exc), kind, None, code)


async def list_models(request: Request) -> Response:
    manager = _manager(request)
    return JSONResponse({"models": [manager.describe(n) for n in manager.known_names()]})


async def get_model(request: Request) -> Response:
    manager = _manager(request)
    return JSONResponse(manager.describe(manager.canonical(request.path_params["name"])))


async def load_model(request: Request) -> Response:
    manager = _manager(request)
    name = manager.canonical(request.path_params["name"])
    await manager.load(name, reason="admin request")
    return JSONResponse(manager.describe(name))


async def unload_model(request: Request) -> Response:
    manager = _manager(request)
    name = manager.canonical(request.path_params["name"])
    unloaded = await manager.unload(name, "admin request")
    return JSONResponse({**manager.describe(name), "unloaded": unloaded})


async def _body_field(request: Request, key: str, choices: tuple[str, ...]) -> str:
    body = await read_json(request)
    value = body.get(key) if isinstance(body, dict) else None
    if value not in choices:
        raise invalid_request(f'send {{"{key}": one of {", ".join(choices)}}}', key)
    return str(value)


async def set_tier(request: Request) -> Response:
    manager = _manager(request)
    name = manager.canonical(request.path_params["name"])
    tier = await _body_field(request, "tier", ("hot", "warm", "cold"))
    await manager.set_tier(name, tier, "operator request")
    return JSONResponse(manager.describe(name))


async def pin_model(request: Request) -> Response:
    manager = _manager(request)
    name = manager.canonical(request.path_params["name"])
    tier = await _body_field(request, "tier", ("hot", "warm"))
    await manager.set_pin(name, tier)
    return JSONResponse(manager.describe(name))


async def unpin_model(request: Request) -> Response:
    manager = _manager(request)
    name = manager.canonical(request.path_params["name"])
    await manager.set_pin(name, None)
    return JSONResponse(manager.describe(name))


async def budgets(request: Request) -> Response:
    return JSONResponse(_manager(request).budgets_view())


async def set_budgets(request: Request) -> Response:
    """Runtime budget overrides (not saved: settings.toml holds the lasting ones)."""
    manager = _manager(request)
    body = await read_json(request)
    if not isinstance(body, dict):
        raise invalid_request('send {"warm": "2GiB", "hot": {"cpu": "8GiB"}, "cold": ...}')
    overrides: dict[str, int] = {}
    items: list[tuple[str, Any]] = [(k, body[k]) for k in ("warm", "cold") if k in body]
    hot = body.get("hot", {})
    if not isinstance(hot, dict):
        raise invalid_request("hot must be an object of device: size", "hot")
    items += [(f"hot:{device}", size) for device, size in hot.items()]
    for key, value in items:
        try:
            size = (
                value
                if isinstance(value, int) and not isinstance(value, bool)
                else (parse_size(value) if isinstance(value, str) else None)
            )
        except ValueError as exc:
            raise invalid_request(str(exc), key) from exc
        if size is None or size < 0:
            raise invalid_request(f"{key}: expected a size such as '8GiB'", key)
        overrides[key] = size
    manager.budget_overrides.update(overrides)
    manager.emit(
        "*",
        "budgets",
        "budgets set: " + ", ".join(f"{k} {fmt_bytes(v)}" for k, v in overrides.items()),
    )
    await manager.demote_idle()
    return JSONResponse(manager.budgets_view())


async def delete_model(request: Request) -> Response:
    manager = _manager(request)
    name = manager.canonical(request.path_params["name"])
    await manager.unload(name, "deleted from the store")
    if manager.store.get(name) is None:
        raise APIError(
            404,
            f"model '{name}' has no file in the store to delete",
            "invalid_request_error",
            "name",
            "model_not_found",
        )
    try:
        await asyncio.to_thread(manager.store.remove, name)
    except StoreError as exc:
        raise _store_error(exc) from exc
    manager.emit(name, "remove", "removed from the store")
    return JSONResponse({"deleted": name})


async def inspect_model(request: Request) -> Response:
    manager = _manager(request)
    name = manager.canonical(request.path_params["name"])
    path = manager.local_file(name)
    if path is None:
        raise APIError(
            404,
            f"model '{name}' is not pulled yet: run `appliance pull {name}`",
            "invalid_request_error",
            "name",
            "model_not_pulled",
        )
    context = request.query_params.get("context")
    try:
        info = await asyncio.to_thread(read_model_info, path)
    except (StoreError, OSError) as exc:
        raise APIError(500, f"cannot read {path}: {exc}", "server_error") from exc
    entry = manager.catalog.resolve(name)
    if context and context.isdigit():
        entry = dataclasses.replace(entry, context=int(context)) if entry else None
    settings = manager.settings
    if context and context.isdigit() and entry is None:
        settings = dataclasses.replace(settings, default_context=int(context))
    payload = inspect_payload(info, serving_for(entry, settings, info))
    payload["provider"] = _provider(manager, info.format)
    return JSONResponse(payload)


def _provider(manager: ModelManager, fmt: str) -> dict[str, str]:
    """Which runtime and device would serve a model of this format here, and why."""
    hw = manager.hardware
    if fmt == "gguf":
        if hw.engine is None:
            return {"name": "unavailable", "reason": "llama-cpp-python does not import"}
        return {
            "name": hw.engine.backend,
            "reason": f"llama-cpp-python {hw.engine.version} built for {hw.engine.backend}",
        }
    if hw.onnx is None:
        return {"name": "unavailable", "reason": "onnxruntime-genai does not import"}
    if fmt == "onnx-encoder":
        return {"name": "cpu", "reason": "embedding encoders run on onnxruntime's CPU provider"}
    if hw.onnx.cuda:
        return {"name": "cuda", "reason": "onnxruntime-genai-cuda is installed and sees a GPU"}
    return {
        "name": "cpu",
        "reason": "onnxruntime-genai is the CPU build here (FP8 ONNX models need the CUDA one)",
    }


def inspect_payload(info: Any, serving: Serving) -> dict[str, Any]:
    """A model's header (GGUF) or facts (ONNX folder), and the memory it needs as it would
    be served (every slot's KV)."""
    n_ctx = serving.n_ctx
    est = estimate_memory(info, n_ctx * serving.slots)
    return {
        "path": str(info.path),
        "format": info.format,
        "architecture": info.architecture,
        "name": info.name,
        "parameters": info.n_params,
        "quantization": info.quantization,
        "context_length": info.context_length,
        "file_size": info.file_size,
        "embedding": info.is_embedding,
        "has_chat_template": info.chat_template is not None,
        "serving": {
            "context": n_ctx,
            "slots": serving.slots,
            "max_queue": serving.max_queue,
            "flash_attn": serving.flash_attn,
            "deterministic": serving.deterministic,
        },
        "estimate": {
            "context": n_ctx,
            "slots": serving.slots,
            "weights_bytes": est.weights_bytes,
            "kv_cache_bytes": est.kv_cache_bytes,
            "compute_bytes": est.compute_bytes,
            "total_bytes": est.total_bytes,
        },
    }


async def pull(request: Request) -> Response:
    """Pull a catalog model or an hf:// reference; progress streams as SSE events."""
    manager = _manager(request)
    body = await read_json(request)
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        raise invalid_request('send {"model": NAME or "hf://org/repo/file.gguf"}', "model")
    ref: str = body["model"]
    name = body.get("name")
    if ref.startswith("hf://"):
        job = manager.pull_ref(ref, name if isinstance(name, str) else None)
        label = name if isinstance(name, str) else ref
    else:
        entry = manager.catalog.resolve(ref)
        if entry is None:
            raise model_not_found(ref)
        job = manager.pull(entry.name)
        label = entry.name

    async def stream() -> AsyncIterator[bytes]:
        with manager.subscribe() as events:
            task = asyncio.ensure_future(job)
            try:
                while not task.done():
                    getter = asyncio.ensure_future(events.get())
                    await asyncio.wait({task, getter}, return_when=asyncio.FIRST_COMPLETED)
                    if getter.done():
                        ev = getter.result()
                        if ev.model == label and ev.kind == "pull_progress":
                            yield sse_data(
                                {
                                    "status": ev.data.get("status"),
                                    "downloaded": ev.data.get("downloaded"),
                                    "total": ev.data.get("total"),
                                }
                            )
                    else:
                        getter.cancel()
                exc = task.exception()
                if exc is not None:
                    err = (
                        _store_error(exc)
                        if isinstance(exc, StoreError)
                        else APIError(500, str(exc), "server_error")
                    )
                    yield sse_data(err.to_body())
                else:
                    stored = task.result()
                    yield sse_data(
                        {
                            "status": "success",
                            "model": stored.name,
                            "sha256": stored.sha256,
                            "size": stored.size,
                            "revision": stored.revision,
                        }
                    )
            finally:
                if not task.done():
                    # The transfer goes on in the store; a client leaving does not stop it.
                    task.add_done_callback(lambda t: t.exception())

    return StreamingResponse(stream(), media_type="text/event-stream", headers=SSE_HEADERS)


async def import_file(request: Request) -> Response:
    manager = _manager(request)
    body = await read_json(request)
    if not isinstance(body, dict) or not isinstance(body.get("path"), str):
        raise invalid_request('send {"path": "/absolute/path/model.gguf"}', "path")
    path = Path(body["path"])
    if not path.is_absolute():
        raise invalid_request(
            "path must be absolute (the daemon has its own working directory)", "path"
        )
    name = body.get("name") if isinstance(body.get("name"), str) else None
    try:
        stored = await asyncio.to_thread(manager.store.import_file, path, name)
    except GGUFError as exc:
        raise invalid_request(f"{path} is not a usable GGUF file: {exc}", "path") from exc
    except ModelFolderError as exc:
        raise invalid_request(
            f"{path} is not a model folder this appliance serves: {exc}", "path"
        ) from exc
    except FileNotFoundError as exc:
        raise invalid_request(f"no such file: {path} (as the daemon sees it)", "path") from exc
    except PermissionError as exc:
        raise invalid_request(
            f"the daemon's user cannot read {path}: make it readable (chmod o+r, and o+x on "
            "its folders) or copy it where the daemon can read it",
            "path",
        ) from exc
    except StoreError as exc:
        raise _store_error(exc) from exc
    manager.emit(stored.name, "import", f"imported {path}")
    return JSONResponse({"model": stored.name, "sha256": stored.sha256, "size": stored.size})


async def events(request: Request) -> Response:
    manager = _manager(request)
    return JSONResponse({"events": [e.to_dict() for e in manager.events]})


async def event_stream(request: Request) -> Response:
    manager = _manager(request)

    async def stream() -> AsyncIterator[bytes]:
        with manager.subscribe() as queue:
            yield sse_data({"kind": "hello", "time": time.time()})
            async for chunk in follow(
                queue, lambda ev: sse_data(ev.to_dict()), request.app.state.shutting_down
            ):
                yield chunk

    return StreamingResponse(stream(), media_type="text/event-stream", headers=SSE_HEADERS)


async def hardware(request: Request) -> Response:
    manager = _manager(request)
    return JSONResponse(manager.hardware.to_dict())


async def store_list(request: Request) -> Response:
    manager = _manager(request)
    with contextlib.suppress(StoreError):
        models = await asyncio.to_thread(manager.store.list)
        return JSONResponse(
            {
                "models": [
                    {
                        "name": m.name,
                        "size": m.size,
                        "sha256": m.sha256,
                        "source": m.source,
                        "revision": m.revision,
                        "filename": m.filename,
                        "path": str(m.path),
                        "format": m.format,
                        "files": len(m.files) or 1,
                    }
                    for m in models
                ]
            }
        )
    raise APIError(500, "the store cannot be read", "server_error")


routes = [
    Route("/models", list_models, methods=["GET"]),
    Route("/models/{name:path}/load", load_model, methods=["POST"]),
    Route("/models/{name:path}/unload", unload_model, methods=["POST"]),
    Route("/models/{name:path}/inspect", inspect_model, methods=["GET"]),
    Route("/models/{name:path}/tier", set_tier, methods=["POST"]),
    Route("/models/{name:path}/pin", pin_model, methods=["POST"]),
    Route("/models/{name:path}/pin", unpin_model, methods=["DELETE"]),
    Route("/models/{name:path}", get_model, methods=["GET"]),
    Route("/models/{name:path}", delete_model, methods=["DELETE"]),
    Route("/pull", pull, methods=["POST"]),
    Route("/import", import_file, methods=["POST"]),
    Route("/events", events, methods=["GET"]),
    Route("/events/stream", event_stream, methods=["GET"]),
    Route("/hardware", hardware, methods=["GET"]),
    Route("/budgets", budgets, methods=["GET"]),
    Route("/budgets", set_budgets, methods=["POST"]),
    Route("/store", store_list, methods=["GET"]),
]
