"""Ollama's native API, the routes that manage models (its docs/api.md shapes, the field
names and types of the `ollama` Python client): what tools written for Ollama (Open
WebUI's Ollama connection, Continue, Zed, LangChain's ChatOllama, Home Assistant, the
ollama SDKs) read before they generate.

`GET /` and `GET /api/version` (the probes), `GET /api/tags` (every model a request can
name), `POST /api/show` (one model's details, template, GGUF metadata and capabilities,
read from its header without loading it), `GET /api/ps` (the hot models), `POST /api/pull`
(the appliance's pull, its progress as Ollama's NDJSON lines), `DELETE /api/delete`; the
routes that build or upload models (`/api/copy`, `/api/create`, `/api/push`,
`/api/blobs/...`) answer 501. Names are shown as Ollama shows them (`NAME:latest`), which
requests may name (`names.canonical` reads `:latest`). Errors are Ollama's
`{"error": "message"}` (`errors.ErrorResponse` on every `/api/...` path).
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import AsyncIterator, Coroutine, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from appliance.api.admin_routes import delete_stored, gguf_problem, start_pull, store_error
from appliance.api.errors import APIError, invalid_request
from appliance.api.pipeline import manager_of, read_json
from appliance.catalog import CatalogEntry, HubSource
from appliance.events import Event
from appliance.parsing.families import Family, detect_family, reasoning_openers
from appliance.store.errors import StoreError
from appliance.store.gguf_meta import GGUFError, GGUFInfo
from appliance.store.hf_names import is_hf_name
from appliance.store.store import StoredModel
from appliance.tiers.errors import ModelNotFound
from appliance.tiers.manager import ModelManager
from appliance.tiers.serving import serving_for
from appliance.tiers.workers import MAX_TEMPLATE_BYTES

__all__ = ["OLLAMA_VERSION", "ollama_name", "routes"]

# What `GET /api/version` answers. Clients compare it with the Ollama release that brought
# what they use, and turn features off (or refuse to connect) below it: tool calls (0.3),
# JSON-schema `format` (0.5), streamed tool calls (0.8), `think` (0.9), gpt-oss's think
# levels (0.11); VS Code's Copilot Ollama provider refuses servers older than 0.6.4.
# 0.12.0 is past all of them, so every client enables tools and thinking, which the
# appliance serves.
OLLAMA_VERSION = "0.12.0"

NDJSON = "application/x-ndjson"
# `expires_at` of a model that is never unloaded: Ollama's keep_alive -1 is
# time.Now() + the longest Go duration, about 292 years.
FOREVER = timedelta(days=292 * 365)
_ARRAY_SUMMARY = re.compile(r"\[\d+ x [a-z0-9]+\]")  # gguf_meta's stand-in for an array


def ollama_name(name: str) -> str:
    """A model's name as Ollama shows it: with a tag, `:latest` when it has none."""
    return name if ":" in name else f"{name}:latest"


def _rfc3339(ts: float | datetime) -> str:
    when = ts if isinstance(ts, datetime) else datetime.fromtimestamp(ts, tz=UTC)
    return when.isoformat().replace("+00:00", "Z")


