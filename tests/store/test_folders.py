"""Folder models (ONNX) in the store: import, pull from the stand-in hub, checks, removal."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from appliance.store import IntegrityError, NotFoundError
from appliance.store.model_folder import ModelFolderError, file_identity, read_folder_info
from appliance.store.onnx_graph import read_onnx_graph
from tests.hubstub import HubStub
from tests.onnx_builder import int4_decoder, model, node, tensor, write_genai_folder
from tests.store.test_store import make_store

REPO = "org/tiny-onnx"
SUB = "cpu-int4-rtn-block-32"


def add_folder(hub: HubStub, src: Path, prefix: str = SUB) -> None:
    for p in sorted(src.rglob("*")):
        if p.is_file():
            rel = p.relative_to(src).as_posix()
            hub.add_file(REPO, f"{prefix}/{rel}", p.read_bytes(), lfs=p.suffix == ".onnx")


def test_import_folder_publishes_a_tree_of_verified_blobs(tmp_path: Path) -> None:
    src = write_genai_folder(tmp_path / "src")
    store = make_store(tmp_path / "s")
    model = store.import_file(src, "tiny-onnx")

    assert model.format == "onnx"
    assert sorted(f.path for f in model.files) == [
        "genai_config.json",
        "model.onnx",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    assert model.path == store.root / "trees" / model.sha256
    for f in model.files:
        linked = model.path / f.path
        assert linked.read_bytes() == (src / f.path).read_bytes()
        assert os.stat(linked).st_ino == os.stat(store.layout.blob_path(f.sha256)).st_ino
    info = store.info("tiny-onnx")
    assert (info.format, info.quantization, info.context_length) == ("onnx", "int4", 2048)
    assert info.n_params == 100 * 64 + 64 * 128
    assert store.get("tiny-onnx") == model


def test_remove_folder_drops_its_tree_and_blobs(tmp_path: Path) -> None:
    src = write_genai_folder(tmp_path / "src")
    store = make_store(tmp_path / "s")
    model = store.import_file(src, "a")
    store.import_file(src, "b")  # the same files under a second name
    store.remove("a")
    assert model.path.is_dir()  # "b" still needs them
    store.remove("b")
    assert not model.path.exists()
    assert list(store.layout.blobs_dir.iterdir()) == []


def test_pull_folder_from_the_hub(tmp_path: Path, hub: HubStub) -> None:
    src = write_genai_folder(tmp_path / "src")
    (src / "README.md").write_text("docs stay on the hub")
    add_folder(hub, src)
    hub.add_file(REPO, "other/model.onnx", int4_decoder())  # another variant: not fetched
    store = make_store(tmp_path / "s", hub)
    events = []
    model = store.pull(f"hf://{REPO}/{SUB}", progress=events.append)

    assert model.name == "tiny-onnx-cpu-int4-rtn-block-32"
    assert model.format == "onnx" and model.filename == SUB
    assert sorted(f.path for f in model.files) == [
        "genai_config.json",
        "model.onnx",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    commit = hub.file(REPO, f"{SUB}/model.onnx").revision_sha
    assert model.source == f"hf://{REPO}/{SUB}@{commit}"
    assert events[-1].status == "done" and events[-1].downloaded == model.size
    assert read_folder_info(model.path).quantization == "int4"

    n = len(hub.requests)
    assert store.pull(f"hf://{REPO}/{SUB}@{commit[:10]}") == model
    assert len(hub.requests) == n  # pinned and present: no network


def test_pull_root_folder_when_the_repo_has_no_gguf(tmp_path: Path, hub: HubStub) -> None:
    src = write_genai_folder(tmp_path / "src")
    for p in sorted(src.iterdir()):
        hub.add_file(REPO, p.name, p.read_bytes(), lfs=p.suffix == ".onnx")
    store = make_store(tmp_path / "s", hub)
    model = store.pull(f"hf://{REPO}")
    assert model.name == "tiny-onnx" and model.filename == "."


def test_pull_folder_with_a_lying_digest_publishes_nothing(tmp_path: Path, hub: HubStub) -> None:
    src = write_genai_folder(tmp_path / "src")
    add_folder(hub, src)
    hub.file(REPO, f"{SUB}/model.onnx").served_sha256 = "0" * 64
    store = make_store(tmp_path / "s", hub)
    with pytest.raises(IntegrityError, match=r"model\.onnx"):
        store.pull(f"hf://{REPO}/{SUB}")
    assert store.list() == []
    assert list(store.layout.trees_dir.iterdir()) == []


def test_pull_of_a_folder_that_is_no_model_is_refused(tmp_path: Path, hub: HubStub) -> None:
    hub.add_file(REPO, "weights/model.safetensors", b"x" * 10)
    hub.add_file(REPO, "weights/config.json", b"{}", lfs=False)
    store = make_store(tmp_path / "s", hub)
    n = len(hub.requests)
    with pytest.raises(ModelFolderError, match=r"safetensors model .* not a format"):
        store.pull(f"hf://{REPO}/weights")
    assert store.list() == []
    assert not any("/resolve/" in path for _, path in hub.requests[n:])  # before any download


def test_missing_tree_is_reported(tmp_path: Path) -> None:
    store = make_store(tmp_path / "s")
    model = store.import_file(write_genai_folder(tmp_path / "src"), "m")
    (model.path / "model.onnx").unlink()
    with pytest.raises(NotFoundError, match="missing"):
        store.resolve_path("m")


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (
            {
                "model.safetensors": b"x",
                "config.json": json.dumps({"quantization_config": {"quant_method": "gptq"}}),
            },
            "GPTQ safetensors model, served by vLLM",
        ),
        (
            {
                "model.safetensors": b"x",
                "config.json": json.dumps({"quantization_config": {"quant_method": "fp8"}}),
            },
            "FP8 safetensors",
        ),
        ({"model.safetensors": b"x", "config.json": "{}"}, "unquantized safetensors"),
        ({"model-q4.gguf": b"GGUF"}, "import the .gguf file itself"),
        ({"model.onnx": int4_decoder()}, "no genai_config.json"),
        ({"notes.txt": "hi"}, "not a model folder"),
    ],
)
def test_import_refuses_folders_it_cannot_serve(
    tmp_path: Path, files: dict[str, bytes | str], message: str
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name, data in files.items():
        (src / name).write_bytes(data if isinstance(data, bytes) else data.encode())
    store = make_store(tmp_path / "s")
    with pytest.raises(ModelFolderError, match=message):
        store.import_file(src, "m")
    assert store.list() == []


def test_decoder_path_may_not_leave_the_folder(tmp_path: Path) -> None:
    src = write_genai_folder(tmp_path / "src")
    config = json.loads((src / "genai_config.json").read_text())
    config["model"]["decoder"]["filename"] = "../outside.onnx"
    (tmp_path / "outside.onnx").write_bytes(int4_decoder())
    (src / "genai_config.json").write_text(json.dumps(config))
    with pytest.raises(ModelFolderError, match="outside the model folder"):
        make_store(tmp_path / "s").import_file(src, "m")


@pytest.mark.parametrize("cut", [1, 7, 40, -3])
def test_truncated_onnx_is_refused(tmp_path: Path, cut: int) -> None:
    data = int4_decoder()
    src = write_genai_folder(tmp_path / "src", onnx=data[:cut])
    with pytest.raises(ModelFolderError, match=r"not a valid ONNX model|no graph"):
        make_store(tmp_path / "s").import_file(src, "m")


def _one_weight(data_type: int, *, dq: bool = False) -> bytes:
    nodes = [node("DequantizeLinear", ["w", "s"], ["wd"])] if dq else []
    nodes.append(node("MatMul", ["x", "wd" if dq else "w"], ["y"]))
    return model(nodes, [tensor("w", data_type, [64, 64]), tensor("s", 1, [1])])


@pytest.mark.parametrize(
    ("onnx", "precision"),
    [
        (int4_decoder(), "int4"),
        (_one_weight(22, dq=True), "int4"),  # QDQ int4
        (_one_weight(17, dq=True), "fp8"),  # float8e4m3fn QDQ
        (_one_weight(10), "fp16"),
        (_one_weight(16), "bf16"),
        (_one_weight(1), "fp32"),
    ],
)
def test_precision_from_the_graph(tmp_path: Path, onnx: bytes, precision: str) -> None:
    path = tmp_path / "m.onnx"
    path.write_bytes(onnx)
    assert read_onnx_graph(path).precision == precision


def test_encoder_folder_is_recognised(tmp_path: Path) -> None:
    src = tmp_path / "enc"
    (src / "onnx").mkdir(parents=True)
    (src / "onnx" / "model.onnx").write_bytes(_one_weight(1))
    (src / "onnx" / "model_O4.onnx").write_bytes(b"another export, not imported")
    (src / "modules.json").write_text("[]")
    (src / "tokenizer.json").write_text("{}")
    (src / "config.json").write_text(json.dumps({"hidden_size": 64, "model_type": "bert"}))
    (src / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 128}))
    model = make_store(tmp_path / "s").import_file(src, "enc")
    assert model.format == "onnx-encoder"
    assert "onnx/model_O4.onnx" not in {f.path for f in model.files}
    info = read_folder_info(model.path)
    assert info.is_embedding and info.context_length == 128 and info.embedding_length == 64


def test_file_identity_changes_when_a_model_is_replaced_at_its_path(tmp_path: Path) -> None:
    model = tmp_path / "model.gguf"
    model.write_bytes(b"GGUF one")
    first = file_identity(model)
    assert file_identity(model) == first  # untouched: the same id, every load
    new = tmp_path / "new.gguf"
    new.write_bytes(b"GGUF two")  # the same size, another file
    os.replace(new, model)
    assert file_identity(model) != first
    # A folder: any of its files rewritten in place changes it too.
    folder = tmp_path / "onnx"
    (folder / "sub").mkdir(parents=True)
    (folder / "genai_config.json").write_text("{}")
    (folder / "sub" / "model.onnx").write_bytes(b"x" * 10)
    before = file_identity(folder)
    st = (folder / "sub" / "model.onnx").stat()
    os.utime(folder / "sub" / "model.onnx", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert file_identity(folder) != before
