"""Ollama's `hf.co/ORG/REPO:TAG` names, with the ollama and openai clients: pulled from the
stand-in hub under the store name `hf_names.hf_name` gives, then chatted with by that name."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import ollama
import openai
import pytest

from appliance.tiny_model import TinyModelSpec, write_tiny_gguf
from tests.daemon import Daemon, start_daemon
from tests.hubstub import HubStub
from tests.test_cli import run_cli

REPO = "Org/Tiny-Chat-GGUF"  # two quantizations and two Q8_0 variants
SOLO = "org/solo-GGUF"  # one GGUF, not Q4_K_M
NAME = "hf.co/Org/Tiny-Chat-GGUF:Q4_K_M"
STORED = "org-tiny-chat-gguf-q4_k_m"


@pytest.fixture(scope="module")
def hub(models_dir: Path) -> Iterator[HubStub]:
    with HubStub() as stub:
        data = (models_dir / "tiny.gguf").read_bytes()
        other = write_tiny_gguf(models_dir / "hf-other.gguf", TinyModelSpec(seed=3)).read_bytes()
        stub.add_file(REPO, "Tiny-Chat-Q4_K_M.gguf", data)
        stub.add_file(REPO, "Tiny-Chat-Q8_0.gguf", other)
        stub.add_file(REPO, "Tiny-Chat-Q8_0-imatrix.gguf", other + b"\0")
        stub.add_file(REPO, "README.md", b"# tiny", lfs=False)
        stub.add_file(SOLO, "solo-f16.gguf", data)
        yield stub


@pytest.fixture(scope="module")
def daemon_hf(tmp_path_factory: pytest.TempPathFactory, hub: HubStub) -> Iterator[Daemon]:
    home = tmp_path_factory.mktemp("hfnames")
    catalog = home / "models.toml"
    catalog.write_text("")
    d = start_daemon(home, catalog, env={"HF_ENDPOINT": hub.endpoint})
    yield d
    d.stop()


def test_chat_before_the_pull_says_to_pull_it(daemon_hf: Daemon, hub: HubStub) -> None:
    client = ollama.Client(host=daemon_hf.url)
    gets = hub.file(REPO, "Tiny-Chat-Q4_K_M.gguf").gets
    with pytest.raises(ollama.ResponseError) as info:
        client.chat(model=NAME, messages=[{"role": "user", "content": "hi"}])
    assert info.value.status_code == 404
    assert f"ollama pull {NAME}" in info.value.error and "appliance pull" in info.value.error
    assert hub.file(REPO, "Tiny-Chat-Q4_K_M.gguf").gets == gets  # never pulled on a request


def test_ollama_pulls_an_hf_name_then_chats_with_it(daemon_hf: Daemon) -> None:
    client = ollama.Client(host=daemon_hf.url)
    statuses = [p.status for p in client.pull(NAME, stream=True)]
    assert statuses[0] == "pulling manifest" and statuses[-1] == "success"
    assert f"{STORED}:latest" in [m.model for m in client.list().models]

    for name in (NAME, NAME.lower(), "huggingface.co/org/tiny-chat-gguf:q4_k_m"):
        reply = client.chat(
            model=name, messages=[{"role": "user", "content": "hi"}], options={"num_predict": 4}
        )
        assert reply.message.role == "assistant"
    assert client.show(NAME).details is not None
    # Pulled again: in the store already.
    assert client.pull(NAME.upper().replace("HF.CO", "hf.co")).status == "success"


def test_openai_clients_resolve_the_same_name(daemon_hf: Daemon) -> None:
    client = ollama.Client(host=daemon_hf.url)
    client.pull(NAME)
    oai = openai.OpenAI(base_url=daemon_hf.v1, api_key="x", max_retries=0)
    reply = oai.chat.completions.create(
        model=NAME, messages=[{"role": "user", "content": "hi"}], max_tokens=4
    )
    assert reply.model in (NAME, STORED)
    assert reply.choices[0].message.role == "assistant"
    with pytest.raises(openai.NotFoundError) as info:
        oai.chat.completions.create(
            model="hf.co/org/never-pulled-GGUF:Q4_K_M",
            messages=[{"role": "user", "content": "hi"}],
        )
    assert "pull it first" in str(info.value).lower()


def test_a_tag_matching_nothing_or_two_files_is_refused_naming_the_files(
    daemon_hf: Daemon,
) -> None:
    client = ollama.Client(host=daemon_hf.url)
    with pytest.raises(ollama.ResponseError) as info:
        client.pull("hf.co/Org/Tiny-Chat-GGUF:IQ2_XS")
    assert info.value.status_code == 404
    assert "Tiny-Chat-Q4_K_M.gguf" in info.value.error and "Tiny-Chat-Q8_0.gguf" in info.value.error
    with pytest.raises(ollama.ResponseError) as info:
        client.pull("hf.co/Org/Tiny-Chat-GGUF:q8_0")
    assert info.value.status_code == 400
    assert "Tiny-Chat-Q8_0.gguf" in info.value.error
    assert "Tiny-Chat-Q8_0-imatrix.gguf" in info.value.error
    # Streamed, the refusal is the stream's last line.
    with pytest.raises(ollama.ResponseError) as info:
        list(client.pull("hf.co/Org/Tiny-Chat-GGUF:q8_0", stream=True))
    assert "2 files" in info.value.error
    with pytest.raises(ollama.ResponseError) as info:
        client.pull("hf.co/org/repo:Q4_*")
    assert info.value.status_code == 400


def test_without_a_tag_the_default_then_the_only_gguf(daemon_hf: Daemon) -> None:
    client = ollama.Client(host=daemon_hf.url)
    assert client.pull("hf.co/org/solo-GGUF").status == "success"  # no Q4_K_M: the only one
    names = [m.model for m in client.list().models]
    assert "org-solo-gguf:latest" in names
    reply = client.chat(
        model="hf.co/org/solo-GGUF:latest",
        messages=[{"role": "user", "content": "hi"}],
        options={"num_predict": 2},
    )
    assert reply.message.role == "assistant"


def test_appliance_pull_takes_the_same_names(
    daemon_hf: Daemon, hub: HubStub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    r = run_cli("pull", "hf.co/org/solo-GGUF:F16", "--url", daemon_hf.url)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("org-solo-gguf-f16 ")
    # No daemon: the CLI pulls into its own store, under the same name.
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    r = run_cli(
        "pull", "huggingface.co/Org/Tiny-Chat-GGUF", "--url", "http://127.0.0.1:9", home=tmp_path
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("org-tiny-chat-gguf ")  # no tag: the Q4_K_M file