def _body(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise invalid_request("The request body must be a JSON object.")
    return raw


def _model_field(body: dict[str, Any]) -> str:
    """`model`, or Ollama's older `name`: required."""
    value = body.get("model") or body.get("name")
    if not isinstance(value, str) or not value:
        raise invalid_request("model is required", "model")
    return value


def _not_found(model: str) -> APIError:
    """Ollama's words for an unknown model (its clients match on "not found")."""
    return APIError(404, f"model '{model}' not found", "invalid_request_error", "model")


def _canonical(manager: ModelManager, model: str) -> str:
    try:
        return manager.canonical(model)
    except ModelNotFound:
        raise _not_found(model) from None


# -- facts read from the model's header (never loading it) ---------------------------------


def _read_info(manager: ModelManager, name: str) -> GGUFInfo | None:
    """The model's header (a GGUF's metadata, an ONNX folder's facts), or None while it is
    not on this box. Raises GGUFError / StoreError / OSError for a file it cannot read."""
    path = manager.local_file(name)
    if path is None or not path.exists():
        return None
    return manager.gguf_info(path)


def _info_or_none(manager: ModelManager, name: str) -> GGUFInfo | None:
    try:
        return _read_info(manager, name)
    except (StoreError, OSError, ValueError):
        return None  # listed all the same, without the details (a broken or missing file)


def _human_count(n: int) -> str:
    """Ollama's parameter_size: "135M", "134.52M", "7.6B" (format.HumanNumber)."""
    for unit, scale, places in (("T", 10**12, 1), ("B", 10**9, 1), ("M", 10**6, 2)):
        if n >= scale:
            value = n / scale
            return f"{value:.0f}{unit}" if value == int(value) else f"{value:.{places}f}{unit}"
    if n >= 1000:
        return f"{n / 1000:.0f}K"
    return str(n)


def _parameter_count(info: GGUFInfo) -> int:
    declared = info.metadata.get("general.parameter_count")
    if isinstance(declared, int) and not isinstance(declared, bool) and declared > 0:
        return declared
    return info.n_params


def _format(info: GGUFInfo | None, entry: CatalogEntry | None) -> str:
    if info is not None:
        return "gguf" if info.format == "gguf" else "onnx"
    if entry is not None and isinstance(entry.source, HubSource):
        return "gguf" if entry.source.filename.lower().endswith(".gguf") else ""
    return ""


def details(info: GGUFInfo | None, entry: CatalogEntry | None) -> dict[str, Any]:
    """Ollama's `details`: strings and a list always (typed clients refuse nulls), empty
    where the header is not here to read."""
    family = info.architecture if info is not None else ""
    quant = ""
    if info is not None and info.quantization != "unknown":
        quant = info.quantization if info.format == "gguf" else info.quantization.upper()
    count = _parameter_count(info) if info is not None else 0
    return {
        "parent_model": "",
        "format": _format(info, entry),
        "family": family,
        "families": [family] if family else [],
        "parameter_size": _human_count(count) if count > 0 else "",
        "quantization_level": quant,
    }


def _modified_at(manager: ModelManager, name: str) -> str:
    """When the model came onto this box (pulled, imported, or its file written); the
    epoch for a catalog model not pulled yet."""
    stored = manager.store.get(name)
    if stored is not None:
        return _rfc3339(stored.created)
    path = manager.local_file(name)
    try:
        return _rfc3339(path.stat().st_mtime if path is not None else 0.0)
    except OSError:
        return _rfc3339(0.0)


def _digest(manager: ModelManager, name: str) -> str:
    stored = manager.store.get(name)
    return stored.sha256 if stored is not None else ""


def _listing(
    manager: ModelManager, name: str, view: dict[str, Any], info: GGUFInfo | None
) -> dict[str, Any]:
    """One model as `/api/tags` and `/api/ps` show it (`view`: `manager.describe`)."""
    shown = ollama_name(name)
    return {
        "name": shown,
        "model": shown,
        "modified_at": _modified_at(manager, name),
        "size": int(view.get("size_bytes") or 0),
        "digest": _digest(manager, name),
        "details": details(info, manager.catalog.exact(name)),
    }


# -- GET / and /api/version ----------------------------------------------------------------


async def root(request: Request) -> Response:
    """Ollama's liveness probe: clients check for this exact text."""
    return PlainTextResponse("Ollama is running")


async def version(request: Request) -> Response:
    return JSONResponse({"version": OLLAMA_VERSION})


# -- GET /api/tags -------------------------------------------------------------------------


async def tags(request: Request) -> Response:
    """Every model a request can name: those on this box first (size and digest known),
    then catalog models pulled on first use (size 0)."""
    manager = manager_of(request)
    names = manager.known_names()
    infos = await asyncio.to_thread(lambda: [_info_or_none(manager, n) for n in names])
    views = [manager.describe(n) for n in names]
    models = [
        (view["tier"] == "remote", _listing(manager, name, view, info))
        for name, view, info in zip(names, views, infos, strict=True)
    ]
    models.sort(key=lambda m: m[0])  # stable: catalog order kept
    return JSONResponse({"models": [m for _remote, m in models]})


# -- POST /api/show ------------------------------------------------------------------------


def _template(entry: CatalogEntry | None, info: GGUFInfo | None) -> str:
    """The chat template a request is rendered with: models.toml's file, else the model's."""
    path = entry.chat_template if entry is not None else None
    if path is not None:
        try:
            if path.stat().st_size <= MAX_TEMPLATE_BYTES:
                return path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            pass  # the load says what is wrong with it
        return ""
    return (info.chat_template if info is not None else None) or ""


FIM_KEYS = tuple(f"tokenizer.ggml.fim_{k}_token_id" for k in ("pre", "suf", "mid"))


def fills_in(info: GGUFInfo | None, engine: Mapping[str, Any]) -> bool:
    """Whether `/api/generate`'s `suffix` works: the loaded engine found the FIM tokens, or
    (not loaded) the header names all three. A model whose FIM tokens llama.cpp finds only
    by their text is known once loaded."""
    if "infill" in engine:
        return bool(engine["infill"])
    return info is not None and all(k in info.metadata for k in FIM_KEYS)


def capabilities(
    entry: CatalogEntry | None, template: str, embedding: bool, insert: bool = False
) -> list[str]:
    """What the model does, as Ollama names it: "embedding" for an embedding model, else
    "completion" and "tools" (every chat model takes tools here: a template that does not
    render them gets them described, and the calls are held to their schemas; Ollama says
    "tools" only for templates that render them, and editors such as VS Code's and Zed's
    offer agent tools only to models that say it),
    "thinking" when its answers start with reasoning the appliance splits off (the
    template opens its family's reasoning block, or models.toml says `reasoning = "on"`),
    and "insert" when it fills in the middle (code models: editors ask it for `suffix`)."""
    if embedding:
        return ["embedding"]
    out = ["completion", "tools"]
    if insert:
        out.append("insert")
    mode = entry.reasoning if entry is not None else "auto"
    family = detect_family(template, entry.tool_parser if entry is not None else None)
    opens = family is Family.HARMONY or any(tag in template for tag in reasoning_openers(family))
    if mode == "on" or (mode == "auto" and opens):
        out.append("thinking")
    return out


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, str) and _ARRAY_SUMMARY.fullmatch(value):
        return []  # arrays (the vocabulary) are not read: Ollama's non-verbose answer
    return value


