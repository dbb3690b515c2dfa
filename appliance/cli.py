"""The `appliance` command. Each failure prints one line of error text and exits non-zero
(a models.toml with several errors: a line each, so that one edit can mend them all).

Commands that manage models talk to the running daemon through its admin API;
when no daemon answers, the store commands (pull, import, ls, rm, inspect) work
on the local store directly, so an air-gapped box can be prepared before the
service starts.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from appliance import __version__, bench, chat_repl
from appliance.client import AdminClient, DaemonError, DaemonUnreachable
from appliance.paths import Paths, resolve_paths
from appliance.settings import Settings, SettingsError, load_settings
from appliance.store.layout import default_model_name
from appliance.tiers.names import shadowed_by_catalog
from appliance.tiers.policy import fmt_bytes
from appliance.tiers.tier_state import fmt_duration


class CLIError(Exception):
    """One line for the user; exit status 1."""

    status = 1


class ConfigError(CLIError):
    """The configuration (settings.toml, models.toml) cannot be served as written: exit
    status 78 (EX_CONFIG), which the systemd units do not restart on
    (`RestartPreventExitStatus=78`): a typo is mended by its operator, not by restarting
    every two seconds."""

    status = 78


# -- context --------------------------------------------------------------------------------


def _paths_settings(args: argparse.Namespace) -> tuple[Paths, Settings]:
    paths = resolve_paths(getattr(args, "home", None))
    overrides = {
        "host": getattr(args, "host", None),
        "port": getattr(args, "port", None),
        "catalog_path": getattr(args, "catalog", None),
    }
    try:
        return paths, load_settings(paths, overrides)
    except SettingsError as exc:
        raise ConfigError(str(exc)) from exc


START_HINT = "; start the daemon with `appliance serve` or `systemctl start appliance`"


def _api_key(settings: Settings) -> str | None:
    return os.environ.get("APPLIANCE_API_KEY") or (
        settings.api_keys[0] if settings.api_keys else None
    )


def _daemon_url(args: argparse.Namespace) -> str:
    """The daemon's address, the same way for every command: --url, else the settings'
    host and port (settings.toml < APPLIANCE_HOST/APPLIANCE_PORT < --host/--port)."""
    url: str | None = getattr(args, "url", None)
    if url:
        return url.rstrip("/")
    _, settings = _paths_settings(args)
    return settings.base_url


def _client(args: argparse.Namespace) -> AdminClient:
    _, settings = _paths_settings(args)
    return AdminClient(_daemon_url(args), api_key=_api_key(settings))


def _local_store(args: argparse.Namespace, write: bool = False) -> Any:
    """The store, read by this process while the daemon is not running. Writing to it as
    root is refused when another user (the service's) owns it: the files would be root's."""
    from appliance.paths import foreign_owner
    from appliance.store.store import Store

    paths, settings = _paths_settings(args)
    owner = foreign_owner(paths.store_dir) if write else None
    if owner is not None:
        command = " ".join(["appliance", *sys.argv[1:]])
        raise CLIError(
            f"the store {paths.store_dir} belongs to '{owner}', and what root writes there "
            f"its owner could not read: start the service (its daemon does this: `sudo "
            f"systemctl start appliance`), or run this as that user: `sudo -u {owner} "
            f"{command}`"
        )
    paths.ensure()
    return Store(paths.store_dir, endpoint=settings.hub_endpoint, token=settings.hf_token)


def _catalog(settings: Settings) -> Any:
    from appliance.catalog import Catalog, load_catalog

    if settings.catalog_path is None:
        return Catalog(())
    return load_catalog(settings.catalog_path)


class ProgressBar:
    """One line on stderr, redrawn at most 10 times a second."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.started = time.monotonic()
        self.last = 0.0

    def update(self, status: str, done: int | None, total: int | None, message: str = "") -> None:
        now = time.monotonic()
        if now - self.last < 0.1 and status == "downloading" and not message:
            return
        self.last = now
        if message and not done:  # e.g. waiting for another pull of the same file
            text = f"{self.label}  {message}"
        elif total and done is not None and status == "downloading":
            rate = done / max(now - self.started, 1e-6)
            text = (
                f"{self.label}  {100 * done / total:5.1f}%  {fmt_bytes(done)} / "
                f"{fmt_bytes(total)}  {fmt_bytes(rate)}/s"
            )
        else:
            text = f"{self.label}  {status}"
        end = "\n" if status in ("done", "success", "error", "cancelled") else ""
        print(f"\r{text:<79}", end=end, file=sys.stderr, flush=True)


# -- commands -------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from appliance.api.app import create_app
    from appliance.api.server import DaemonServer, listening_sockets
    from appliance.catalog import CatalogError
    from appliance.hardware import detect
    from appliance.sd_notify import Notifier
    from appliance.store.store import Store

    # First: the engine workers, started later, must not inherit systemd's variables.
    notifier = Notifier.from_environ()
    paths, settings = _paths_settings(args)
    paths.ensure()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        catalog = _catalog(settings)
    except CatalogError as exc:
        raise ConfigError(str(exc)) from exc
    store = Store(paths.store_dir, endpoint=settings.hub_endpoint, token=settings.hf_token)
    hardware = detect()
    log = logging.getLogger("appliance")
    engine = hardware.engine
    log.info(
        "appliance %s: backend %s, store %s, catalog %s",
        __version__,
        engine.backend if engine else "unavailable",
        paths.store_dir,
        settings.catalog_path,
    )
    for problem in hardware.problems:
        log.warning("%s", problem)
    app = create_app(settings, catalog, store, hardware, paths.data_dir)
    log.info("serving the OpenAI API at %s/v1", settings.base_url)
    drain = app.state.drain
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        timeout_graceful_shutdown=10,  # after the drain, which already ended every request
    )
    sockets = listening_sockets(config, settings.ollama_port)
    server = DaemonServer(
        config,
        drain=drain,
        drain_timeout_s=settings.drain_timeout_s,
        notifier=notifier,
        manager=app.state.manager,
    )
    # Event streams end when the drain starts (SIGTERM) or uvicorn stops.
    app.state.shutting_down = lambda: drain.draining or server.should_exit
    server.run(sockets=sockets)
    log.info("stopped")
    return 0


