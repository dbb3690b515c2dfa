"""Hardening through the real daemon: Host checks (DNS rebinding), no CORS, pull refusals
before the stream, imports only from allowed folders and without echoing file bytes,
the SIGTERM drain, CLI exit statuses and the daemon's address, and /openapi.json."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from appliance.api import (
    admin_routes,
    anthropic_routes,
    llama_native_routes,
    ollama_model_routes,
    ollama_routes,
    openai_routes,
    responses_routes,
    telemetry_routes,
)
from appliance.paths import Paths
from tests.api.test_http_errors import assert_error
from tests.conftest import write_catalog
from tests.daemon import Daemon, free_port, start_daemon, wait_for
from tests.test_cli import run_cli

BOUND = "127.0.0.2"  # a loopback address the daemon binds, so it is "the bound address"


@dataclass
class BoundDaemon(Daemon):
    host: str = BOUND

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def start_bound(home: Path, catalog: Path, env: dict[str, str]) -> BoundDaemon:
    """`start_daemon`, bound to `BOUND` and with the user's home set (not the tests')."""
    port = free_port()
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("APPLIANCE_")}
    full_env.update(
        {
            "APPLIANCE_HOME": str(home),
            "APPLIANCE_THREADS": "1",
            "APPLIANCE_HOST": BOUND,
            "HF_HUB_DISABLE_TELEMETRY": "1",
            **env,
        }
    )
    home.mkdir(parents=True, exist_ok=True)
    log_path = home / "daemon.log"
    command = [sys.executable, "-m", "appliance.cli", "serve", "--port", str(port)]
    proc = subprocess.Popen(
        [*command, "--catalog", str(catalog)],
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
        env=full_env,
    )
    daemon = BoundDaemon(proc, port, home, log_path)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"daemon exited with {proc.returncode}:\n{daemon.log()}")
        try:
            if httpx.get(daemon.url + "/health", timeout=1).status_code == 200:
                return daemon
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    daemon.stop()
    raise RuntimeError(f"daemon did not answer within 60 s:\n{daemon.log()}")


@pytest.fixture(scope="module")
def user_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("user-home")


@pytest.fixture(scope="module")
def bound(
    tmp_path_factory: pytest.TempPathFactory, models_dir: Path, user_home: Path
) -> Iterator[BoundDaemon]:
    home = tmp_path_factory.mktemp("hardening")
    catalog = write_catalog(
        home / "catalog.toml",
        models_dir,
        """
