"""Shared fixtures: tiny generated GGUF models, a catalog for them and a running daemon."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from appliance.tiny_model import CHATML_TEMPLATE, TinyModelSpec, write_tiny_gguf
from tests.daemon import Daemon, start_daemon

# Property tests search the same examples on every run, so a landing is never turned red
# by chance; HYPOTHESIS_PROFILE=explore searches new ones (and finds what CI would not).
settings.register_profile("ci", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# ChatML that opens a reasoning block for the answer, as Qwen3/DeepSeek-R1 templates do.
THINK_TEMPLATE = CHATML_TEMPLATE.replace(
    "'<|im_start|>assistant\\n'", "'<|im_start|>assistant\\n<think>\\n'"
)
THINK_ID, END_THINK_ID, EOS_ID = 5, 6, 4


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("models")
    write_tiny_gguf(d / "tiny.gguf")
    write_tiny_gguf(d / "embed.gguf", TinyModelSpec(embedding=True, chat_template=None))
    write_tiny_gguf(d / "think.gguf", TinyModelSpec(chat_template=THINK_TEMPLATE))
    hostile = "{{ ''.__class__.__mro__[1].__subclasses__() }}{{ messages[0]['content'] }}"
    write_tiny_gguf(d / "hostile.gguf", TinyModelSpec(chat_template=hostile))
    # Slower (about 1000 tokens/s here, 4096 context): long answers stay in flight.
    slow = TinyModelSpec(n_embd=256, n_layer=4, n_ff=768, n_ctx_train=4096)
    write_tiny_gguf(d / "slow.gguf", slow)
    # The same, but a greedy answer never ends: for streams that must outlive a deadline
    # (the Messages API has no ignore_eos; a greedy story ended after 973 tokens).
    write_tiny_gguf(d / "endless.gguf", dataclasses.replace(slow, endless=True))
    data = (d / "tiny.gguf").read_bytes()
    (d / "broken.gguf").write_bytes(data[: len(data) // 2])
    return d


def write_catalog(path: Path, models_dir: Path, extra: str = "") -> Path:
    path.write_text(f'''
[models.tiny]
source = "{models_dir / "tiny.gguf"}"
aliases = ["tiny-alias"]
context = 512
default = true

[models.tiny-embed]
source = "{models_dir / "embed.gguf"}"
kind = "embedding"
context = 256

[models.think]
source = "{models_dir / "think.gguf"}"
context = 512

[models.hostile]
source = "{models_dir / "hostile.gguf"}"

[models.broken]
source = "{models_dir / "broken.gguf"}"
{extra}
''')
    return path


@pytest.fixture(scope="session")
def daemon(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[Daemon]:
    home = tmp_path_factory.mktemp("home")
    catalog = write_catalog(home / "catalog.toml", models_dir)
    d = start_daemon(home, catalog, env={"APPLIANCE_HEARTBEAT_TIMEOUT": "4"})
    yield d
    d.stop()


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
