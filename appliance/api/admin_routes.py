"""Admin routes under /admin: models and their state, load, unload, pull, import, inspect,
tiers, pins, budgets, events, hardware and the store.

The CLI and the TUI are clients of these routes; they never touch the engine or the
store directly while the daemon runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import re
import time
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from appliance.api.errors import APIError, invalid_request, model_not_found
from appliance.api.pipeline import SSE_HEADERS, read_json
from appliance.api.sse import follow, sse_data
from appliance.catalog import HubSource
from appliance.settings import Settings, parse_size
from appliance.store.errors import AmbiguousFileError, InvalidNameError, NotFoundError
from appliance.store.gguf_meta import GGUFError
from appliance.store.hf_names import HfName, hf_name
from appliance.store.layout import default_model_name, safe_model_name
from appliance.store.model_folder import ModelFolderError, read_model_info
from appliance.store.store import Store, StoredModel, StoreError
from appliance.tiers.estimate import estimate_memory
from appliance.tiers.footprint import prompt_states_cap
from appliance.tiers.manager import ModelManager
from appliance.tiers.names import shadowed_by_catalog
from appliance.tiers.policy import fmt_bytes
from appliance.tiers.serving import Serving, serving_for

log = logging.getLogger("appliance.api")


def manager_of(request: Request) -> ModelManager:
    manager: ModelManager = request.app.state.manager
    return manager


def store_error(exc: StoreError) -> APIError:
    name = type(exc).__name__
    status = {
        "NotFoundError": 404,
        "InvalidNameError": 400,
        "AmbiguousFileError": 400,
        "DiskFullError": 507,
        "HubUnavailableError": 503,
        "IntegrityError": 502,
        "PullCancelled": 409,
        "PullInterrupted": 503,
    }.get(name, 500)
    code = {
        "NotFoundError": "model_not_found",
        "DiskFullError": "disk_full",
        "HubUnavailableError": "hub_unavailable",
        "IntegrityError": "integrity_error",
        "InvalidNameError": "invalid_name",
        "AmbiguousFileError": "ambiguous_file",
        "PullCancelled": "pull_cancelled",
        "PullInterrupted": "shutting_down",
    }.get(name)
    kind = "invalid_request_error" if status < 500 else "server_error"
    return APIError(status, str(exc), kind, None, code)


async def list_models(request: Request) -> Response:
    manager = manager_of(request)
    return JSONResponse({"models": [manager.describe(n) for n in manager.known_names()]})


async def get_model(request: Request) -> Response:
    manager = manager_of(request)
    return JSONResponse(manager.describe(manager.canonical(request.path_params["name"])))


async def load_model(request: Request) -> Response:
    manager = manager_of(request)
    name = manager.canonical(request.path_params["name"])
    await manager.load(name, reason="admin request")
    # An operator's load is a use: its keep_alive counts from now (as `ollama run`'s).
    manager.slot(name).last_used = time.monotonic()
    return JSONResponse(manager.describe(name))


async def unload_model(request: Request) -> Response:
    manager = manager_of(request)
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
    manager = manager_of(request)
    name = manager.canonical(request.path_params["name"])
    tier = await _body_field(request, "tier", ("hot", "warm", "cold"))
    await manager.set_tier(name, tier, "operator request")
    return JSONResponse(manager.describe(name))


async def pin_model(request: Request) -> Response:
    manager = manager_of(request)
    name = manager.canonical(request.path_params["name"])
    tier = await _body_field(request, "tier", ("hot", "warm"))
    await manager.set_pin(name, tier)
    return JSONResponse(manager.describe(name))


async def unpin_model(request: Request) -> Response:
    manager = manager_of(request)
    name = manager.canonical(request.path_params["name"])
    await manager.set_pin(name, None)
    out = manager.describe(name)
    entry = manager.slot(name).entry
    if entry is not None and entry.pin is not None:
        out["pin_note"] = (
            f"models.toml pins it {entry.pin}: unpinned until the daemon restarts "
            "(remove the pin there to unpin it for good)"
        )
    return JSONResponse(out)


async def budgets(request: Request) -> Response:
    return JSONResponse(manager_of(request).budgets_view())


MAX_BUDGET = 1 << 50  # 1 PiB: past it, a typo ("99999999999999TiB"), not a box


async def set_budgets(request: Request) -> Response:
    """Runtime budget overrides (not saved: settings.toml holds the lasting ones)."""
    manager = manager_of(request)
    body = await read_json(request)
    if not isinstance(body, dict):
        raise invalid_request('send {"warm": "2GiB", "hot": {"cpu": "8GiB"}, "cold": ...}')
    overrides: dict[str, int] = {}
    # A key it does not know was a 200 that changed nothing ({"cpu": "0"}).
    unknown = sorted(set(body) - {"warm", "cold", "hot"})
    if unknown:
        raise invalid_request(
            f'no budget named {unknown[0]!r}: send warm, cold, or hot as {{"DEVICE": size}}',
            unknown[0],
        )
    items: list[tuple[str, Any]] = [(k, body[k]) for k in ("warm", "cold") if k in body]
    hot = body.get("hot", {})
    if not isinstance(hot, dict):
        raise invalid_request("hot must be an object of device: size", "hot")
    budgets = manager.budgets()
    devices = sorted([*budgets.hot, *budgets.unknown])
    for device in hot:
        if device not in devices:
            raise invalid_request(
                f"no device {device!r} here: its devices are {', '.join(devices)}", f"hot.{device}"
            )
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
        if size > MAX_BUDGET:
            raise invalid_request(
                f"{key}: {value!r} is more than any box holds (at most 1 PiB)",
                key,
            )
        overrides[key] = size
    manager.budget_overrides.update(overrides)
    manager.emit(
        "*",
        "budgets",
        "budgets set: " + ", ".join(f"{k} {fmt_bytes(v)}" for k, v in overrides.items()),
    )
    await manager.demote_idle()
    await manager.fit_budgets()
    return JSONResponse(manager.budgets_view())


async def delete_model(request: Request) -> Response:
    manager = manager_of(request)
    name = manager.canonical(request.path_params["name"])
    await delete_stored(manager, name)
    return JSONResponse({"deleted": name})


async def delete_stored(manager: ModelManager, name: str, param: str = "name") -> None:
    """Remove a model's file from the store (moving it to cold first): 404 when it has no
    file there, 409 while it is serving, loading or pulling. `DELETE /admin/models/NAME`
    and Ollama's `DELETE /api/delete` (`param` "model")."""
    # Nothing moves before the delete is known to go ahead: a catalog model named by a
    # path has no file here (it was unloaded all the same), and a model being loaded
    # would have its file taken from under the load (its waiters got a 500).
    if manager.store.get(name) is None:
        raise APIError(
            404,
            f"model '{name}' has no file in the store to delete",
            "invalid_request_error",
            param,
            "model_not_found",
        )
    slot = manager.slots.get(name)
    if slot is not None and (slot.active or slot.state in ("loading", "pulling")):
        doing = f"serving {slot.active} request(s)" if slot.active else slot.state
        raise APIError(
            409, f"model '{name}' is {doing}; try again when it is idle", param=param, code="busy"
        )
    if slot is not None and manager.tier_of(slot) in ("hot", "warm"):
        # To cold, not warm: pages held in RAM for a file that is gone were a "warm" model
        # listed for ever, which a load then fetched again without a word.
        await manager.set_tier(name, "cold", "deleted from the store", param=param)
    try:
        await asyncio.to_thread(manager.store.remove, name)
    except StoreError as exc:
        raise store_error(exc) from exc
    if slot is not None:
        if manager.catalog.exact(name) is None:
            manager.slots.pop(name, None)  # an import: nothing of it is left to show
        else:
            slot.state, slot.last_error = "unloaded", None
    manager.emit(name, "remove", "removed from the store")