[models.remote]
source = "hf://org/repo/model-q4_k_m.gguf"
revision = "0123456789abcdef0123456789abcdef01234567"
""",
    )
    # No APPLIANCE_IMPORT_DIRS: the defaults, the user's home and the store's inbox.
    env = {
        "HOME": str(user_home),
        "APPLIANCE_ALLOWED_HOSTS": "box.lan, Other.Example:8080",
        "HF_ENDPOINT": f"http://127.0.0.1:{free_port()}",  # no hub answers there
    }
    d = start_bound(home, catalog, env)
    yield d
    d.stop()


def get_with_host(d: Daemon, host: str | None, path: str = "/health") -> httpx.Response:
    headers = {"Host": host} if host is not None else {}
    return httpx.get(d.url + path, headers=headers, timeout=30)


# -- 1. DNS rebinding ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        "localhost",
        "localhost:{port}",
        "LOCALHOST.",
        "127.0.0.1",
        "127.0.0.1:{port}",
        "[::1]",
        "[::1]:{port}",
        BOUND,
        BOUND + ":{port}",
        "box.lan",
        "box.lan:{port}",
        "other.example",
    ],
)
def test_hosts_naming_the_daemon_are_served(bound: BoundDaemon, host: str) -> None:
    r = get_with_host(bound, host.format(port=bound.port))
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    "host",
    [
        "evil.example",
        "evil.example:{port}",
        "localhost.evil.example",
        "127.0.0.3",
        "[::2]",
        # Malformed: a served name in front of something else is no served name.
        "localhost:{port}@evil.example",
        "localhost@evil.example",
        "127.0.0.1:{port}/evil.example",
        "[::1]evil.example",
        "[::1]:{port}@evil.example",
        "localhost:{port}:{port}",
        "localhost:evil",
        "localhost:999999",
        "box.lan..",
        "[localhost]",
    ],
)
def test_other_hosts_get_421_saying_how_to_allow_them(bound: BoundDaemon, host: str) -> None:
    for path in ("/health", "/v1/models", "/admin/models"):
        r = get_with_host(bound, host.format(port=bound.port), path)
        err = assert_error(r, 421, code="host_not_allowed")
        assert "allowed_hosts" in err["message"] and "APPLIANCE_ALLOWED_HOSTS" in err["message"]
    r = httpx.post(
        bound.url + "/v1/chat/completions",
        headers={"Host": "evil.example"},
        json={"model": "tiny", "messages": [{"role": "user", "content": "hi"}]},
        timeout=30,
    )
    assert_error(r, 421, code="host_not_allowed")


def test_a_host_header_is_a_name_or_ip_literal_with_an_optional_port() -> None:
    from appliance.api.host_check import request_host

    assert request_host("LocalHost.:8750") == "localhost"
    assert request_host("[::1]:8750") == "::1"
    assert request_host("[FE80::1]") == "fe80::1"
    assert request_host("192.168.1.5") == "192.168.1.5"
    assert request_host("box_1.lan:80") == "box_1.lan"
    assert request_host("localhost:") == "localhost"  # an empty port is RFC 3986's
    for bad in (
        "localhost:8750@evil.example",
        "user@localhost",
        "[::1]evil",
        "[::1",
        "[evil.example]",
        "::1",
        "localhost:8750:8750",
        "localhost:65536",
        ".localhost",
        "local host",
        "",
    ):
        assert request_host(bad) is None, bad


def test_a_request_with_two_host_headers_is_refused() -> None:
    """h11 refuses it already; the check does not rely on the server's parser."""
    import asyncio

    from starlette.types import Message

    from appliance.api.host_check import HostCheckMiddleware

    served: list[bool] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        served.append(True)

    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    check = HostCheckMiddleware(app, bind_host="127.0.0.1")
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/health",
        "headers": [(b"host", b"localhost"), (b"host", b"evil.example")],
    }
    asyncio.run(check(scope, receive, send))
    assert not served and sent[0]["status"] == 421
    scope["headers"] = [(b"host", b"localhost")]
    asyncio.run(check(scope, receive, send))
    assert served


def test_no_cors_headers_for_a_foreign_origin(bound: BoundDaemon) -> None:
    origin = {"Origin": "http://evil.example"}
    r = httpx.get(bound.url + "/v1/models", headers=origin, timeout=30)
    assert_error(r, 403, code="origin_not_allowed")
    assert not [h for h in r.headers if h.lower().startswith("access-control-")]
    preflight = httpx.options(
        bound.url + "/v1/chat/completions",
        headers={**origin, "Access-Control-Request-Method": "POST"},
        timeout=30,
    )
    assert preflight.status_code >= 400
    assert not [h for h in preflight.headers if h.lower().startswith("access-control-")]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/admin/budgets", '{"warm": "1MiB"}'),
        ("/admin/models/tiny/load", "{}"),
        (
            "/v1/chat/completions",
            '{"model": "tiny", "messages": [{"role": "user", "content": "hi"}]}',
        ),
    ],
)
def test_a_foreign_page_cannot_drive_the_daemon_without_a_preflight(
    bound: BoundDaemon, path: str, body: str
) -> None:
    """A page's text/plain POST needs no preflight: the daemon ran it (a budget changed,
    a model loaded) for any site the user visited. It names its page in Origin."""
    before = httpx.get(bound.url + "/admin/budgets", timeout=30).json()
    for origin in ("http://evil.example", "https://evil.example:8443", "null"):
        r = httpx.post(
            bound.url + path,
            content=body,
            headers={"Origin": origin, "Content-Type": "text/plain"},
            timeout=30,
        )
        err = assert_error(r, 403, code="origin_not_allowed")
        assert "cors_origins" in err["message"] and "APPLIANCE_CORS_ORIGINS" in err["message"]
    assert httpx.get(bound.url + "/admin/budgets", timeout=30).json() == before