def cmd_pull(args: argparse.Namespace) -> int:
    label = args.name or args.model  # what the daemon calls this pull
    if args.cancel:
        with _client(args) as client:
            client.cancel_pull(label)
        print(f"cancelled the pull of {label}; its partial download is kept: pull again to resume")
        return 0
    bar = ProgressBar(args.model)
    started = False
    try:
        with _client(args) as client:
            try:
                for event in client.pull(args.model, args.name):
                    started = True
                    if event.get("status") == "success":
                        bar.update("success", None, None)
                        print(
                            f"{event['model']}  sha256 {event['sha256']}  "
                            f"{fmt_bytes(event['size'])}  revision {event.get('revision')}"
                        )
                        return 0
                    bar.update(
                        str(event.get("status")),
                        event.get("downloaded"),
                        event.get("total"),
                        str(event.get("message") or ""),
                    )
            except KeyboardInterrupt:  # ctrl+c stops the download, as in Ollama
                with contextlib.suppress(DaemonError, DaemonUnreachable):
                    client.cancel_pull(label)
                print(
                    f"\ncancelled; the partial download is kept: pull {args.model} again to "
                    "resume it",
                    file=sys.stderr,
                )
                return 130
    except DaemonUnreachable:
        if started:  # it went away mid-pull: say where the download goes on
            print(
                "\nappliance: the daemon stopped answering; the pull goes on here, resuming "
                "the download where it stopped",
                file=sys.stderr,
            )
    from appliance.store.errors import NotFoundError
    from appliance.store.hf_names import hf_name
    from appliance.store.store import ProgressEvent

    _, settings = _paths_settings(args)
    ref = args.model
    hf = hf_name(ref)  # an Ollama hf.co/ORG/REPO:TAG name: its references, in turn
    if hf is not None:
        args.name = hf.store_name
    elif not ref.startswith("hf://"):
        entry = _catalog(settings).resolve(ref)
        if entry is None:
            raise CLIError(
                f"'{ref}' is neither a catalog model nor an hf://org/repo/PATH reference"
            )
        ref, args.name = f"{entry.source}@{entry.revision}", entry.name

    def progress(ev: ProgressEvent) -> None:
        bar.update(ev.status, ev.downloaded, ev.total, ev.message)

    refs = list(hf.refs) if hf is not None else [ref]
    store = _local_store(args, write=True)
    stored = store.get(hf.store_name) if hf is not None else None  # as `canonical` finds it
    for i, each in enumerate([] if stored is not None else refs):
        try:
            stored = store.pull(each, args.name, progress)
            break
        except NotFoundError:
            if i + 1 == len(refs):
                raise
    assert stored is not None  # a pull returned, or the last one raised
    bar.update("done", None, None)
    print(
        f"{stored.name}  sha256 {stored.sha256}  {fmt_bytes(stored.size)}  "
        f"revision {stored.revision}"
    )
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    path = Path(args.path).expanduser().resolve()
    try:
        with _client(args) as client:
            result = client.import_file(str(path), args.name)
            print(f"{result['model']}  sha256 {result['sha256']}  {fmt_bytes(result['size'])}")
            return 0
    except DaemonUnreachable:
        pass
    # As the daemon does: a catalog model's alias or case variant would never be reached.
    _, settings = _paths_settings(args)
    problem = shadowed_by_catalog(_catalog(settings), args.name or default_model_name(path.name))
    if problem is not None:
        raise CLIError(f"{problem} with --name")
    stored = _local_store(args, write=True).import_file(path, args.name)
    print(f"{stored.name}  sha256 {stored.sha256}  {fmt_bytes(stored.size)}")
    return 0


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in [header, *rows]
    ]
    return "\n".join(lines)