async def inspect_model(request: Request) -> Response:
    manager = manager_of(request)
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
    entry = manager.catalog.exact(name)
    if context and context.isdigit():
        entry = dataclasses.replace(entry, context=int(context)) if entry else None
    settings = manager.settings
    if context and context.isdigit() and entry is None:
        settings = dataclasses.replace(settings, default_context=int(context))
    payload = inspect_payload(
        info, serving_for(entry, settings, info), settings.prompt_cache_ram_bytes
    )
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
    if hw.onnx.amdgpu_ep:
        return {
            "name": "amdgpu",
            "reason": f"AMD's amdgpu provider (MIGraphX) from AMDGPU_EP_PATH={hw.onnx.amdgpu_ep}",
        }
    return {
        "name": "cpu",
        "reason": "onnxruntime-genai is the CPU build here (FP8 ONNX models need the CUDA one)",
    }


def inspect_payload(info: Any, serving: Serving, states_cap: int = 0) -> dict[str, Any]:
    """A model's header (GGUF) or facts (ONNX folder), and the memory it needs as it would
    be served (every slot's KV), with the host RAM its saved prompt states may take while it
    is loaded (`states_cap`, the `prompt_cache_ram` setting: GGUF chat models)."""
    n_ctx = serving.n_ctx
    est = estimate_memory(info, n_ctx * serving.slots, n_seqs=serving.slots)
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
            "kv_unified": serving.kv_unified,
            "deterministic": serving.deterministic,
        },
        "estimate": {
            "context": n_ctx,
            "slots": serving.slots,
            "weights_bytes": est.weights_bytes,
            "kv_cache_bytes": est.kv_cache_bytes,
            "compute_bytes": est.compute_bytes,
            "total_bytes": est.total_bytes,
            # Counted in its hot footprint too, so `ps` shows more than the estimate.
            "prompt_states_bytes": prompt_states_cap(
                info.format, serving.embedding, states_cap, est.kv_cache_bytes
            ),
        },
    }