@pytest.mark.parametrize(
    "origin",
    [
        "http://localhost:3000",
        "http://127.0.0.1:5173",
        "http://[::1]",
        "app://chatbox",
        "vscode-webview://abc",
        "http://localhost:{port}",
    ],
)
def test_local_pages_and_apps_are_served(bound: BoundDaemon, origin: str) -> None:
    """Loopback pages (a developer's app, its dev server's proxy), local apps' schemes and
    the daemon's own origin, as Ollama serves them; no Origin at all: every SDK. With no
    cors_origins set, their preflights pass and the answers carry CORS headers: without
    them the browser ran the request but kept the answer from the page (openai-node's
    dangerouslyAllowBrowser, ollama/browser, a Vite app on localhost:5173 all failed)."""
    origin = origin.format(port=bound.port)
    r = httpx.get(bound.url + "/v1/models", headers={"Origin": origin}, timeout=30)
    assert r.status_code == 200, r.text
    assert r.headers["access-control-allow-origin"] == origin
    preflight = httpx.options(
        bound.url + "/v1/chat/completions",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type,x-stainless-os",
        },
        timeout=30,
    )
    assert preflight.status_code == 200, preflight.text
    assert preflight.headers["access-control-allow-origin"] == origin
    assert "x-stainless-os" in preflight.headers["access-control-allow-headers"].lower()
    assert "POST" in preflight.headers["access-control-allow-methods"]


def test_origin_policy() -> None:
    from appliance.api.origin_check import origin_allowed

    assert origin_allowed("http://box.lan:8750", "box.lan:8750", ())
    assert not origin_allowed("http://box.lan:9999", "box.lan:8750", ())
    assert origin_allowed("https://app.example", None, ("https://app.example",))
    assert origin_allowed("https://any.example", None, ("*",))
    assert not origin_allowed("null", None, ())
    assert origin_allowed("null", None, ("null",))
    assert not origin_allowed("http://localhost.evil.example", None, ())
    assert not origin_allowed("http://[::1", None, ())


def test_a_wildcard_bind_serves_ip_literals_but_not_names(tmp_path: Path, models_dir: Path) -> None:
    catalog = write_catalog(tmp_path / "catalog.toml", models_dir)
    d = start_daemon(tmp_path / "home", catalog, env={"APPLIANCE_HOST": "0.0.0.0"})
    try:
        assert get_with_host(d, "192.168.1.50:8750").status_code == 200
        assert get_with_host(d, "[fe80::1]").status_code == 200
        assert get_with_host(d, "localhost").status_code == 200
        assert_error(get_with_host(d, "box.lan"), 421, code="host_not_allowed")
    finally:
        d.stop()


# -- 2. pull refusals before the stream ---------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "param", "code"),
    [
        ({"model": "hf://"}, 400, "model", "invalid_ref"),
        ({"model": "hf://org"}, 400, "model", "invalid_ref"),
        ({"model": "hf://org/re po/x.gguf"}, 400, "model", "invalid_ref"),
        ({"model": "hf://org/repo/../x.gguf"}, 400, "model", "invalid_ref"),
        ({"model": "hf://org/repo/x.gguf@"}, 400, "model", "invalid_ref"),
        ({"model": "hf://org/repo/x.gguf", "name": "../escape"}, 400, "name", "invalid_name"),
        ({"model": "hf://org/repo/x.gguf", "name": 5}, 400, "name", None),
        ({"model": "../etc/passwd"}, 400, "model", "invalid_name"),
        ({"model": "no-such-model"}, 404, "model", "model_not_found"),
        ({"model": "tiny"}, 400, "model", "not_pullable"),
        ({"name": "x"}, 400, "model", None),
    ],
)
def test_pull_refusals_are_http_errors(
    bound: BoundDaemon, body: dict[str, Any], status: int, param: str, code: str | None
) -> None:
    r = httpx.post(bound.url + "/admin/pull", json=body, timeout=30)
    assert not r.headers.get("content-type", "").startswith("text/event-stream")
    assert_error(r, status, param, code)