def cmd_ls(args: argparse.Namespace) -> int:
    try:
        with _client(args) as client:
            models = client.models()
        rows = [
            [
                m["name"],
                m["tier"],
                m["state"],
                m["kind"],
                fmt_bytes(m["size_bytes"]) if m["size_bytes"] else "-",
                ",".join(m["aliases"]) or "-",
            ]
            for m in models
        ]
        print(_table(rows, ["NAME", "TIER", "STATE", "KIND", "SIZE", "ALIASES"]))
        return 0
    except DaemonUnreachable:
        pass
    _, settings = _paths_settings(args)
    stored = {m.name: m for m in _local_store(args).list()}
    catalog = _catalog(settings)
    names = list(catalog.names()) + [n for n in stored if n not in catalog]
    rows = [
        [
            n,
            "cold" if n in stored else "remote",
            "daemon not running",
            fmt_bytes(stored[n].size) if n in stored else "-",
        ]
        for n in names
    ]
    print(_table(rows, ["NAME", "TIER", "STATE", "SIZE"]))
    return 0


def _ps_memory(m: dict[str, Any]) -> str:
    """A hot model's bytes on its device (and a GPU model's host RAM), or a warm one's."""
    if m["tier"] != "hot":
        return fmt_bytes(m["resident_bytes"])
    host = m.get("host_bytes") or 0
    return fmt_bytes(m["hot_bytes"]) + (f" + {fmt_bytes(host)} host" if host else "")


def cmd_ps(args: argparse.Namespace) -> int:
    """Models in RAM or VRAM (hot and warm), with what holds them there; then the pulls
    in flight, if any."""
    with _client(args) as client:
        models = [
            m
            for m in client.models()
            if m["tier"] in ("hot", "warm") or m["state"] in ("loading", "pulling", "failed")
        ]
        try:
            pulls = client.pulls()
        except DaemonError as exc:
            if exc.status != 404:  # 404: a daemon from before GET /admin/pulls
                raise
            pulls = []
    rows = [
        [
            m["name"],
            m["tier"],
            m["state"],
            m["pin"] or "-",
            m["device"] or "-",
            _ps_memory(m),
            str(m["pid"] or "-"),
            str(m["active_requests"]),
            f"{m.get('slots_busy') or 0}/{m['slots']}" if m.get("slots") else "-",
            str(m["queue_depth"]),
            str((m.get("engine") or {}).get("flash_attn") or "-"),
            _until(m),
        ]
        for m in models
    ]
    header = [
        "NAME",
        "TIER",
        "STATE",
        "PIN",
        "DEVICE",
        "MEMORY",
        "PID",
        "ACTIVE",
        "SLOTS",
        "QUEUED",
        "FLASH ATTN",
        "UNTIL",
    ]
    print(_table(rows, header))
    if pulls:
        print()
        print(pulls_table(pulls, time.time()))
    return 0


def pulls_table(pulls: list[dict[str, Any]], now: float) -> str:
    """The daemon's pulls in flight (GET /admin/pulls) as `appliance ps` shows them."""
    rows = []
    for p in pulls:
        done, total = p.get("downloaded") or 0, p.get("total")
        rate, eta = p.get("rate_bytes_per_s"), p.get("eta_s")
        rows.append(
            [
                str(p["model"]),
                str(p["status"]),
                f"{100 * done / total:.1f}%" if total else "-",
                f"{fmt_bytes(done)} / {fmt_bytes(total)}" if total else fmt_bytes(done),
                f"{fmt_bytes(rate)}/s" if rate is not None else "-",
                fmt_duration(float(eta)) if eta is not None else "-",
                f"{fmt_duration(now - float(p['started']))} ago",
            ]
        )
    header = ["PULLING", "STATUS", "PROGRESS", "SIZE", "RATE", "ETA", "STARTED"]
    return _table(rows, header)


