"""Fixtures for the store tests: a running stand-in hub and tiny GGUF files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.tiny_model import TinyModelSpec, write_tiny_gguf
from tests.hubstub import HubStub


@pytest.fixture
def hub() -> Iterator[HubStub]:
    with HubStub() as stub:
        yield stub


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_gguf(tmp_path_factory.mktemp("gguf") / "Tiny-Chat-F32.gguf")


@pytest.fixture(scope="session")
def tiny_embed_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    spec = TinyModelSpec(embedding=True, chat_template=None, seed=1)
    return write_tiny_gguf(tmp_path_factory.mktemp("gguf") / "tiny-embed.gguf", spec)


@pytest.fixture(scope="session")
def tiny_bytes(tiny_gguf: Path) -> bytes:
    return tiny_gguf.read_bytes()


@pytest.fixture(scope="session")
def other_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A second, different valid GGUF."""
    path = tmp_path_factory.mktemp("gguf") / "other.gguf"
    return write_tiny_gguf(path, TinyModelSpec(seed=7, n_layer=1)).read_bytes()