def model_info(info: GGUFInfo | None) -> dict[str, Any]:
    """The header's keys as Ollama's `model_info` lists them (`general.architecture`,
    `general.parameter_count`, `<arch>.context_length`, ...); arrays empty. An ONNX
    folder's facts under the same keys."""
    if info is None:
        return {}
    arch = info.architecture
    out: dict[str, Any] = {}
    if info.format != "gguf":
        facts = {
            "general.architecture": arch,
            "general.name": info.name,
            f"{arch}.context_length": info.context_length,
            f"{arch}.embedding_length": info.embedding_length,
            f"{arch}.block_count": info.block_count,
            f"{arch}.attention.head_count": info.head_count,
            f"{arch}.attention.head_count_kv": info.head_count_kv,
            f"{arch}.vocab_size": info.vocab_size,
        }
        out.update({k: v for k, v in facts.items() if v is not None})
    for key, value in info.metadata.items():
        if key != "tokenizer.chat_template":  # it is `template`
            out[key] = _json_value(value)
    out.setdefault("general.parameter_count", _parameter_count(info))
    return out


def _parameters(n_ctx: int | None) -> list[tuple[str, str]]:
    """The model's parameters as a Modelfile's PARAMETER lines would set them: the context
    a request gets here (Continue reads `num_ctx` as the model's window)."""
    return [("num_ctx", str(n_ctx))] if n_ctx else []


def _modelfile(name: str, source: str, template: str, parameters: list[tuple[str, str]]) -> str:
    lines = [
        "# Modelfile generated by the appliance (models are brought here with `appliance",
        "# pull` or `appliance import`, not built from Modelfiles)",
        f"# FROM {ollama_name(name)}",
        "",
        f"FROM {source}",
    ]
    if template:
        lines.append(f'TEMPLATE """{template}"""')
    lines += [f"PARAMETER {key} {value}" for key, value in parameters]
    return "\n".join(lines) + "\n"