def _until(m: dict[str, Any]) -> str:
    """When the model leaves its tier if nothing uses it (Ollama's UNTIL): "4m left", or
    why it stays: serving, pinned, kept forever."""
    if m.get("expires_in_s") is not None:
        return f"{fmt_duration(float(m['expires_in_s']))} left"
    if m["state"] in ("loading", "pulling", "moving"):
        return str(m["state"])
    if m["active_requests"]:
        return "in use"
    if m["pin"]:
        return f"pinned {m['pin']}"
    return "forever" if m["state"] != "failed" else "-"


def cmd_load(args: argparse.Namespace) -> int:
    with _client(args) as client:
        m = client.load(args.model)
    print(f"{m['name']} loaded (pid {m['pid']}): {m['placement']}")
    return 0


def cmd_unload(args: argparse.Namespace) -> int:
    with _client(args) as client:
        m = client.unload(args.model)
    print(f"{m['name']} {'unloaded' if m['unloaded'] else 'was not loaded'}")
    return 0


def cmd_tier(args: argparse.Namespace) -> int:
    with _client(args) as client:
        m = client.set_tier(args.model, args.tier)
    print(f"{m['name']} is {m['tier']}")
    return 0


def cmd_pin(args: argparse.Namespace) -> int:
    with _client(args) as client:
        m = client.pin(args.model, args.tier)
    print(f"{m['name']} pinned {m['pin']} (now {m['tier']})")
    return 0


def cmd_unpin(args: argparse.Namespace) -> int:
    with _client(args) as client:
        m = client.pin(args.model, None)
    note = f"; {m['pin_note']}" if m.get("pin_note") else ""
    print(f"{m['name']} unpinned (now {m['tier']}){note}")
    return 0


def cmd_budgets(args: argparse.Namespace) -> int:
    changes: dict[str, Any] = {}
    if args.warm:
        changes["warm"] = args.warm
    if args.cold:
        changes["cold"] = args.cold
    hot = {}
    if args.hot_cpu:
        hot["cpu"] = args.hot_cpu
    for item in args.hot_gpu or []:
        device, _, size = item.partition("=")
        if not size:
            raise CLIError(f"--hot-gpu takes DEVICE=SIZE (e.g. cuda:0=20GiB), got {item!r}")
        hot[device] = size
    if hot:
        changes["hot"] = hot
    with _client(args) as client:
        view = client.budgets(changes)
    rows = [
        [f"hot {device}", fmt_bytes(r["budget"]), fmt_bytes(r["used"]), fmt_bytes(r["free"])]
        for device, r in view["hot"].items()
    ]
    for tier in ("warm", "cold"):
        r = view[tier]
        rows.append([tier, fmt_bytes(r["budget"]), fmt_bytes(r["used"]), fmt_bytes(r["free"])])
    cache = view.get("prompt_cache") or {}
    for tier in ("ram", "disk"):
        r = cache.get(tier)
        if r:
            free = None if r["budget"] is None else r["budget"] - r["used"]
            row = [f"prompt cache {tier}", fmt_bytes(r["budget"]), fmt_bytes(r["used"])]
            rows.append([*row, fmt_bytes(free)])
    print(_table(rows, ["TIER", "BUDGET", "USED", "FREE"]))
    return 0