def _check_name(name: str, param: str) -> None:
    try:
        safe_model_name(name)
    except InvalidNameError as exc:
        raise APIError(400, str(exc), "invalid_request_error", param, "invalid_name") from exc


def _check_free_name(manager: ModelManager, name: str, param: str) -> None:
    """400 for a name the catalog shadows (`names.shadowed_by_catalog`). The store refuses
    its own models' case variants itself."""
    problem = shadowed_by_catalog(manager.catalog, name)
    if problem is not None:
        raise APIError(400, problem, "invalid_request_error", param, "invalid_name")


def _check_hub_ref(ref: str, name: str | None) -> None:
    from appliance.store.hub import parse_ref  # the hub client loads only when used

    try:
        parse_ref(ref)
    except InvalidNameError as exc:
        raise APIError(400, str(exc), "invalid_request_error", "model", "invalid_ref") from exc
    if name is not None:
        _check_name(name, "name")


def start_pull(
    manager: ModelManager, ref: str, name: str | None
) -> tuple[Coroutine[Any, Any, StoredModel], str]:
    """The pull of a catalog model or an hf:// reference (not started: the caller awaits it
    once it listens to its progress), and the label its progress events carry.

    Everything a pull can refuse without the network is refused here, as an HTTP error,
    before the 200 of a progress stream.

    An Ollama Hugging Face name (`hf.co/ORG/REPO:TAG`) is pulled under the store name
    `hf_names.hf_name` gives it, the one requests naming it resolve to."""
    try:
        hf = hf_name(ref)
    except InvalidNameError as exc:
        raise APIError(400, str(exc), "invalid_request_error", "model", "invalid_ref") from exc
    if hf is not None:
        if name is not None and name != hf.store_name:
            raise APIError(
                400,
                f"{ref} is kept under the name {hf.store_name!r}, the one requests naming it "
                "resolve to; to choose another, pull an hf://ORG/REPO/FILE.gguf reference",
                "invalid_request_error",
                "name",
                "invalid_name",
            )
        _check_free_name(manager, hf.store_name, "model")
        return _pull_hf(manager, hf), hf.store_name
    if ref.startswith("hf://"):
        _check_hub_ref(ref, name)
        if name is not None:
            _check_free_name(manager, name, "name")
        return manager.pull_ref(ref, name), (name if name is not None else ref)
    entry = manager.catalog.resolve(ref)
    if entry is None:
        _check_name(ref, "model")
        raise model_not_found(ref)
    if not isinstance(entry.source, HubSource):
        raise APIError(
            400,
            f"model '{entry.name}' is a local file ({entry.source}); there is nothing to pull",
            "invalid_request_error",
            "model",
            "not_pullable",
        )
    return manager.pull(entry.name), entry.name