async def show(request: Request) -> Response:
    manager = manager_of(request)
    body = _body(await read_json(request))
    name = _canonical(manager, _model_field(body))
    try:
        info = await asyncio.to_thread(_read_info, manager, name)
    except (StoreError, OSError, ValueError) as exc:
        # In fixed words: a GGUF's own message can quote the file's bytes.
        why = gguf_problem(exc) if isinstance(exc, GGUFError) else type(exc).__name__
        raise APIError(500, f"model '{name}' cannot be read: {why}", "server_error") from exc
    entry = manager.catalog.exact(name)
    template = _template(entry, info)
    slot = manager.slots.get(name)
    engine = slot.info if slot is not None and slot.worker is not None else {}
    embedding = entry is not None and entry.kind == "embedding"
    n_ctx: int | None = None
    if info is not None:
        serving = serving_for(entry, manager.settings, info)
        embedding, n_ctx = serving.embedding, serving.n_ctx
    if engine.get("n_ctx"):
        n_ctx = int(engine["n_ctx"])  # what the loaded model has
    path = manager.local_file(name)
    source = path if path is not None and info is not None else (entry.source if entry else name)
    parameters = _parameters(n_ctx)
    return JSONResponse(
        {
            "modelfile": _modelfile(name, str(source), template, parameters),
            # One `key value` line each, as `ollama show` prints them.
            "parameters": "\n".join(f"{key:<30} {value}" for key, value in parameters),
            "template": template,
            "details": details(info, entry),
            "model_info": model_info(info),
            "capabilities": capabilities(entry, template, embedding, fills_in(info, engine)),
            "modified_at": _modified_at(manager, name),
        }
    )


# -- GET /api/ps ---------------------------------------------------------------------------


def _expires_at(view: dict[str, Any], now: datetime) -> str:
    """When an idle model goes (its keep_alive after its last request); Ollama's far
    future for one never unloaded (pinned hot, keep_alive forever)."""
    left = view.get("expires_in_s")
    if left is None and view.get("pin") != "hot":
        left = view.get("keep_alive_s")  # serving now: its keep_alive counts from the end
    return _rfc3339(now + (timedelta(seconds=float(left)) if left is not None else FOREVER))


async def ps(request: Request) -> Response:
    manager = manager_of(request)
    hot = [
        name
        for name, slot in list(manager.slots.items())
        if slot.worker is not None and slot.worker.alive
    ]
    infos = await asyncio.to_thread(lambda: [_info_or_none(manager, n) for n in hot])
    now = datetime.now(tz=UTC)
    models = []
    for name, info in zip(hot, infos, strict=True):
        view = manager.describe(name)
        item = _listing(manager, name, view, info)
        on_gpu = view.get("provider") not in (None, "cpu")
        device = int(view.get("hot_bytes") or 0)
        size = device + int(view.get("host_bytes") or 0)
        n_ctx = (view.get("engine") or {}).get("n_ctx")
        models.append(
            {
                **item,
                "size": size or item["size"],
                "expires_at": _expires_at(view, now),
                "size_vram": device if on_gpu else 0,
                "context_length": int(n_ctx) if n_ctx else 0,
            }
        )
    return JSONResponse({"models": models})


# -- POST /api/pull ------------------------------------------------------------------------


