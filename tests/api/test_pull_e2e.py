"""Pulls through the daemon from a stand-in hub: JIT on first request, admin SSE, CLI."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from appliance.tiny_model import TinyModelSpec, write_tiny_gguf
from tests.daemon import Daemon, start_daemon
from tests.hubstub import HubStub
from tests.test_cli import run_cli

REPO = "org/tiny-GGUF"
COMMIT = "a" * 40
ONNX_REPO = "org/tiny-onnx"
ONNX_FOLDER = "cpu-int4"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "onnx"


@pytest.fixture(scope="module")
def hub(models_dir: Path) -> Iterator[HubStub]:
    with HubStub() as stub:
        data = (models_dir / "tiny.gguf").read_bytes()
        stub.add_file(REPO, "tiny-q4_k_m.gguf", data, revision_sha=COMMIT)
        other = write_tiny_gguf(models_dir / "other.gguf", TinyModelSpec(seed=7)).read_bytes()
        stub.add_file(REPO, "other-f32.gguf", other, revision_sha=COMMIT)
        src = FIXTURES / "tiny-chat-int4"
        for p in sorted(src.iterdir()):  # weights in LFS, the JSON and template in git
            lfs = p.name.startswith("model.onnx")
            stub.add_file(ONNX_REPO, f"{ONNX_FOLDER}/{p.name}", p.read_bytes(), lfs=lfs)
        stub.add_file(ONNX_REPO, "cpu-fp32/model.onnx", b"another variant: never fetched")
        yield stub


@pytest.fixture(scope="module")
def hub_daemon(tmp_path_factory: pytest.TempPathFactory, hub: HubStub) -> Iterator[Daemon]:
    home = tmp_path_factory.mktemp("pullhome")
    catalog = home / "models.toml"
    catalog.write_text(f'''
[models.remote-tiny]
source = "hf://{REPO}/*q4_k_m.gguf"
revision = "{COMMIT}"
context = 256

[models.remote-onnx]
source = "hf://{ONNX_REPO}/{ONNX_FOLDER}"
revision = "{hub.file(ONNX_REPO, ONNX_FOLDER + "/genai_config.json").revision_sha}"
context = 256
''')
    d = start_daemon(home, catalog, env={"HF_ENDPOINT": hub.endpoint})
    yield d
    d.stop()


def test_catalog_model_is_remote_then_pulled_on_first_request(hub_daemon: Daemon) -> None:
    assert hub_daemon.model("remote-tiny")["tier"] == "remote"
    client = openai.OpenAI(base_url=hub_daemon.v1, api_key="x", max_retries=0)
    r = client.chat.completions.create(
        model="remote-tiny", max_tokens=2, messages=[{"role": "user", "content": "hi"}]
    )
    assert r.choices
    assert hub_daemon.model("remote-tiny")["tier"] == "hot"
    stored = hub_daemon.get("/admin/store").json()["models"]
    assert [m["revision"] for m in stored if m["name"] == "remote-tiny"] == [COMMIT]


def test_onnx_folder_is_pulled_file_by_file_on_first_request(hub_daemon: Daemon) -> None:
    assert hub_daemon.model("remote-onnx")["tier"] == "remote"
    client = openai.OpenAI(base_url=hub_daemon.v1, api_key="x", max_retries=0)
    r = client.chat.completions.create(
        model="remote-onnx", max_tokens=4, messages=[{"role": "user", "content": "hi"}]
    )
    assert r.usage is not None and r.usage.completion_tokens >= 1
    model = hub_daemon.model("remote-onnx")
    assert model["tier"] == "hot" and model["format"] == "onnx"
    stored = {m["name"]: m for m in hub_daemon.get("/admin/store").json()["models"]}
    src = sorted((FIXTURES / "tiny-chat-int4").iterdir())
    assert stored["remote-onnx"]["size"] == sum(p.stat().st_size for p in src)
    assert stored["remote-onnx"]["format"] == "onnx"
    assert stored["remote-onnx"]["files"] == len(src)  # the other variant stayed on the hub


def test_admin_pull_streams_progress_and_success(hub_daemon: Daemon) -> None:
    body = {"model": f"hf://{REPO}/other-f32.gguf@{COMMIT}", "name": "other"}
    events = []
    with httpx.stream("POST", hub_daemon.url + "/admin/pull", json=body, timeout=60) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
    assert events[-1]["status"] == "success" and events[-1]["model"] == "other"
    statuses = [e.get("status") for e in events[:-1]]
    assert "downloading" in statuses, events


def test_cli_pull_through_daemon_and_unknown_repo(hub_daemon: Daemon, hub: HubStub) -> None:
    r = run_cli(
        "pull", f"hf://{REPO}/other-f32.gguf@{COMMIT}", "--name", "again", "--url", hub_daemon.url
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("again") and COMMIT in r.stdout
    r = run_cli("pull", "hf://org/missing/x.gguf", "--url", hub_daemon.url)
    last = r.stderr.strip().splitlines()[-1]
    assert r.returncode == 1 and last.startswith("appliance: error:") and "not found" in last


def test_offline_pull_says_so_and_names_import(tmp_path: Path) -> None:
    catalog = tmp_path / "models.toml"
    catalog.write_text(f'[models.far]\nsource = "hf://{REPO}/x.gguf"\nrevision = "{COMMIT}"\n')
    d = start_daemon(tmp_path / "home", catalog, env={"HF_ENDPOINT": "http://127.0.0.1:9"})
    try:
        client = openai.OpenAI(base_url=d.v1, api_key="x", max_retries=0)
        with pytest.raises(openai.APIStatusError) as info:
            client.chat.completions.create(
                model="far", max_tokens=2, messages=[{"role": "user", "content": "hi"}]
            )
        assert info.value.status_code == 503
        assert "appliance import" in info.value.message
        # Retrying cannot help: the clients are told so, and the default client (which
        # retries 5xx twice) gives up at once instead of after about a minute.
        assert info.value.response.headers.get("x-should-retry") == "false"
        assert "retry-after" not in info.value.response.headers
        started = time.monotonic()
        with pytest.raises(openai.APIStatusError):
            openai.OpenAI(base_url=d.v1, api_key="x").chat.completions.create(
                model="far", max_tokens=2, messages=[{"role": "user", "content": "hi"}]
            )
        assert time.monotonic() - started < 10
        health = d.get("/health").json()
        assert health["status"] == "ready" and health["models"]["far"] == "remote"
        assert "pull failed" in d.model("far")["last_error"]
    finally:
        d.stop()


def test_a_daemon_that_dies_mid_pull_leaves_the_cli_to_finish_it_and_say_so(
    tmp_path: Path, models_dir: Path
) -> None:
    """`appliance pull` through a daemon killed during the download goes on in the CLI's
    own process, from where the download stopped, and now says so (it went on silently)."""
    import os
    import signal
    import subprocess
    import sys

    data = (models_dir / "tiny.gguf").read_bytes()
    with HubStub() as stub:
        slow = stub.add_file("org/slow-GGUF", "slow-q4_k_m.gguf", data, revision_sha=COMMIT)
        slow.delay = 0.05  # about 2 s for the whole file, in 16 KiB chunks
        home = tmp_path / "home"
        d = start_daemon(home, tmp_path / "none.toml", env={"HF_ENDPOINT": stub.endpoint})
        env = {k: v for k, v in os.environ.items() if not k.startswith("APPLIANCE_")}
        env.update({"APPLIANCE_HOME": str(home), "HF_ENDPOINT": stub.endpoint})
        ref = f"hf://org/slow-GGUF/slow-q4_k_m.gguf@{COMMIT}"
        cmd = [sys.executable, "-m", "appliance.cli", "pull", ref, "--name", "slow"]
        cli = subprocess.Popen(
            [*cmd, "--url", d.url], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        try:
            deadline = time.monotonic() + 30
            while slow.gets == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.3)  # some of the body is on its way
            d.proc.send_signal(signal.SIGKILL)
            out, err = cli.communicate(timeout=120)
        finally:
            if cli.poll() is None:
                cli.kill()
            d.stop()
    assert cli.returncode == 0, err.decode()
    assert "the daemon stopped answering; the pull goes on here" in err.decode()
    assert out.decode().startswith("slow  sha256 ")
    assert any(r and r.startswith("bytes=") for r in slow.ranges), slow.ranges  # resumed


def test_a_pull_can_be_cancelled_and_resumes_where_it_stopped(
    tmp_path: Path, models_dir: Path
) -> None:
    """There was no way to stop a pull (Ollama's ctrl+c does): the route stops it at its
    next chunk, its waiters get a 409 saying so, the partial file stays, and the next pull
    resumes it with a Range request; `appliance pull --cancel` says the same."""
    data = (models_dir / "tiny.gguf").read_bytes()
    with HubStub() as stub:
        slow = stub.add_file("org/slow-GGUF", "slow-q4_k_m.gguf", data, revision_sha=COMMIT)
        slow.delay = 0.05  # about 2 s for the whole file, in 16 KiB chunks
        d = start_daemon(
            tmp_path / "home", tmp_path / "none.toml", env={"HF_ENDPOINT": stub.endpoint}
        )
        try:
            r = httpx.delete(d.url + "/admin/pull/slow", timeout=30)
            assert r.status_code == 404 and r.json()["error"]["code"] == "pull_not_found"
            body = {"model": f"hf://org/slow-GGUF/slow-q4_k_m.gguf@{COMMIT}", "name": "slow"}
            events: list[dict[str, object]] = []
            with httpx.stream("POST", d.url + "/admin/pull", json=body, timeout=60) as r:
                for line in r.iter_lines():
                    if not line.startswith("data: "):
                        continue
                    events.append(json.loads(line[6:]))
                    if events[-1].get("status") == "downloading" and len(events) == 3:
                        c = httpx.delete(d.url + "/admin/pull/slow", timeout=30)
                        assert c.json() == {"cancelled": "slow"}, c.text
            error = events[-1]["error"]
            assert isinstance(error, dict) and error["code"] == "pull_cancelled", events[-1]
            assert "pull again to resume" in str(error["message"])
            assert d.get("/admin/models/slow").status_code == 404  # not in the store
            partials = list((tmp_path / "home").rglob("*.partial"))
            assert len(partials) == 1 and 0 < partials[0].stat().st_size < len(data)
            kinds = [e["kind"] for e in d.get("/admin/events").json()["events"]]
            assert "pull_cancelled" in kinds
            r = run_cli("pull", "slow", "--cancel", "--url", d.url)
            assert r.returncode == 1 and "no pull of 'slow' is in flight" in r.stderr
            # ctrl+c in `appliance pull` stops the daemon's download too.
            gets = slow.gets
            cli = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "appliance.cli",
                    "pull",
                    str(body["model"]),
                    "--name",
                    "slow",
                    "--url",
                    d.url,
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                # A shell's background job (CI's) ignores SIGINT, and a Python started so
                # never turns it into KeyboardInterrupt: give the CLI a terminal's default.
                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
            )
            deadline = time.monotonic() + 30
            while slow.gets == gets and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.3)
            cli.send_signal(signal.SIGINT)
            _, err = cli.communicate(timeout=30)
            assert cli.returncode == 130 and "cancelled" in err.decode(), err.decode()
            deadline = time.monotonic() + 10
            while kinds.count("pull_cancelled") < 2 and time.monotonic() < deadline:
                time.sleep(0.1)
                kinds = [e["kind"] for e in d.get("/admin/events").json()["events"]]
            assert kinds.count("pull_cancelled") == 2
            r = run_cli("pull", str(body["model"]), "--name", "slow", "--url", d.url)
            assert r.returncode == 0, r.stderr
            assert slow.ranges[-1] is not None and slow.ranges[-1].startswith("bytes=")
        finally:
            d.stop()


def test_pulls_in_flight_are_listed_by_the_api_and_appliance_ps(
    tmp_path: Path, models_dir: Path
) -> None:
    """There was no way to see the pulls in flight (one a request or another client
    started): GET /admin/pulls lists each with its progress, and `appliance ps` shows them."""
    import threading

    data = (models_dir / "tiny.gguf").read_bytes()
    with HubStub() as stub:
        slow = stub.add_file("org/slow-GGUF", "slow-q4_k_m.gguf", data, revision_sha=COMMIT)
        slow.delay = 0.1  # about 4 s for the whole file, in 16 KiB chunks
        d = start_daemon(
            tmp_path / "home", tmp_path / "none.toml", env={"HF_ENDPOINT": stub.endpoint}
        )
        try:
            assert d.get("/admin/pulls").json() == {"pulls": []}
            ref = f"hf://org/slow-GGUF/slow-q4_k_m.gguf@{COMMIT}"
            body = {"model": ref, "name": "slow"}

            def pull() -> None:
                with httpx.stream("POST", d.url + "/admin/pull", json=body, timeout=60) as r:
                    for _ in r.iter_lines():
                        pass

            caller = threading.Thread(target=pull, daemon=True)
            caller.start()
            deadline = time.monotonic() + 30
            pulls: list[dict[str, object]] = []
            while time.monotonic() < deadline:
                pulls = d.get("/admin/pulls").json()["pulls"]
                if pulls and pulls[0]["rate_bytes_per_s"]:
                    break
                time.sleep(0.1)
            [entry] = pulls
            assert entry["model"] == "slow" and entry["ref"] == ref
            assert entry["status"] == "downloading" and entry["total"] == len(data)
            assert isinstance(entry["downloaded"], int) and entry["downloaded"] > 0
            r = run_cli("ps", "--url", d.url)
            assert r.returncode == 0, r.stderr
            lines = r.stdout.splitlines()
            at = next(i for i, line in enumerate(lines) if line.startswith("PULLING"))
            assert lines[at].split() == [
                "PULLING", "STATUS", "PROGRESS", "SIZE", "RATE", "ETA", "STARTED"
            ]  # fmt: skip
            row = lines[at + 1].split()
            assert row[:2] == ["slow", "downloading"] and row[2].endswith("%"), lines
            assert row[-1] == "ago" and row[-2].endswith("s"), lines  # "3s ago"
            assert httpx.delete(d.url + "/admin/pull/slow", timeout=30).status_code == 200
            caller.join(30)
            assert d.get("/admin/pulls").json() == {"pulls": []}
            r = run_cli("ps", "--url", d.url)
            assert "PULLING" not in r.stdout
        finally:
            d.stop()


def test_a_pull_broken_off_by_a_restart_is_resumed_by_the_next_start(
    tmp_path: Path, models_dir: Path
) -> None:
    """A restart (systemctl restart, an upgrade) left a pull partial until someone pulled
    again, and held the stop until the download ended: the daemon stops at once, and the
    next start resumes the pull in the background, from its partial file, and says why."""
    data = (models_dir / "tiny.gguf").read_bytes()
    with HubStub() as stub:
        slow = stub.add_file("org/slow-GGUF", "slow-q4_k_m.gguf", data, revision_sha=COMMIT)
        slow.delay = 0.5  # about 18 s for the whole file, in 16 KiB chunks
        home = tmp_path / "home"
        env = {"HF_ENDPOINT": stub.endpoint}
        d = start_daemon(home, tmp_path / "none.toml", env=env)
        try:
            body = {"model": f"hf://org/slow-GGUF/slow-q4_k_m.gguf@{COMMIT}", "name": "slow"}
            with httpx.stream("POST", d.url + "/admin/pull", json=body, timeout=60) as r:
                for line in r.iter_lines():  # the pull goes on after its caller leaves
                    if line.startswith("data: ") and json.loads(line[6:]).get("downloaded"):
                        break
            started = time.monotonic()
            d.proc.send_signal(signal.SIGTERM)
            assert d.proc.wait(30) == 0
            assert time.monotonic() - started < 10, "the stop waited for the download"
        finally:
            d.stop()
        assert slow.gets == 1
        partials = list(home.rglob("*.partial"))
        assert len(partials) == 1 and 0 < partials[0].stat().st_size < len(data)
        slow.delay = 0.05
        d = start_daemon(home, tmp_path / "none.toml", env=env)
        try:
            deadline = time.monotonic() + 60
            while d.get("/admin/models/slow").status_code != 200:
                assert time.monotonic() < deadline, d.log()
                time.sleep(0.2)
            events = d.get("/admin/events").json()["events"]
            said = [e["message"] for e in events if e["model"] == "slow"]
            assert said[0] == "resuming the pull of slow, interrupted by a restart", said
            assert slow.ranges[-1] is not None and slow.ranges[-1].startswith("bytes=")
            assert d.get("/admin/store").json()["models"][0]["size"] == len(data)
            assert not list(home.rglob("pulls.json"))  # nothing left to resume
        finally:
            d.stop()
