"""Ollama's native API, its model routes, through the official `ollama` client: the probes,
list, show, ps, pull from the stand-in hub, delete, and errors in Ollama's shape."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import ollama
import pytest

from appliance.api.ollama_model_routes import (
    OLLAMA_VERSION,
    _human_count,
    capabilities,
    details,
    fills_in,
    model_info,
)
from appliance.catalog import CatalogEntry, LocalSource
from appliance.store.gguf_meta import read_gguf_info
from appliance.store.model_folder import read_model_info
from appliance.tiny_model import CHATML_TEMPLATE, TinyModelSpec, write_tiny_gguf
from tests.conftest import THINK_TEMPLATE
from tests.daemon import Daemon, start_daemon
from tests.hubstub import HubStub

REPO = "org/tiny-GGUF"
COMMIT = "b" * 40
KEY = "ollama-test-key"
ONNX = Path(__file__).resolve().parents[1] / "fixtures" / "onnx"


def test_probes_answer_as_ollama(daemon: Daemon) -> None:
    r = daemon.get("/")
    assert r.status_code == 200 and r.text == "Ollama is running"
    assert r.headers["content-type"].startswith("text/plain")
    assert httpx.head(daemon.url + "/", timeout=30).status_code == 200
    version = daemon.get("/api/version").json()["version"]
    assert version == OLLAMA_VERSION
    # Clients turn tools and `think` on from 0.9 (0.11 for think levels).
    assert tuple(int(p) for p in version.split(".")) >= (0, 11, 0)


def test_list_shows_every_model_with_its_gguf_details(daemon: Daemon, models_dir: Path) -> None:
    listed = {m.model: m for m in ollama.Client(host=daemon.url).list().models}
    assert {"tiny:latest", "tiny-embed:latest", "think:latest", "broken:latest"} <= set(listed)
    tiny = listed["tiny:latest"]
    info = read_gguf_info(models_dir / "tiny.gguf")
    assert tiny.size == (models_dir / "tiny.gguf").stat().st_size
    assert tiny.digest == ""  # a catalog file outside the store: no digest recorded
    assert tiny.modified_at is not None and tiny.modified_at.year >= 2024
    assert tiny.details is not None
    assert tiny.details.format == "gguf" and tiny.details.parent_model == ""
    assert tiny.details.family == "llama" and list(tiny.details.families or []) == ["llama"]
    assert tiny.details.parameter_size == _human_count(info.n_params) == "145K"
    assert tiny.details.quantization_level == "F32"
    # A file the header reader refuses is listed all the same, with empty details.
    broken = listed["broken:latest"]
    assert broken.details is not None and broken.details.family == ""
    assert list(broken.details.families or []) == []
    raw = daemon.get("/api/tags").json()["models"]
    assert all(m["name"] == m["model"] for m in raw)  # older clients read `name`


def test_show_reads_the_header_template_and_capabilities(daemon: Daemon) -> None:
    client = ollama.Client(host=daemon.url)
    shown = client.show("tiny:latest")
    assert shown.template == CHATML_TEMPLATE
    # Its template does not render tools, but the appliance takes them for every chat model.
    assert shown.capabilities == ["completion", "tools"]
    assert shown.details is not None and shown.details.family == "llama"
    info = shown.modelinfo or {}
    assert info["general.architecture"] == "llama"
    assert info["llama.context_length"] == 2048
    assert info["general.parameter_count"] > 0
    assert info["tokenizer.ggml.tokens"] == []  # arrays are not read
    assert "tokenizer.chat_template" not in info  # it is `template`
    assert shown.parameters is not None and shown.parameters.split() == ["num_ctx", "512"]
    assert shown.modelfile is not None and "PARAMETER num_ctx 512" in shown.modelfile
    assert shown.modified_at is not None
    # Aliases, case and Ollama's tag name the same model; the legacy `name` field too.
    assert client.show("TINY-alias").template == CHATML_TEMPLATE
    legacy = daemon.post("/api/show", json={"name": "tiny"})
    assert legacy.status_code == 200 and legacy.json()["template"] == CHATML_TEMPLATE
    assert client.show("think").capabilities == ["completion", "tools", "thinking"]
    assert client.show("tiny-embed").capabilities == ["embedding"]


def test_capabilities_follow_the_template_and_models_toml() -> None:
    tools = "{% if tools %}{{ tools | tojson }}{% endif %}" + CHATML_TEMPLATE
    assert capabilities(None, tools, False) == ["completion", "tools"]
    assert capabilities(None, THINK_TEMPLATE, False) == ["completion", "tools", "thinking"]
    assert capabilities(None, "", True) == ["embedding"]
    entry = CatalogEntry(name="m", source=LocalSource(Path("/m.gguf")), reasoning="off")
    assert capabilities(entry, THINK_TEMPLATE, False) == ["completion", "tools"]
    entry = CatalogEntry(name="m", source=LocalSource(Path("/m.gguf")), reasoning="on")
    assert capabilities(entry, CHATML_TEMPLATE, False) == ["completion", "tools", "thinking"]


def test_a_code_model_that_fills_in_the_middle_says_insert(tmp_path: Path) -> None:
    """Editors (Continue, Zed) read "insert" to send `suffix`: from the header's FIM keys
    before a load, from what the loaded engine found after."""
    coder = read_gguf_info(write_tiny_gguf(tmp_path / "coder.gguf", TinyModelSpec(fim=True)))
    plain = read_gguf_info(write_tiny_gguf(tmp_path / "plain.gguf"))
    assert fills_in(coder, {}) and not fills_in(plain, {})
    assert fills_in(plain, {"infill": True}) and not fills_in(coder, {"infill": False})
    assert capabilities(None, CHATML_TEMPLATE, False, insert=True) == [
        "completion",
        "tools",
        "insert",
    ]


def test_an_onnx_folder_shows_its_facts_under_gguf_keys() -> None:
    info = read_model_info(ONNX / "tiny-chat-int4")
    assert details(info, None) == {
        "parent_model": "",
        "format": "onnx",
        "family": "llama",
        "families": ["llama"],
        "parameter_size": _human_count(info.n_params),
        "quantization_level": "INT4",
    }
    facts = model_info(info)
    assert facts["general.architecture"] == "llama"
    assert facts["llama.context_length"] == info.context_length
    assert facts["general.parameter_count"] == info.n_params
    encoder = read_model_info(ONNX / "tiny-encoder")
    assert details(encoder, None)["format"] == "onnx"
    assert model_info(encoder)["bert.context_length"] == encoder.context_length


def test_parameter_size_is_written_as_ollama_writes_it() -> None:
    assert _human_count(134_515_008) == "134.52M"
    assert _human_count(135_000_000) == "135M"
    assert _human_count(7_615_616_512) == "7.6B"
    assert _human_count(8_000_000_000) == "8B"
    assert _human_count(144_704) == "145K"
    assert _human_count(999) == "999"


def test_ps_lists_the_model_a_request_loaded(daemon: Daemon) -> None:
    r = daemon.post(
        "/v1/chat/completions",
        json={"model": "tiny", "max_tokens": 2, "messages": [{"role": "user", "content": "hi"}]},
    )
    assert r.status_code == 200, r.text
    running = {m.model: m for m in ollama.Client(host=daemon.url).ps().models}
    tiny = running["tiny:latest"]
    assert tiny.name == "tiny:latest"
    assert tiny.size is not None and tiny.size > 0
    assert tiny.size_vram is not None and 0 <= tiny.size_vram <= tiny.size
    assert tiny.context_length == 512
    assert tiny.expires_at is not None and tiny.expires_at > datetime.now(tz=UTC)
    assert tiny.details is not None and tiny.details.format == "gguf"
    for name in running:  # the hot models, and only those
        assert daemon.model(name.removesuffix(":latest"))["tier"] == "hot"


def test_errors_take_ollama_shape(daemon: Daemon) -> None:
    client = ollama.Client(host=daemon.url)
    with pytest.raises(ollama.ResponseError) as info:
        client.show("no-such-model")
    assert info.value.status_code == 404 and info.value.error == "model 'no-such-model' not found"
    with pytest.raises(ollama.ResponseError) as info:
        client.delete("no-such-model")
    assert info.value.status_code == 404
    with pytest.raises(ollama.ResponseError) as info:
        client.delete("tiny")  # models.toml's own file: not the store's to delete
    assert info.value.status_code == 400 and "own file" in info.value.error
    with pytest.raises(ollama.ResponseError) as info:
        client.pull("no-such-model")
    assert info.value.status_code == 404
    with pytest.raises(ollama.ResponseError) as info:
        client.copy("tiny", "tiny-copy")
    assert info.value.status_code == 501 and "appliance import" in info.value.error
    for path in ("/api/create", "/api/push", "/api/blobs/sha256:" + "0" * 64):
        r = daemon.post(path, json={"model": "x"})
        assert r.status_code == 501 and isinstance(r.json()["error"], str), (path, r.text)
    for r in (
        daemon.post("/api/show", json={}),
        daemon.post("/api/show", content=b"{not json"),
        daemon.get("/api/no-such-route"),
        daemon.get("/api/show"),
    ):
        assert r.status_code in (400, 404, 405) and set(r.json()) == {"error"}, r.text
        assert isinstance(r.json()["error"], str)
    # Outside /api the OpenAI shape stays.
    assert isinstance(daemon.get("/v1/no-such-route").json()["error"], dict)


# -- pull and delete, from a stand-in hub, on a daemon that asks for a key -----------------


@pytest.fixture(scope="module")
def hub(models_dir: Path) -> Iterator[HubStub]:
    with HubStub() as stub:
        stub.add_file(
            REPO, "tiny-q4_k_m.gguf", (models_dir / "tiny.gguf").read_bytes(), revision_sha=COMMIT
        )
        yield stub


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory, hub: HubStub) -> Iterator[Daemon]:
    home = tmp_path_factory.mktemp("ollamahome")
    catalog = home / "models.toml"
    catalog.write_text(
        f'[models.remote-tiny]\nsource = "hf://{REPO}/*q4_k_m.gguf"\n'
        f'revision = "{COMMIT}"\ncontext = 256\n'
    )
    d = start_daemon(home, catalog, env={"HF_ENDPOINT": hub.endpoint}, api_key=KEY)
    yield d
    d.stop()


def test_the_key_is_asked_and_refusals_are_in_ollama_shape(keyed: Daemon) -> None:
    with pytest.raises(ollama.ResponseError) as info:
        ollama.Client(host=keyed.url).list()
    assert info.value.status_code == 401 and "API key" in info.value.error
    client = ollama.Client(host=keyed.url, headers={"Authorization": f"Bearer {KEY}"})
    assert [m.model for m in client.list().models] == ["remote-tiny:latest"]


def test_pull_streams_ollama_progress_then_delete(
    keyed: Daemon, hub: HubStub, models_dir: Path
) -> None:
    client = ollama.Client(host=keyed.url, headers={"Authorization": f"Bearer {KEY}"})
    before = client.list().models[0]
    assert before.size == 0 and before.digest == ""
    data = (models_dir / "tiny.gguf").read_bytes()
    sha = hashlib.sha256(data).hexdigest()

    parts = list(client.pull("remote-tiny:latest", stream=True))
    statuses = [p.status for p in parts]
    assert statuses[0] == "pulling manifest"
    assert statuses[-3:] == ["verifying sha256 digest", "writing manifest", "success"]
    layers = [p for p in parts if p.digest]
    assert layers and all(p.status == f"pulling {sha[:12]}" for p in layers)
    assert all(p.digest == f"sha256:{sha}" and p.total == len(data) for p in layers)
    assert layers[-1].completed == len(data)
    assert statuses.index("verifying sha256 digest") > statuses.index(f"pulling {sha[:12]}")

    after = client.list().models[0]
    assert after.size == len(data) and after.digest == sha
    assert after.details is not None and after.details.family == "llama"
    # Again: in the store already, nothing fetched; stream false answers once.
    gets = hub.file(REPO, "tiny-q4_k_m.gguf").gets
    assert client.pull("remote-tiny").status == "success"
    again = [p.status for p in client.pull("remote-tiny", stream=True)]
    assert again[0] == "pulling manifest" and again[-1] == "success"
    assert hub.file(REPO, "tiny-q4_k_m.gguf").gets == gets

    assert client.delete("remote-tiny:latest").status == "success"
    gone = client.list().models[0]
    assert gone.size == 0 and gone.digest == ""
    with pytest.raises(ollama.ResponseError) as info:
        client.delete("remote-tiny")  # not pulled now
    assert info.value.status_code == 404


def test_a_failed_pull_ends_its_stream_with_an_error_line(keyed: Daemon) -> None:
    client = ollama.Client(host=keyed.url, headers={"Authorization": f"Bearer {KEY}"})
    seen: list[str | None] = []
    with pytest.raises(ollama.ResponseError) as info:
        for part in client.pull("hf://org/missing-GGUF/x.gguf", stream=True):
            seen.append(part.status)
    assert seen == ["pulling manifest"]  # the 200 came first: the error is a line
    assert "not found" in info.value.error
    with pytest.raises(ollama.ResponseError) as info:
        client.pull("hf://org/missing-GGUF/x.gguf")  # stream false: the HTTP status
    assert info.value.status_code == 404
