"""The `appliance` command against a running daemon and, for store commands, without one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.bench import BenchConfig, run_bench_sync
from tests.daemon import Daemon, free_port


def run_cli(
    *args: str, home: Path | None = None, stdin: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPLIANCE_")}
    if home is not None:
        env["APPLIANCE_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "appliance.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        input=stdin,
        timeout=timeout,
        check=False,
    )


def test_ls_load_ps_unload(daemon: Daemon) -> None:
    r = run_cli("ls", "--url", daemon.url)
    assert r.returncode == 0, r.stderr
    assert "tiny" in r.stdout and "tiny-alias" in r.stdout
    r = run_cli("load", "think", "--url", daemon.url)
    assert r.returncode == 0, r.stderr
    assert "think loaded" in r.stdout
    r = run_cli("ps", "--url", daemon.url)
    header, *rows = r.stdout.splitlines()
    assert header.split()[-6:] == ["ACTIVE", "SLOTS", "QUEUED", "FLASH", "ATTN", "UNTIL"]
    [row] = [line.split() for line in rows if line.startswith("think ")]
    model = daemon.model("think")
    flash = model["engine"]["flash_attn"]  # what "auto" chose here: on | off
    assert flash in ("on", "off")
    assert row[1:3] == ["hot", "ready"] and row[-6:-2] == ["0", f"0/{model['slots']}", "0", flash]
    # Until it goes warm, idle (Ollama's UNTIL): the load is a use, so the daemon's
    # keep_alive of 5m counts from it.
    assert row[-2:] in (["4m", "left"], ["5m", "left"]), row
    assert 0 < model["expires_in_s"] <= model["keep_alive_s"]
    r = run_cli("unload", "think", "--url", daemon.url)
    assert r.returncode == 0 and "unloaded" in r.stdout
    # Ollama's names, as its users type them: list, show, stop.
    r = run_cli("list", "--url", daemon.url)
    assert r.returncode == 0 and "tiny-alias" in r.stdout, r.stderr
    r = run_cli("show", "tiny", "--url", daemon.url)
    assert r.returncode == 0 and "tiny" in r.stdout, r.stderr
    run_cli("load", "think", "--url", daemon.url)
    r = run_cli("stop", "think", "--url", daemon.url)
    assert r.returncode == 0 and "unloaded" in r.stdout, r.stderr


def test_unknown_model_is_one_line_error(daemon: Daemon) -> None:
    r = run_cli("load", "nope", "--url", daemon.url)
    assert r.returncode == 1
    assert r.stderr.strip().count("\n") == 0
    assert r.stderr.startswith("appliance: error:") and "nope" in r.stderr
    assert r.stderr.rstrip().endswith("See `appliance ls`."), r.stderr  # not GET /v1/models
    assert "/v1/models" not in r.stderr


def test_daemon_unreachable_is_one_line_error(tmp_path: Path) -> None:
    r = run_cli("ps", "--url", f"http://127.0.0.1:{free_port()}", home=tmp_path)
    assert r.returncode == 1
    assert "does not answer" in r.stderr and r.stderr.strip().count("\n") == 0
    r = run_cli("chat", "tiny", "--port", str(free_port()), home=tmp_path, stdin="hi\n")
    assert r.returncode == 1 and r.stderr.strip().count("\n") == 0, r.stderr
    assert "cannot reach" in r.stderr and "start the daemon with `appliance serve`" in r.stderr


def test_inspect_a_file(models_dir: Path, tmp_path: Path) -> None:
    r = run_cli("inspect", str(models_dir / "tiny.gguf"), "--context", "1024", home=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "llama" in r.stdout and "F32" in r.stdout and "memory at 1024 ctx x 4" in r.stdout
    # The tiny model's KV is small: the automatic four slots, each a whole context.
    assert "4 slot(s) of 1024 tokens, queue 64, flash attention auto" in r.stdout
    # Twice its slots' KV: less than prompt_cache_ram's 512 MiB for so small a model.
    [states] = [line for line in r.stdout.splitlines() if line.startswith("prompt states")]
    assert "of host RAM while loaded" in states and "512 MiB" not in states, states


def test_inspect_through_the_daemon_uses_the_models_context(daemon: Daemon) -> None:
    # models.toml gives `think` 512 tokens: without --context, inspect shows that (as
    # `ps` and the loaded model do), not the default context.
    r = run_cli("inspect", "think", "--url", daemon.url)
    assert r.returncode == 0, r.stderr
    assert "memory at 512 ctx x" in r.stdout and "of 512 tokens" in r.stdout
    r = run_cli("inspect", "think", "--context", "1024", "--url", daemon.url)
    assert "memory at 1024 ctx x" in r.stdout


def test_inspect_refuses_broken_file(models_dir: Path, tmp_path: Path) -> None:
    r = run_cli("inspect", str(models_dir / "broken.gguf"), home=tmp_path)
    assert r.returncode == 1 and "GGUF" in r.stderr


def test_import_ls_rm_without_daemon(models_dir: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    port = str(free_port())  # nothing listens there: the local store is used
    env_args = ("--url", f"http://127.0.0.1:{port}")
    r = run_cli("import", str(models_dir / "tiny.gguf"), "--name", "mine", *env_args, home=home)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("mine")
    r = run_cli("ls", *env_args, home=home)
    assert "mine" in r.stdout and "cold" in r.stdout
    # Names match ignoring case: a variant of a stored or a catalog model's name is refused.
    tiny = str(models_dir / "tiny.gguf")
    r = run_cli("import", tiny, "--name", "MINE", *env_args, home=home)
    assert r.returncode == 1 and "'mine' is already in the store" in r.stderr, r.stderr
    r = run_cli("import", tiny, "--name", "Qwen2.5-0.5B-Instruct", *env_args, home=home)
    assert r.returncode == 1 and "'qwen2.5-0.5b-instruct'" in r.stderr, r.stderr
    r = run_cli("rm", "mine", *env_args, home=home)
    assert r.returncode == 0
    assert "mine" not in run_cli("ls", *env_args, home=home).stdout
    r = run_cli("import", str(models_dir / "broken.gguf"), *env_args, home=home)
    assert r.returncode == 1 and "GGUF" in r.stderr


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root")
def test_root_does_not_write_into_a_store_another_user_owns(
    models_dir: Path, tmp_path: Path
) -> None:
    # The service's store, as the installer leaves it: its user's, and the service stopped.
    home = tmp_path / "home"
    (home / "data" / "store").mkdir(parents=True)
    for path in (home, home / "data", home / "data" / "store"):
        os.chown(path, 65534, 65534)
    before = sorted(home.rglob("*"))
    env_args = ("--url", f"http://127.0.0.1:{free_port()}")
    for args in (
        ("import", str(models_dir / "tiny.gguf"), "--name", "mine"),
        ("pull", "hf://org/repo/model.gguf"),
        ("rm", "mine"),
    ):
        r = run_cli(*args, *env_args, home=home)
        assert r.returncode == 1, r.stderr
        assert f"the store {home / 'data' / 'store'} belongs to" in r.stderr
        assert f"sudo -u {owner_name(65534)} appliance {args[0]}" in r.stderr
    assert sorted(home.rglob("*")) == before  # nothing written as root, not even a folder
    r = run_cli("ls", *env_args, home=home)  # reading is fine
    assert r.returncode == 0, r.stderr


def owner_name(uid: int) -> str:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def test_import_through_daemon_then_serve_it(daemon: Daemon, models_dir: Path) -> None:
    r = run_cli("import", str(models_dir / "tiny.gguf"), "--name", "imported", "--url", daemon.url)
    assert r.returncode == 0, r.stderr
    r2 = daemon.post(
        "/v1/completions",
        json={"model": "imported", "prompt": "x", "max_tokens": 3, "ignore_eos": True},
    )
    assert r2.status_code == 200 and r2.json()["usage"]["completion_tokens"] == 3


@pytest.mark.parametrize("command", ["chat", "run"])  # run: as Ollama's users type it
def test_chat_repl_against_daemon(daemon: Daemon, command: str) -> None:
    r = run_cli(
        command,
        "tiny",
        "--base-url",
        daemon.v1,
        "--max-tokens",
        "4",
        stdin="hello\nsecond turn\n/exit\n",
    )
    assert r.returncode == 0, r.stderr
    assert "error" not in r.stdout.lower()


def test_doctor_runs_offline_self_test(tmp_path: Path) -> None:
    port = free_port()
    r = run_cli("doctor", "--port", str(port), home=tmp_path, timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "backend cpu" in r.stdout
    assert "self-test" in r.stdout and ": ok" in r.stdout
    assert line_of(r.stdout, "catalog").endswith(" model(s), ok")  # the bundled one
    assert line_of(r.stdout, "daemon").startswith(f"none answers at http://127.0.0.1:{port} ")


def line_of(out: str, label: str) -> str:
    """What doctor printed after `label`."""
    [line] = [line for line in out.splitlines() if line.startswith(f"{label} ")]
    return line[len(label) :].strip()


def test_doctor_fails_on_a_broken_catalog_listing_every_error(tmp_path: Path) -> None:
    """doctor said all was well (exit 0) with a models.toml the daemon refused to start on."""
    (tmp_path / "config").mkdir()
    catalog = tmp_path / "config" / "models.toml"
    catalog.write_text('[models.m]\nsource = "/m.gguf"\nkeep_alvie = "5m"\npin = "hott"\n')
    r = run_cli("doctor", "--port", str(free_port()), home=tmp_path, timeout=180)
    assert r.returncode == 1, r.stdout + r.stderr
    assert line_of(r.stdout, "catalog").startswith(f"{catalog}: FAILED, 2 error(s)")
    assert "  models.m.keep_alvie: unknown key (did you mean 'keep_alive'?)" in r.stdout
    assert "  models.m.pin: expected one of hot, warm, got 'hott'" in r.stdout
    assert ": ok" in line_of(r.stdout, "self-test")  # the other checks still ran

    # serve and ls (without a daemon) refuse it the same way, with every error at once;
    # serve with 78 (EX_CONFIG), which the systemd units do not restart on
    for command, status in (("serve", 78), ("ls", 1)):
        r = run_cli(command, "--port", str(free_port()), home=tmp_path)
        assert r.returncode == status, r.stdout + r.stderr
        assert r.stderr.splitlines() == [
            f"appliance: error: {catalog}: 2 errors",
            "  models.m.keep_alvie: unknown key (did you mean 'keep_alive'?)",
            "  models.m.pin: expected one of hot, warm, got 'hott'",
        ]


def test_doctor_reports_the_daemon_s_health(daemon: Daemon, tmp_path: Path) -> None:
    r = run_cli("doctor", "--port", str(daemon.port), home=tmp_path, timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    line = line_of(r.stdout, "daemon")
    assert line.startswith(f"answers at {daemon.url}, version "), line
    status = daemon.get("/health").json()["status"]
    assert f"/health {status}" in line


def test_bench_runs_every_request_to_max_tokens(daemon: Daemon, tmp_path: Path) -> None:
    report = run_bench_sync(
        BenchConfig(
            base_url=daemon.v1,
            model="tiny",
            concurrency=(1, 2),
            max_tokens=16,
            requests_per_level=3,
        )
    )
    for level in report.levels:
        assert level.errors == 0
        assert level.short_requests == 0
        assert level.aggregate_tok_s > 0
    out = tmp_path / "bench.json"
    r = run_cli(
        "bench",
        "--base-url",
        daemon.v1,
        "--model",
        "tiny",
        "--concurrency",
        "1",
        "--max-tokens",
        "8",
        "--requests",
        "2",
        "--json",
        str(out),
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(out.read_text())["levels"][0]["concurrency"] == 1


def test_bench_finds_the_daemon_and_its_key_as_chat_does(models_dir: Path, tmp_path: Path) -> None:
    """`appliance bench` with no --base-url or --api-key reads the daemon's port and first
    API key from its settings (as `sudo appliance bench` on the service's box does)."""
    from tests.conftest import write_catalog
    from tests.daemon import start_daemon

    home, port = tmp_path / "home", free_port()
    (home / "config").mkdir(parents=True)
    (home / "config" / "settings.toml").write_text(f'port = {port}\napi_keys = ["k-bench"]\n')
    d = start_daemon(home, write_catalog(tmp_path / "catalog.toml", models_dir), port=port)
    try:
        out = tmp_path / "bench.json"
        r = run_cli(
            "bench",
            "--model",
            "tiny",
            "--requests",
            "2",
            "--max-tokens",
            "2",
            "--json",
            str(out),
            home=home,
        )
        assert r.returncode == 0, r.stdout + r.stderr
        [level] = json.loads(out.read_text())["levels"]
        assert (level["errors"], level["requests"]) == (0, 2), level
    finally:
        d.stop()


def test_chat_without_model_uses_catalog_default(
    daemon: Daemon, models_dir: Path, tmp_path: Path
) -> None:
    from tests.conftest import write_catalog

    (tmp_path / "config").mkdir()
    write_catalog(tmp_path / "config" / "models.toml", models_dir)
    r = run_cli(
        "chat", "--base-url", daemon.v1, "--max-tokens", "3", home=tmp_path, stdin="hello\n/exit\n"
    )
    assert r.returncode == 0, r.stderr
    assert "error" not in r.stdout.lower() and r.stdout.strip()


def test_a_pull_waiting_for_another_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    """A pull waiting on another process's pull of the same file showed 0.0% and 0 MiB/s."""
    from appliance.cli import ProgressBar
    from appliance.store.store import WAITING_MESSAGE

    bar = ProgressBar("tiny")
    bar.update("downloading", 0, 1000, WAITING_MESSAGE)
    err = capsys.readouterr().err
    assert "tiny  waiting for another pull of the same file" in err and "0.0%" not in err
    bar.last = 0.0
    bar.update("downloading", 500, 1000)
    assert " 50.0%" in capsys.readouterr().err


def test_ps_shows_the_pulls_in_flight() -> None:
    from appliance.cli import pulls_table

    now = 1_000_000.0
    pull = {
        "model": "qwen",
        "status": "downloading",
        "downloaded": 512 << 20,
        "total": 2 << 30,
        "rate_bytes_per_s": 8 << 20,
        "eta_s": 192.0,
        "started": now - 150,
    }
    resolving = {
        "model": "hf://org/r/x.gguf",
        "status": "resolving",
        "downloaded": 0,
        "total": None,
        "rate_bytes_per_s": None,
        "eta_s": None,
        "started": now - 2,
    }
    header, row, other = pulls_table([pull, resolving], now).splitlines()
    assert header.split() == ["PULLING", "STATUS", "PROGRESS", "SIZE", "RATE", "ETA", "STARTED"]
    assert row.split() == [
        "qwen", "downloading", "25.0%", "512", "MiB", "/", "2.00", "GiB", "8", "MiB/s", "3m",
        "2m", "ago",
    ]  # fmt: skip
    assert other.split() == [
        "hf://org/r/x.gguf",
        "resolving",
        "-",
        "0",
        "MiB",
        "-",
        "-",
        "2s",
        "ago",
    ]


def test_a_pull_stopped_elsewhere_ends_its_progress_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A pull's last progress event says "cancelled" when another client stopped it: the
    bar's line ends there, so the error that follows starts on a line of its own."""
    from appliance.cli import ProgressBar

    ProgressBar("tiny").update("cancelled", 0, 1000)
    assert capsys.readouterr().err.endswith("tiny  cancelled".ljust(79) + "\n")
