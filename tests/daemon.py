"""Run the real daemon (`appliance serve`) as a subprocess for end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Daemon:
    proc: subprocess.Popen[bytes]
    port: int
    home: Path
    log_path: Path
    api_key: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def v1(self) -> str:
        return self.url + "/v1"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return httpx.get(self.url + path, headers=self.headers(), timeout=60, **kw)

    def post(self, path: str, **kw: Any) -> httpx.Response:
        return httpx.post(self.url + path, headers=self.headers(), timeout=120, **kw)

    def delete(self, path: str, **kw: Any) -> httpx.Response:
        return httpx.delete(self.url + path, headers=self.headers(), timeout=60, **kw)

    def model(self, name: str) -> dict[str, Any]:
        r = self.get(f"/admin/models/{name}")
        r.raise_for_status()
        data: dict[str, Any] = r.json()
        return data

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_daemon(
    home: Path,
    catalog: Path,
    env: Mapping[str, str] | None = None,
    api_key: str | None = None,
    port: int | None = None,
) -> Daemon:
    port = port or free_port()
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("APPLIANCE_")}
    full_env.update(
        {
            "APPLIANCE_HOME": str(home),
            "APPLIANCE_THREADS": "1",
            "APPLIANCE_LOG_LEVEL": "info",
            "HF_HUB_DISABLE_TELEMETRY": "1",
            # The tests import models from pytest's temporary folders over the API.
            "APPLIANCE_IMPORT_DIRS": tempfile.gettempdir(),
            # `stop` waits 20 s for the exit: a stream left open must not hold it 80 s.
            "APPLIANCE_DRAIN_TIMEOUT": "5",
        }
    )
    if api_key:
        full_env["APPLIANCE_API_KEY"] = api_key
    full_env.update(env or {})
    home.mkdir(parents=True, exist_ok=True)
    log_path = home / "daemon.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "appliance.cli",
            "serve",
            "--port",
            str(port),
            "--catalog",
            str(catalog),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=full_env,
    )
    daemon = Daemon(proc, port, home, log_path, api_key)
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


def wait_for(predicate: Any, timeout: float = 30.0, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); read its state.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"