def test_a_valid_reference_still_streams(bound: BoundDaemon) -> None:
    # Nothing answers at HF_ENDPOINT: a failure only the network shows is a stream event.
    with httpx.stream(
        "POST", bound.url + "/admin/pull", json={"model": "remote"}, timeout=120
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: ")]
    assert events[-1]["error"]["code"] == "hub_unavailable", events[-1]


# -- 3. imports ---------------------------------------------------------------------------


def import_path(d: Daemon, path: Path, name: str | None = None) -> httpx.Response:
    return httpx.post(d.url + "/admin/import", json={"path": str(path), "name": name}, timeout=60)


SECRET = b"SECRETS-IN-THIS-FILE: password=hunter2\n"


def test_import_errors_never_quote_the_file(bound: BoundDaemon, user_home: Path) -> None:
    for i, content in enumerate([SECRET, b"GGU", b"GGUF\xff\xff\xff\xff" + SECRET * 4]):
        path = user_home / f"notes-{i}.gguf"
        path.write_bytes(content)
        err = assert_error(import_path(bound, path), 400, "path")
        message = err["message"]
        assert str(path) in message
        for leak in (SECRET[:4].decode(), SECRET[:4].hex(), "hunter2", "\\x", "0x"):
            assert leak.lower() not in message.lower().replace(str(path).lower(), ""), message
    folder = user_home / "onnx-folder"
    folder.mkdir()
    (folder / "genai_config.json").write_text(
        json.dumps({"model": {"decoder": {"filename": "SECRET-NAME.onnx"}}})
    )
    err = assert_error(import_path(bound, folder), 400, "path")
    assert "SECRET" not in err["message"]


def test_imports_of_models_llama_cpp_cannot_load_are_refused(
    bound: BoundDaemon, user_home: Path, models_dir: Path, tmp_path: Path
) -> None:
    """An architecture this llama.cpp does not know, and attention layers without heads,
    were imported and failed at the first load: refused at import, saying which (the
    API in fixed words, the CLI on the box with the names)."""
    from tests.store.test_gguf_lies import set_architecture, set_u32

    tiny = (models_dir / "tiny.gguf").read_bytes()
    alien = user_home / "alien.gguf"
    alien.write_bytes(set_architecture(tiny, "fooba"))
    headless = user_home / "headless.gguf"
    headless.write_bytes(set_u32(tiny, "llama.attention.head_count", 0))
    for path, said in (
        (alien, "its general.architecture is not one the engine's llama.cpp can load"),
        (headless, "its attention.head_count is 0 for a layer that has attention weights"),
    ):
        err = assert_error(import_path(bound, path), 400, "path")
        assert str(path) in err["message"] and said in err["message"], err
    listed = httpx.get(bound.url + "/admin/models", timeout=30).text
    assert "alien" not in listed and "headless" not in listed

    cli = ("--url", f"http://127.0.0.1:{free_port()}")  # no daemon: the local store
    for path, said in (
        (alien, "general.architecture 'fooba' is not an architecture llama.cpp"),
        (headless, "llama.attention.head_count is 0 but the layer has attention weights"),
    ):
        r = run_cli("import", str(path), *cli, home=tmp_path / "home")
        assert r.returncode == 1 and said in r.stderr, r.stderr
        r = run_cli("inspect", str(path), home=tmp_path / "home")
        assert r.returncode == 1 and said in r.stderr, r.stderr


def test_imports_only_from_allowed_folders(
    bound: BoundDaemon, user_home: Path, models_dir: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.gguf"
    shutil.copy(models_dir / "tiny.gguf", outside)
    link = user_home / "link.gguf"
    link.symlink_to(outside)
    for path in (outside, link, tmp_path / "missing.gguf", Path("/etc/passwd")):
        err = assert_error(import_path(bound, path), 403, "path", "path_not_allowed")
        assert "import_dirs" in err["message"] and str(user_home) in err["message"]
    # A model folder in the home whose file links out of it is refused too.
    folder = user_home / "leaky-folder"
    folder.mkdir()
    (folder / "genai_config.json").write_text("{}")
    (folder / "model.onnx").symlink_to(outside)
    assert_error(import_path(bound, folder), 403, "path", "path_not_allowed")

    inside = user_home / "tiny-copy.gguf"
    shutil.copy(models_dir / "tiny.gguf", inside)
    r = import_path(bound, inside, "from-home")
    assert r.status_code == 200, r.text
    inbox = Paths.under(bound.home).store_dir / "inbox"
    assert inbox.is_dir()  # the daemon made it
    shutil.copy(models_dir / "tiny.gguf", inbox / "dropped.gguf")
    r = import_path(bound, inbox / "dropped.gguf", "from-inbox")
    assert r.status_code == 200, r.text


def test_the_inbox_is_allowed_beside_import_dirs_set(tmp_path: Path, models_dir: Path) -> None:
    """Set `import_dirs` replaces the home, not the store's inbox: the advice for a corrupt
    model is to import it from the inbox, and it was refused there."""
    catalog = write_catalog(tmp_path / "catalog.toml", models_dir)
    drop = tmp_path / "drop"
    drop.mkdir()
    d = start_daemon(tmp_path / "home", catalog, env={"APPLIANCE_IMPORT_DIRS": str(drop)})
    try:
        inbox = Paths.under(tmp_path / "home").store_dir / "inbox"
        wait_for(inbox.is_dir)
        shutil.copy(models_dir / "tiny.gguf", inbox / "dropped.gguf")
        r = import_path(d, inbox / "dropped.gguf", "from-inbox")
        assert r.status_code == 200, r.text
        shutil.copy(models_dir / "tiny.gguf", drop / "set.gguf")
        assert import_path(d, drop / "set.gguf", "from-drop").status_code == 200
        shutil.copy(models_dir / "tiny.gguf", tmp_path / "elsewhere.gguf")
        assert_error(import_path(d, tmp_path / "elsewhere.gguf"), 403, "path", "path_not_allowed")
    finally:
        d.stop()


def test_local_import_reads_any_path(models_dir: Path, tmp_path: Path) -> None:
    r = run_cli(
        "import",
        str(models_dir / "tiny.gguf"),
        "--name",
        "anywhere",
        "--url",
        f"http://127.0.0.1:{free_port()}",
        home=tmp_path / "home",
    )
    assert r.returncode == 0, r.stderr


# -- 4. the SIGTERM drain -----------------------------------------------------------------


def test_sigterm_drains_then_ends_streams_and_exits_zero(tmp_path: Path, models_dir: Path) -> None:
    # Greedy answers never end: the Anthropic stream below outlives the drain however fast
    # this box is (a greedy story once ended after 973 tokens, within it).
    extra = f'[models.slow]\nsource = "{models_dir / "endless.gguf"}"\ncontext = 4096\n'
    catalog = write_catalog(tmp_path / "catalog.toml", models_dir, extra)
    d = start_daemon(tmp_path / "home", catalog, env={"APPLIANCE_DRAIN_TIMEOUT": "1"})
    try:
        d.post("/admin/models/slow/load").raise_for_status()
        events: dict[str, list[str]] = {"long": [], "short": []}

        def stream(key: str, max_tokens: int) -> None:
            body = {
                "model": "slow",
                "messages": [{"role": "user", "content": "go on"}],
                "max_tokens": max_tokens,
                "ignore_eos": True,
                "stream": True,
            }
            with httpx.stream("POST", d.v1 + "/chat/completions", json=body, timeout=60) as s:
                assert s.status_code == 200
                for line in s.iter_lines():
                    if line.startswith("data:"):
                        events[key].append(line[5:].strip())

        long = threading.Thread(target=stream, args=("long", 3800))
        long.start()
        wait_for(lambda: len(events["long"]) > 5, timeout=30, interval=0.01)
        # An Anthropic Messages stream is cut with its own named error event (the anthropic
        # SDK skips an unnamed one).
        story = {
            "model": "slow",
            "max_tokens": 3800,
            "temperature": 0,
            "stream": True,
            "messages": [{"role": "user", "content": "Write a long story."}],
        }
        named: list[tuple[str, str]] = []

        def messages() -> None:
            name = ""
            with httpx.stream("POST", d.url + "/v1/messages", json=story, timeout=60) as s:
                for line in s.iter_lines():
                    if line.startswith("event: "):
                        name = line[7:]
                    elif line.startswith("data: "):
                        named.append((name, line[6:]))

        anthropic_stream = threading.Thread(target=messages)
        anthropic_stream.start()
        wait_for(lambda: len(named) > 5, timeout=30, interval=0.01)
        short = threading.Thread(target=stream, args=("short", 40))
        short.start()
        wait_for(lambda: events["short"], timeout=30, interval=0.01)

        d.proc.send_signal(signal.SIGTERM)
        refused = wait_for(
            lambda: (r := d.get("/health")).status_code == 503 and r, timeout=5, interval=0.02
        )
        assert refused.headers["Retry-After"]
        assert_error(refused, 503, code="shutting_down")
        r = d.post(
            "/v1/chat/completions",
            json={"model": "slow", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert r.headers["Retry-After"]
        assert_error(r, 503, code="shutting_down")

        short.join(30)
        long.join(30)
        anthropic_stream.join(30)
        assert named[-1][0] == "error", named[-3:]
        assert json.loads(named[-1][1])["error"]["type"] == "overloaded_error"
        assert events["short"][-1] == "[DONE]"  # finished within the drain
        last = json.loads(events["long"][-1])
        assert last["error"]["code"] == "shutting_down", events["long"][-3:]
        assert len(events["long"]) < 3800  # cut, not finished
        assert d.proc.wait(30) == 0
        log = d.log()
        assert "Traceback" not in log, log
        assert "draining" in log and "ended 2 request(s)" in log
    finally:
        d.stop()


# -- 5. the CLI: exit statuses and one way to find the daemon ------------------------------


def run_cli_env(*args: str, env: dict[str, str], stdin: str | None = None) -> Any:
    full = {k: v for k, v in os.environ.items() if not k.startswith("APPLIANCE_")}
    full.update(env)
    return subprocess.run(
        [sys.executable, "-m", "appliance.cli", *args],
        capture_output=True,
        text=True,
        env=full,
        input=stdin,
        timeout=120,
        check=False,
    )


def one_line_error(r: Any) -> str:
    assert r.returncode == 1, (r.stdout, r.stderr)
    line: str = r.stderr.strip()
    assert "\n" not in line and line.startswith("appliance: error:"), r.stderr
    return line


def test_chat_fails_with_one_line_when_nothing_answers(tmp_path: Path) -> None:
    env = {"APPLIANCE_HOME": str(tmp_path)}
    line = one_line_error(
        run_cli_env("chat", "tiny", "--port", str(free_port()), env=env, stdin="")
    )
    assert "cannot reach" in line
    env["APPLIANCE_PORT"] = str(free_port())
    line = one_line_error(run_cli_env("chat", "tiny", env=env, stdin="hello\n"))
    assert "cannot reach" in line and env["APPLIANCE_PORT"] in line


def test_chat_fails_for_unknown_or_unservable_models(daemon: Daemon, tmp_path: Path) -> None:
    env = {"APPLIANCE_HOME": str(tmp_path), "APPLIANCE_PORT": str(daemon.port)}
    line = one_line_error(run_cli_env("chat", "no-such-model", env=env, stdin="hi\n"))
    assert "no-such-model" in line
    line = one_line_error(run_cli_env("chat", "broken", env=env, stdin="hi\n"))
    assert "broken" in line


def test_every_command_finds_the_daemon_the_same_way(daemon: Daemon, tmp_path: Path) -> None:
    env = {"APPLIANCE_HOME": str(tmp_path), "APPLIANCE_PORT": str(daemon.port)}
    chat = run_cli_env("chat", "tiny", "--max-tokens", "3", env=env, stdin="hello\n")
    assert chat.returncode == 0 and "error" not in chat.stdout.lower(), chat.stderr
    assert run_cli_env("ps", env=env).returncode == 0
    ls = run_cli_env("ls", env=env)
    assert ls.returncode == 0 and "daemon not running" not in ls.stdout
    bench = run_cli_env("bench", "--model", "tiny", "--requests", "1", "--max-tokens", "2", env=env)
    assert bench.returncode == 0, bench.stderr
    # --port beats APPLIANCE_PORT, the same for every command.
    wrong = {**env, "APPLIANCE_PORT": str(free_port())}
    port = ("--port", str(daemon.port))
    assert run_cli_env("ps", *port, env=wrong).returncode == 0
    chat = run_cli_env("chat", "tiny", "--max-tokens", "2", *port, env=wrong, stdin="hi\n")
    assert chat.returncode == 0, chat.stderr
    one_line_error(run_cli_env("ps", env=wrong))
    one_line_error(run_cli_env("chat", "tiny", env=wrong, stdin="hi\n"))


# -- 6. /openapi.json ---------------------------------------------------------------------


def app_routes() -> set[tuple[str, str]]:
    """Every (path, method) the app serves, from the route tables."""
    found = {("/health", "get"), ("/metrics", "get"), ("/openapi.json", "get")}
    tables = (
        ("/v1", openai_routes.routes),
        ("/v1", responses_routes.routes),
        ("/v1", anthropic_routes.routes),
        ("/admin", admin_routes.routes),
        ("/admin", telemetry_routes.routes),
        ("", llama_native_routes.routes),
        ("", ollama_routes.routes),
        ("", ollama_model_routes.routes),
    )
    for prefix, routes in tables:
        for route in routes:
            path = prefix + route.path.replace(":path}", "}")
            for method in route.methods or ():
                if method != "HEAD":
                    found.add((path, method.lower()))
    return found


def test_openapi_describes_every_route(bound: BoundDaemon) -> None:
    r = httpx.get(bound.url + "/openapi.json", timeout=30)
    assert r.status_code == 200
    doc = r.json()
    assert doc["openapi"].startswith("3.1")
    described = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    assert app_routes() <= described, app_routes() - described
    chat = doc["components"]["schemas"]["ChatCompletionRequest"]["properties"]
    assert {"tools", "tool_choice", "messages", "response_format", "stream"} <= set(chat)
    for name in ("CompletionRequest", "EmbeddingRequest", "ModelList", "ErrorResponse"):
        assert name in doc["components"]["schemas"]
    assert "OllamaError" in doc["components"]["schemas"]  # Ollama's /api routes' errors
    refs = {m for m in _refs(doc)}
    assert refs <= set(doc["components"]["schemas"]), refs - set(doc["components"]["schemas"])
    try:
        from openapi_spec_validator import validate  # optional: not a dependency
    except ImportError:
        return
    validate(doc)


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value.rsplit("/", 1)[-1]
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


# -- the settings behind these ------------------------------------------------------------


def test_hardening_settings_parse_from_file_and_environment(tmp_path: Path) -> None:
    from appliance.settings import SettingsError, load_settings

    paths = Paths.under(tmp_path)
    paths.config_dir.mkdir(parents=True)
    paths.settings_file.write_text(
        'allowed_hosts = ["Box.LAN.", "[fe80::1]:8750"]\n'
        'import_dirs = ["~/models", "/srv/models"]\n'
        'drain_timeout = "30s"\n'
    )
    s = load_settings(paths, env={})
    assert s.allowed_hosts == ("box.lan", "fe80::1")
    assert s.import_dirs == (Path("~/models").expanduser(), Path("/srv/models"))
    assert s.drain_timeout_s == 30.0
    env = {
        "APPLIANCE_ALLOWED_HOSTS": "a.example, b.example:80,",
        "APPLIANCE_IMPORT_DIRS": "/data/in,/data/more",
        "APPLIANCE_DRAIN_TIMEOUT": "1",
    }
    s = load_settings(paths, env=env)
    assert s.allowed_hosts == ("a.example", "b.example")
    assert s.import_dirs == (Path("/data/in"), Path("/data/more"))
    assert s.drain_timeout_s == 1.0
    for key, value in [
        ("APPLIANCE_ALLOWED_HOSTS", "evil/path"),
        ("APPLIANCE_IMPORT_DIRS", "relative/dir"),
        ("APPLIANCE_DRAIN_TIMEOUT", "forever"),
    ]:
        with pytest.raises(SettingsError, match=key):
            load_settings(paths, env={key: value})
    paths.settings_file.unlink()
    defaults = load_settings(paths, env={})
    assert defaults.allowed_hosts == () and defaults.import_dirs is None
    assert defaults.drain_timeout_s == 80.0
