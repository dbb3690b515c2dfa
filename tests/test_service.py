"""Running as a systemd service: the notify protocol (a real AF_UNIX datagram socket as
$NOTIFY_SOCKET, path and abstract), the daemon's READY/STATUS/WATCHDOG/STOPPING, and the
unit files as systemd-analyze reads them."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.sd_notify import Notifier, watchdog_interval
from appliance.settings import Settings
from tests.conftest import write_catalog
from tests.daemon import start_daemon, wait_for

SYSTEMD = Path(__file__).resolve().parents[1] / "systemd"
UNITS = ("appliance.service", "appliance-user.service")


class Listener:
    """A datagram socket standing in for systemd's, collecting what arrives."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.settimeout(0.1)
        self.messages: list[str] = []
        self._stop = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop:
            try:
                self.messages.append(self.sock.recv(65536).decode())
            except TimeoutError:
                continue
            except OSError:
                return

    def lines(self) -> list[str]:
        return [line for m in list(self.messages) for line in m.split("\n")]

    def close(self) -> None:
        self._stop = True
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def abstract_listener() -> Iterator[tuple[str, Listener]]:
    name = f"appliance-test-{uuid.uuid4().hex[:12]}"
    listener = Listener("\0" + name)
    yield "@" + name, listener
    listener.close()


def test_notifier_sends_to_a_path_socket(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    if len(str(path)) > 100:  # AF_UNIX paths are short
        path = Path("/tmp") / f"appliance-notify-{uuid.uuid4().hex[:8]}"
    listener = Listener(str(path))
    try:
        env = {"NOTIFY_SOCKET": str(path)}
        notifier = Notifier(env)
        notifier.ready("serving 2 models, 0 hot")
        notifier.status("serving 2 models, 0 hot")  # unchanged: not sent again
        notifier.status("serving 2 models, 1 hot")
        wait_for(lambda: len(listener.messages) >= 2, timeout=5)
        assert listener.messages[0].startswith("READY=1\nSTATUS=serving 2 models, 0 hot\n")
        assert listener.messages[1] == "STATUS=serving 2 models, 1 hot"
        notifier.close()
    finally:
        listener.close()
        path.unlink(missing_ok=True)


def test_notifier_takes_its_variables_out_of_the_environment(
    abstract_listener: tuple[str, Listener],
) -> None:
    address, listener = abstract_listener
    environ = {"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "100000", "KEEP": "1"}
    notifier = Notifier.from_environ(environ)
    assert environ == {"KEEP": "1"}  # engine workers (children) never see them
    assert notifier.watchdog_s == pytest.approx(0.05)

    async def ping_a_while() -> None:
        task = asyncio.ensure_future(notifier.watchdog())
        await asyncio.sleep(0.3)
        task.cancel()

    asyncio.run(ping_a_while())
    wait_for(lambda: listener.lines().count("WATCHDOG=1") >= 3, timeout=5)


def test_no_socket_no_messages_and_watchdog_rules() -> None:
    assert not Notifier({}).enabled and not Notifier({}).send("READY=1")
    assert not Notifier({"NOTIFY_SOCKET": "vsock:2:123"}).enabled
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, pid=2) is None
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "2"}, pid=2) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "junk"}) is None
    assert watchdog_interval({}) is None


def test_daemon_notifies_ready_status_watchdog_and_stopping(
    abstract_listener: tuple[str, Listener], tmp_path: Path, models_dir: Path
) -> None:
    address, listener = abstract_listener
    catalog = write_catalog(tmp_path / "catalog.toml", models_dir)
    env = {"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "200000"}  # a ping every 0.1 s
    d = start_daemon(tmp_path / "home", catalog, env=env)
    try:
        wait_for(lambda: "READY=1" in listener.lines(), timeout=10)
        ready = next(m for m in listener.messages if m.startswith("READY=1"))
        assert f"MAINPID={d.proc.pid}" in ready
        assert re.search(r"^STATUS=serving \d+ models, 0 hot$", ready, re.MULTILINE), ready
        wait_for(lambda: listener.lines().count("WATCHDOG=1") >= 3, timeout=10)
        d.post("/admin/models/tiny/load").raise_for_status()
        wait_for(
            lambda: any(
                re.fullmatch(r"STATUS=serving \d+ models, 1 hot", x) for x in listener.lines()
            ),
            timeout=10,
        )
        # The workers do not inherit the variables: only the daemon speaks to systemd.
        pid = d.model("tiny")["pid"]
        worker_env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        assert not [v for v in worker_env if v.startswith((b"NOTIFY_SOCKET=", b"WATCHDOG_"))]
        d.proc.send_signal(signal.SIGTERM)
        try:
            code = d.proc.wait(30)
        except subprocess.TimeoutExpired as exc:  # rare (once in CI): say where it stood
            log = d.log()[-4000:]
            raise AssertionError(f"no exit 30 s after SIGTERM; its log:\n{log}") from exc
        assert code == 0
        assert "STOPPING=1" in listener.lines()
        assert "Traceback" not in d.log()
    finally:
        d.stop()


# -- the unit files ---------------------------------------------------------------------------


def unit_text(name: str) -> str:
    return (SYSTEMD / name).read_text()


@pytest.mark.parametrize("name", UNITS)
def test_units_are_notify_with_watchdog_and_a_stop_timeout_above_the_drain(name: str) -> None:
    text = unit_text(name)
    assert re.search(r"^Type=notify$", text, re.MULTILINE)
    assert re.search(r"^WatchdogSec=30$", text, re.MULTILINE)
    stop = re.search(r"^TimeoutStopSec=(\d+)$", text, re.MULTILINE)
    assert stop is not None and int(stop.group(1)) == 90
    # The drain ends streams a little before systemd would SIGKILL the service.
    assert 0 < int(stop.group(1)) - Settings().drain_timeout_s <= 15
    # A models.toml with errors (serve exits 78) is not restarted every 2 s.
    assert re.search(r"^RestartPreventExitStatus=78$", text, re.MULTILINE)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
@pytest.mark.parametrize("name", UNITS)
def test_units_pass_systemd_analyze_verify(name: str, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "appliance").write_text("#!/bin/sh\n")
    (venv / "bin" / "appliance").chmod(0o755)
    # As installer.sh renders them: placeholders filled, lines left with one dropped.
    lines = [
        line.replace("@VENV@", str(venv))
        for line in unit_text(name).splitlines()
        if not re.search(r"@(?!VENV@)[A-Z_]+@", line)
    ]
    unit = tmp_path / name
    unit.write_text("\n".join(lines) + "\n")
    verify = subprocess.run(
        ["systemd-analyze", "verify", str(unit)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "SYSTEMD_LOG_LEVEL": "warning"},
    )
    if "Failed to initialize manager" in verify.stderr:  # no systemd to ask (a container)
        pytest.skip(f"systemd-analyze cannot run here: {verify.stderr.strip()}")
    assert verify.returncode == 0, verify.stderr
    assert name not in verify.stderr, verify.stderr  # no warning about the unit