def cmd_rm(args: argparse.Namespace) -> int:
    try:
        with _client(args) as client:
            client.remove(args.model)
            print(f"removed {args.model}")
            return 0
    except DaemonUnreachable:
        pass
    store = _local_store(args, write=True)
    if store.get(args.model) is None:
        raise CLIError(f"no model '{args.model}' in the store")
    store.remove(args.model)
    print(f"removed {args.model}")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from appliance.api.admin_routes import inspect_payload
    from appliance.store.model_folder import read_model_info
    from appliance.tiers.serving import serving_for

    _, settings = _paths_settings(args)
    context = args.context or settings.default_context
    local = dataclasses.replace(settings, default_context=context)
    path = Path(args.model).expanduser()
    if (
        path.is_file()
        or (path / "genai_config.json").is_file()
        or (path / "modules.json").is_file()
    ):
        info = read_model_info(path)
        if info.format == "gguf":
            from appliance.store.engine_arch import check_architecture

            check_architecture(info.architecture)  # as an import would
        data = inspect_payload(info, serving_for(None, local, info), local.prompt_cache_ram_bytes)
    else:
        try:
            with _client(args) as client:
                data = client.inspect(args.model, args.context)  # else as models.toml says
        except DaemonUnreachable:
            stored = _local_store(args).get(args.model)
            if stored is None:
                raise CLIError(f"no model or file '{args.model}' (daemon not running)") from None
            info = read_model_info(stored.path)
            data = inspect_payload(
                info, serving_for(None, local, info), local.prompt_cache_ram_bytes
            )
    est = data["estimate"]
    print(f"path            {data['path']}")
    print(f"format          {data.get('format', 'gguf')}")
    provider = data.get("provider")
    if isinstance(provider, dict):
        print(f"provider        {provider.get('name')} ({provider.get('reason')})")
    print(f"architecture    {data['architecture']}")
    print(f"parameters      {data['parameters']:,} ({data['parameters'] / 1e9:.2f} B)")
    print(f"quantization    {data['quantization']}")
    print(f"context length  {data['context_length']}")
    print(f"file size       {fmt_bytes(data['file_size'])}")
    print(f"kind            {'embedding' if data['embedding'] else 'chat/completion'}")
    serving = data.get("serving") or {}
    if serving:
        print(
            f"serving         {serving['slots']} slot(s) of {serving['context']} tokens, "
            f"queue {serving['max_queue']}, flash attention {serving['flash_attn']}, "
            f"KV {'unified' if serving.get('kv_unified') else 'a stream per slot'}"
        )
    slots = est.get("slots", 1)
    print(
        f"memory at {est['context']} ctx x {slots}  {fmt_bytes(est['total_bytes'])} (weights "
        f"{fmt_bytes(est['weights_bytes'])}, KV cache {fmt_bytes(est['kv_cache_bytes'])}, "
        f"compute {fmt_bytes(est['compute_bytes'])})"
    )
    if est.get("prompt_states_bytes"):
        print(
            f"prompt states   up to {fmt_bytes(est['prompt_states_bytes'])} of host RAM while "
            "loaded (prompt_cache_ram), counted in its footprint in `ps`"
        )
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    _, settings = _paths_settings(args)
    if not args.model:
        entry = _catalog(settings).default_entry()
        if entry is None:
            raise CLIError("name a model: appliance chat MODEL (see `appliance ls`)")
        args.model = entry.name
    daemon = not args.base_url
    if daemon:
        args.base_url = _daemon_url(args) + "/v1"
    if not args.api_key and daemon:  # the daemon's key goes to the daemon only
        args.api_key = _api_key(settings)
    try:
        return chat_repl.run_from_args(args)
    except chat_repl.ChatError as exc:
        hint = START_HINT if daemon and str(exc).startswith("cannot reach") else ""
        raise CLIError(f"chat with {args.model}: {exc}{hint}") from exc


def cmd_bench(args: argparse.Namespace) -> int:
    _, settings = _paths_settings(args)
    if not args.base_url:
        args.base_url = _daemon_url(args) + "/v1"
        if not args.api_key:  # as chat: `sudo appliance bench` uses the service's key
            args.api_key = _api_key(settings)
    return bench.run_from_args(args)


def cmd_tui(args: argparse.Namespace) -> int:
    from tui.app import make_app  # the TUI is a client of the API; the daemon never imports it

    _, settings = _paths_settings(args)
    key = os.environ.get("APPLIANCE_API_KEY") or (
        settings.api_keys[0] if settings.api_keys else None
    )
    make_app(_daemon_url(args), api_key=key).run()
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from appliance import doctor

    paths, settings = _paths_settings(args)
    return doctor.run(paths, settings, lambda: _catalog(settings), _daemon_url(args))


# -- parser ---------------------------------------------------------------------------------