def _line(obj: dict[str, Any]) -> bytes:
    """One NDJSON line (the ollama SDKs read each line as JSON: never an empty one)."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.encode() + b"\n"


class _PullLines:
    """The store's progress events as Ollama's pull lines: "pulling manifest", "pulling
    <digest>" with total and completed, "verifying sha256 digest", "writing manifest",
    "success"."""

    def __init__(self) -> None:
        self.digest = ""  # the file's sha256 once the hub named it
        self.filename = ""
        self.total = 0
        self.verified = False

    def _layer(self, completed: int) -> dict[str, Any]:
        if self.digest:
            line: dict[str, Any] = {
                "status": f"pulling {self.digest[:12]}",
                "digest": f"sha256:{self.digest}",
            }
        else:  # a model folder: many files, no one digest
            line = {"status": f"pulling {self.filename or 'files'}"}
        return {**line, "total": self.total, "completed": completed}

    def event(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        status = data.get("status")
        self.digest = str(data.get("sha256") or self.digest)
        self.total = int(data.get("total") or self.total)
        self.filename = str(data.get("filename") or self.filename)
        if status == "downloading":
            return [self._layer(int(data.get("downloaded") or 0))]
        if status == "verifying" and not self.verified:
            self.verified = True
            return [self._layer(self.total), {"status": "verifying sha256 digest"}]
        return []

    def success(self, stored: StoredModel) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if not self.verified:  # it was in the store already: nothing was fetched
            self.digest = self.digest or stored.sha256
            self.total = stored.size
            out += [self._layer(stored.size), {"status": "verifying sha256 digest"}]
        return [*out, {"status": "writing manifest"}, {"status": "success"}]


def _pull_error(exc: BaseException) -> APIError:
    if isinstance(exc, StoreError):
        return store_error(exc)
    if isinstance(exc, APIError):
        return exc
    return APIError(500, str(exc) or type(exc).__name__, "server_error")


async def _here_already(stored: StoredModel | None) -> StoredModel | None:
    return stored


def _ollama_pull(
    manager: ModelManager, model: str
) -> tuple[Coroutine[Any, Any, StoredModel | None], str]:
    """The pull a name asks for, and the label of its events: an hf:// reference, or a
    catalog model from the hub (at once when it is stored). A model with nothing to fetch
    (a catalog model's own file, an import) is here already: its stored record, or None."""
    if model.startswith("hf://") or is_hf_name(model):
        return start_pull(manager, model, None)
    name = _canonical(manager, model)
    entry = manager.catalog.exact(name)
    if entry is not None and isinstance(entry.source, HubSource):
        return start_pull(manager, name, None)
    stored = manager.store.get(name)
    path = manager.local_file(name)
    if path is None or not path.exists():
        source = stored.source if stored is not None else str(path)
        raise APIError(
            404,
            f"model '{name}' has no file here and no catalog entry to pull it from: "
            f"pull or import it again ({source})",
            "invalid_request_error",
            "model",
            "model_not_found",
        )
    return _here_already(stored), name


async def pull(request: Request) -> Response:
    manager = manager_of(request)
    body = _body(await read_json(request))
    model = _model_field(body)
    stream = body.get("stream", True) is not False
    job, label = _ollama_pull(manager, model)

    if not stream:
        try:
            await job
        except (StoreError, APIError) as exc:
            raise _pull_error(exc) from exc
        return JSONResponse({"status": "success"})

    async def lines() -> AsyncIterator[bytes]:
        mapper = _PullLines()
        with manager.subscribe() as events:
            task = asyncio.ensure_future(job)
            try:
                yield _line({"status": "pulling manifest"})
                while not task.done():
                    getter = asyncio.ensure_future(events.get())
                    await asyncio.wait({task, getter}, return_when=asyncio.FIRST_COMPLETED)
                    if not getter.done():
                        getter.cancel()
                        break
                    for item in _progress(getter.result(), label, mapper):
                        yield _line(item)
                while not events.empty():  # those emitted as the transfer ended
                    for item in _progress(events.get_nowait(), label, mapper):
                        yield _line(item)
                exc = task.exception()
                if exc is not None:
                    yield _line(_pull_error(exc).to_ollama_body())
                    return
                stored = task.result()
                if stored is None:
                    yield _line({"status": "success"})
                    return
                for item in mapper.success(stored):
                    yield _line(item)
            finally:
                if not task.done():
                    # The transfer goes on in the store; a client leaving does not stop it.
                    task.add_done_callback(lambda t: t.exception())

    return StreamingResponse(lines(), media_type=NDJSON)


def _progress(event: Event, label: str, mapper: _PullLines) -> list[dict[str, Any]]:
    if event.model != label or event.kind != "pull_progress":
        return []
    return mapper.event(event.data)


# -- DELETE /api/delete, and what is not supported -----------------------------------------


async def delete(request: Request) -> Response:
    manager = manager_of(request)
    model = _model_field(_body(await read_json(request)))
    name = _canonical(manager, model)
    if manager.store.get(name) is None:
        entry = manager.catalog.exact(name)
        if entry is not None and not isinstance(entry.source, HubSource):
            raise invalid_request(
                f"model '{name}' is served from its own file {entry.source} (models.toml), "
                "not from the store: there is nothing here to delete",
                "model",
            )
        raise _not_found(model)  # a catalog model not pulled yet
    await delete_stored(manager, name, param="model")
    return Response(status_code=200)


async def not_supported(request: Request) -> Response:
    what = request.url.path.removeprefix("/api/").split("/", 1)[0]
    raise APIError(
        501,
        f"{what} is not supported by this server; import GGUF files with `appliance import`",
        "invalid_request_error",
        None,
        "not_supported",
    )


routes = [
    Route("/", root, methods=["GET"]),  # HEAD too, as every GET route
    Route("/api/version", version, methods=["GET"]),
    Route("/api/tags", tags, methods=["GET"]),
    Route("/api/show", show, methods=["POST"]),
    Route("/api/ps", ps, methods=["GET"]),
    Route("/api/pull", pull, methods=["POST"]),
    Route("/api/delete", delete, methods=["DELETE"]),
    Route("/api/copy", not_supported, methods=["POST"]),
    Route("/api/create", not_supported, methods=["POST"]),
    Route("/api/push", not_supported, methods=["POST"]),
    Route("/api/blobs/{digest:path}", not_supported, methods=["HEAD", "POST"]),
]