async def _pull_hf(manager: ModelManager, hf: HfName) -> StoredModel:
    """Pull an Ollama Hugging Face name: its references in turn (the default tag's file,
    then the repo's only GGUF) until one names a file; refusals say which name was asked.
    A model stored under its name already is that name's, as for `canonical`: returned
    without the network (whatever case the name was typed in; the hub's repo ids are not
    case-sensitive but the store's references are)."""
    stored = manager.store.get(hf.store_name)
    if stored is not None:
        return stored
    why = "a tag picks the one .gguf whose file name contains it, ignoring case"
    for i, ref in enumerate(hf.refs):
        try:
            return await manager.pull_ref(ref, hf.store_name)
        except NotFoundError as exc:
            if i + 1 < len(hf.refs):
                continue
            raise NotFoundError(f"{hf.shown}: {exc} ({why})") from exc
        except AmbiguousFileError as exc:
            raise AmbiguousFileError(f"{hf.shown}: {exc} ({why})") from exc
    raise AssertionError("an hf.co name has at least one reference")


async def pull(request: Request) -> Response:
    """Pull a catalog model or an hf:// reference; progress streams as SSE events."""
    manager = manager_of(request)
    body = await read_json(request)
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        raise invalid_request('send {"model": NAME or "hf://org/repo/file.gguf"}', "model")
    ref: str = body["model"]
    name = body.get("name")
    if name is not None and not isinstance(name, str):
        raise invalid_request(
            "name must be a string: the store name for an hf:// reference", "name"
        )
    job, label = start_pull(manager, ref, name)

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
                                    "message": ev.data.get("note") or "",
                                    # The pull's label (GET /admin/pulls' model) and start.
                                    "model": label,
                                    "started": ev.data.get("started"),
                                }
                            )
                    else:
                        getter.cancel()
                exc = task.exception()
                if exc is not None:
                    err = (
                        store_error(exc)
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


async def list_pulls(request: Request) -> Response:
    """The pulls in flight, however they started (the API, the CLI, a request's first use
    of a catalog model): what, since when, how far and how fast."""
    return JSONResponse({"pulls": manager_of(request).pulls.listing()})


async def cancel_pull(request: Request) -> Response:
    """Stop a pull in flight (the partial download is kept, and the next pull resumes)."""
    manager = manager_of(request)
    label = request.path_params["name"]
    entry = manager.catalog.resolve(label)
    if entry is not None:
        label = entry.name
    if not manager.pulls.cancel(label):
        raise APIError(
            404,
            f"no pull of '{label}' is in flight (pulls now: "
            f"{', '.join(manager.pulls.in_flight()) or 'none'})",
            "invalid_request_error",
            "name",
            "pull_not_found",
        )
    return JSONResponse({"cancelled": label})


# -- import: only from allowed folders, and errors that never quote a file's bytes ----------


def ensure_inbox(store: Store) -> None:
    with contextlib.suppress(OSError):
        store.inbox_dir.mkdir(parents=True, exist_ok=True)


def import_dirs(settings: Settings, store: Store) -> tuple[Path, ...]:
    """The folders POST /admin/import reads from: the store's inbox, always (the repair
    advice for a corrupt model says to import from there), and `import_dirs`, else the
    daemon user's home."""
    if settings.import_dirs is not None:
        return (*settings.import_dirs, store.inbox_dir)
    dirs = [store.inbox_dir]
    with contextlib.suppress(RuntimeError, KeyError):  # no home for this user
        dirs.insert(0, Path.home())
    return tuple(dirs)


# A folder import walks at most this many files to check where each link leads.
MAX_FOLDER_FILES = 10_000


def allowed_import_path(path: Path, dirs: tuple[Path, ...]) -> Path:
    """`path` resolved (symlinks followed) if it lies inside one of `dirs`, else a 403.

    A model folder's own files are checked too: a link in it must not lead out. The
    check comes before any existence test, so a refusal says nothing about what exists
    outside the allowed folders.
    """
    roots = [d.resolve() for d in dirs]
    resolved = path.resolve()

    def inside(p: Path) -> bool:
        return any(p.is_relative_to(root) for root in roots)

    if not inside(resolved):
        raise _outside(path, dirs)
    if resolved.is_dir() and any(
        (resolved / marker).is_file() for marker in ("genai_config.json", "modules.json")
    ):
        seen = 0
        for dirpath, dirnames, filenames in os.walk(resolved, followlinks=True):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for f in filenames:
                seen += 1
                if seen > MAX_FOLDER_FILES:
                    raise invalid_request(f"{path} holds too many files for a model folder", "path")
                if not f.startswith(".") and not inside((Path(dirpath) / f).resolve()):
                    raise _outside(Path(dirpath) / f, dirs)
    return resolved


def _outside(path: Path, dirs: tuple[Path, ...]) -> APIError:
    shown = ", ".join(str(d) for d in dirs) or "none"
    return APIError(
        403,
        f"{path} is outside the folders the daemon imports from ({shown}): copy it into "
        "one of them, or add its folder to import_dirs in settings.toml (or "
        "APPLIANCE_IMPORT_DIRS, comma-separated) and restart the daemon; `appliance import` "
        "with the daemon stopped reads any path",
        "invalid_request_error",
        "path",
        "path_not_allowed",
    )


_GGUF_PROBLEMS = (
    (
        "is not an architecture llama.cpp",
        "its general.architecture is not one the engine's llama.cpp can load (a newer "
        "llama-cpp-python may)",
    ),
    (
        "is 0 but the layer has attention weights",
        "its attention.head_count is 0 for a layer that has attention weights, which "
        "llama.cpp cannot load",
    ),
    ("old ", "it is in an old pre-GGUF llama.cpp format; convert it with a current llama.cpp"),
    ("not a regular file", "it is not a regular file"),
    ("is only", "it is too small to be a GGUF file"),
    ("not a GGUF file", "it does not start with the GGUF magic bytes"),
    ("truncated GGUF", "it ends before its GGUF header says it should (copy it again)"),
    ("corrupt GGUF", "its GGUF header is corrupt"),
    ("unsupported GGUF", "it uses a GGUF version or feature this appliance does not read"),
    ("invalid GGUF", "its GGUF metadata lacks what serving it needs"),
    ("inconsistent GGUF", "its GGUF metadata contradicts its tensors"),
    ("cannot read", "the daemon cannot read it"),
    ("no such file", "there is no such file"),
)


def gguf_problem(exc: GGUFError) -> str:
    """What is wrong with a GGUF file, in fixed words: the store's own message can quote
    the file's bytes (a bad magic, metadata keys), which must not reach an API client
    that may not read the file itself. `appliance inspect` on the box gives the detail."""
    message = str(exc)
    for needle, text in _GGUF_PROBLEMS:
        if needle in message:
            return f"{text}; `appliance inspect` on the box says more"
    return "it is not a GGUF model this appliance reads; `appliance inspect` on the box says more"


_QUOTED = re.compile(r"""b?'(?:[^'\\]|\\.)*'|b?"(?:[^"\\]|\\.)*"|\([^()]* at byte \d+\)""")
_QUANT = re.compile(r"is an? (.+?) safetensors model")
_KNOWN_QUANTS = frozenset(
    {"GPTQ", "AWQ", "FP8", "BITSANDBYTES", "QUANTIZED", "COMPRESSED-TENSORS (FP8/INT)"}
)


def redact(message: str) -> str:
    """A model-folder refusal without what it quoted from the folder's files (names and
    values from its JSON, byte positions in its ONNX graph)."""
    message = _QUOTED.sub("(redacted)", message)
    return _QUANT.sub(
        lambda m: (
            m.group(0)
            if m.group(1) in _KNOWN_QUANTS or m.group(1) == "unquantized"
            else "is a quantized safetensors model"
        ),
        message,
    )


async def import_file(request: Request) -> Response:
    manager = manager_of(request)
    body = await read_json(request)
    if not isinstance(body, dict) or not isinstance(body.get("path"), str):
        raise invalid_request('send {"path": "/absolute/path/model.gguf"}', "path")
    if "\x00" in body["path"]:
        raise invalid_request("path holds a NUL character: no file has that name", "path")
    path = Path(body["path"])
    if not path.is_absolute():
        raise invalid_request(
            "path must be absolute (the daemon has its own working directory)", "path"
        )
    name = body.get("name") if isinstance(body.get("name"), str) else None
    _check_free_name(manager, name or default_model_name(path.name), "name")
    source = await asyncio.to_thread(
        allowed_import_path, path, import_dirs(manager.settings, manager.store)
    )
    try:
        stored = await asyncio.to_thread(manager.store.import_file, source, name)
    except GGUFError as exc:
        raise invalid_request(
            f"{path} is not a usable GGUF file: {gguf_problem(exc)}", "path"
        ) from exc
    except ModelFolderError as exc:
        raise invalid_request(
            f"{path} is not a model folder this appliance serves: {redact(str(exc))}", "path"
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
        err = store_error(exc)
        err.message = redact(err.message)
        raise err from exc
    except OSError as exc:
        raise invalid_request(
            f"cannot read {path}: {exc.strerror or type(exc).__name__}", "path"
        ) from exc
    except ValueError as exc:  # text that is not UTF-8, numbers out of range: never echoed
        raise invalid_request(
            f"{path} is not a model this appliance serves: a file in it cannot be read "
            f"({type(exc).__name__}); `appliance inspect {path}` on the box says more",
            "path",
        ) from exc
    manager.emit(stored.name, "import", f"imported {path}")
    return JSONResponse({"model": stored.name, "sha256": stored.sha256, "size": stored.size})


async def events(request: Request) -> Response:
    manager = manager_of(request)
    return JSONResponse({"events": [e.to_dict() for e in manager.events]})


async def event_stream(request: Request) -> Response:
    manager = manager_of(request)

    async def stream() -> AsyncIterator[bytes]:
        with manager.subscribe() as queue:
            yield sse_data({"kind": "hello", "time": time.time()})
            async for chunk in follow(
                queue, lambda ev: sse_data(ev.to_dict()), request.app.state.shutting_down
            ):
                yield chunk

    return StreamingResponse(stream(), media_type="text/event-stream", headers=SSE_HEADERS)


async def hardware(request: Request) -> Response:
    manager = manager_of(request)
    return JSONResponse(manager.hardware.to_dict())


async def store_list(request: Request) -> Response:
    manager = manager_of(request)
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
    Route("/pulls", list_pulls, methods=["GET"]),
    Route("/pull/{name:path}", cancel_pull, methods=["DELETE"]),
    Route("/import", import_file, methods=["POST"]),
    Route("/events", events, methods=["GET"]),
    Route("/events/stream", event_stream, methods=["GET"]),
    Route("/hardware", hardware, methods=["GET"]),
    Route("/budgets", budgets, methods=["GET"]),
    Route("/budgets", set_budgets, methods=["POST"]),
    Route("/store", store_list, methods=["GET"]),
]