def add_place_options(p: argparse.ArgumentParser, daemon: bool) -> None:
    """--home, --host and --port on every command, and --url on those that talk to the
    daemon: one way to say where it is (see `_daemon_url`)."""
    p.add_argument("--home", help="state folder (overrides APPLIANCE_HOME)")
    p.add_argument("--host", help="the daemon's address (overrides APPLIANCE_HOST)")
    p.add_argument("--port", type=int, help="the daemon's port (overrides APPLIANCE_PORT)")
    if daemon:
        p.add_argument("--url", help="the daemon's URL (default: http://HOST:PORT)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="appliance",
        description="Self-hosted inference appliance: serve GGUF and ONNX models "
        "behind an OpenAI-compatible API.",
    )
    parser.add_argument("--version", action="version", version=f"appliance {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(
        name: str,
        func: Callable[[argparse.Namespace], int],
        help_text: str,
        daemon: bool = True,
        aliases: tuple[str, ...] = (),
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, aliases=list(aliases), help=help_text, description=help_text)
        add_place_options(p, daemon)
        p.set_defaults(func=func)
        return p

    p = command("serve", cmd_serve, "run the daemon in the foreground", daemon=False)
    p.add_argument("--catalog", help="models.toml to use")
    p = command(
        "pull",
        cmd_pull,
        "download a catalog model, hf://org/repo/file.gguf[@rev] or an ONNX folder "
        "hf://org/repo/FOLDER[@rev]",
    )
    p.add_argument("model")
    p.add_argument("--name", help="store name for an hf:// reference")
    p.add_argument(
        "--cancel",
        action="store_true",
        help="stop the daemon's pull of this model (its partial download is kept)",
    )
    p = command(
        "import",
        cmd_import,
        "bring a local GGUF file or ONNX model folder into the store (air-gapped)",
    )
    p.add_argument("path")
    p.add_argument("--name")
    # Ollama's names too (list, show, stop), as its users type them.
    command("ls", cmd_ls, "list catalog and stored models", aliases=("list",))
    command("ps", cmd_ps, "list hot and warm models: memory, slots, queue")
    p = command("load", cmd_load, "load a model now")
    p.add_argument("model")
    p = command("unload", cmd_unload, "unload a model now", aliases=("stop",))
    p.add_argument("model")
    p = command("tier", cmd_tier, "move a model to a tier (promote or demote)")
    p.add_argument("model")
    p.add_argument("tier", choices=("hot", "warm", "cold"))
    p = command("pin", cmd_pin, "keep a model at least at a tier (survives restarts)")
    p.add_argument("model")
    p.add_argument("tier", choices=("hot", "warm"), nargs="?", default="hot")
    p = command("unpin", cmd_unpin, "remove a pin (one models.toml sets: until a restart)")
    p.add_argument("model")
    p = command("budgets", cmd_budgets, "show tier budgets and use; set them for this run")
    p.add_argument("--hot-cpu", metavar="SIZE")
    p.add_argument("--hot-gpu", metavar="DEVICE=SIZE", action="append")
    p.add_argument("--warm", metavar="SIZE")
    p.add_argument("--cold", metavar="SIZE")
    p = command("rm", cmd_rm, "delete a model from the store")
    p.add_argument("model")
    p = command(
        "inspect", cmd_inspect, "show a model's metadata and memory estimate", aliases=("show",)
    )
    p.add_argument("model", help="model name, or path to a GGUF file or model folder")
    p.add_argument("--context", type=int)
    from appliance import store_commands  # verify, gc: store maintenance without a daemon

    store_commands.register(command)
    p = sub.add_parser("chat", aliases=["run"], help="interactive streaming chat with a model")
    chat_repl.add_arguments(p)
    add_place_options(p, daemon=True)
    p.set_defaults(func=cmd_chat)
    p = sub.add_parser("bench", help="benchmark any OpenAI-compatible server")
    bench.add_arguments(p)
    add_place_options(p, daemon=True)
    # --base-url defaults to the daemon's, as every command finds it.
    p.set_defaults(func=cmd_bench, base_url=None)
    command("tui", cmd_tui, "the terminal UI: models, tiers, events, chat, live telemetry")
    command(
        "doctor",
        cmd_doctor,
        "check the engine, the devices and models.toml, look for the daemon, run a self-test",
        daemon=False,
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.func(args)
        return result
    except KeyboardInterrupt:
        print("", file=sys.stderr)
        return 130
    except (CLIError, DaemonError) as exc:
        # The API's hint is for HTTP clients; here the command is the way to look.
        message = str(exc).replace(
            "List the available models with GET /v1/models.", "See `appliance ls`."
        )
        print(f"appliance: error: {message}", file=sys.stderr)
        return exc.status if isinstance(exc, CLIError) else 1
    except Exception as exc:
        from appliance.catalog import CatalogError
        from appliance.store.gguf_meta import GGUFError
        from appliance.store.store import StoreError

        if isinstance(exc, StoreError | GGUFError | CatalogError | OSError):
            print(f"appliance: error: {exc}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
