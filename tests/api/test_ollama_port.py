"""The same API on Ollama's port too (`ollama_port`), for tools that assume
localhost:11434; a port already taken (Ollama itself) leaves the daemon serving on its
own port, with a warning."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import ollama

from tests.conftest import write_catalog
from tests.daemon import free_port, start_daemon


def test_the_api_is_served_on_ollamas_port_too(tmp_path: Path, models_dir: Path) -> None:
    port = free_port()
    catalog = write_catalog(tmp_path / "catalog.toml", models_dir)
    d = start_daemon(tmp_path / "home", catalog, env={"APPLIANCE_OLLAMA_PORT": str(port)})
    try:
        other = f"http://127.0.0.1:{port}"
        assert httpx.get(other + "/", timeout=10).text == "Ollama is running"
        names = [m.model for m in ollama.Client(host=other).list().models]
        assert "tiny:latest" in names
        answer = ollama.Client(host=other).generate(
            model="tiny", prompt="hi", options={"num_predict": 3}
        )
        assert answer.done and answer.eval_count == 3
        assert d.get("/api/version").status_code == 200  # its own port still serves
        assert f"on Ollama's port too: http://127.0.0.1:{port}" in d.log()
    finally:
        d.stop()


def test_a_taken_port_is_a_warning_not_a_failure(tmp_path: Path, models_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        catalog = write_catalog(tmp_path / "catalog.toml", models_dir)
        d = start_daemon(tmp_path / "home", catalog, env={"APPLIANCE_OLLAMA_PORT": str(port)})
        try:
            assert d.get("/api/version").status_code == 200
            assert f"not serving on Ollama's port {port} too" in d.log()
        finally:
            d.stop()
