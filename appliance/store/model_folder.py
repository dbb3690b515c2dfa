"""Model folders: what a directory of files is, and the header facts the tiers need.

Two folder formats are served:
- an onnxruntime-genai LLM: `genai_config.json`, the decoder's ONNX file (+ external
  data), `tokenizer.json`, `tokenizer_config.json`, maybe `chat_template.jinja`;
- a sentence-transformers embedding encoder in ONNX: `modules.json`, `onnx/model.onnx`
  (or `model.onnx`), `tokenizer.json`, `1_Pooling/config.json`.

Folders of other formats that people will try (safetensors quantized with GPTQ, AWQ,
FP8 for vLLM; plain safetensors; a folder holding a GGUF) are refused with what would
serve them. The facts come back as a `GGUFInfo` with `format` set, so tier planning,
estimates and views read one shape whatever the format.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from appliance.store.errors import StoreError
from appliance.store.gguf_meta import GGUFInfo, MetaValue
from appliance.store.onnx_graph import OnnxFormatError, read_onnx_graph

MAX_CONFIG_BYTES = 16 << 20  # a JSON config or tokenizer config; tokenizer.json is not read here


# Weights in formats a folder model does not use: never fetched with an ONNX folder.
_SKIPPED_SUFFIXES = (
    ".safetensors",
    ".bin",
    ".pt",
    ".pth",
    ".h5",
    ".msgpack",
    ".ot",
    ".gguf",
    ".tflite",
    ".mlmodel",
    ".md",
)
_SKIPPED_DIRS = ("openvino/", "coreml/", ".git/")
FOLDER_MARKERS = ("genai_config.json", "modules.json")


def folder_prefix(pattern: str, is_glob: bool, filenames: list[str]) -> str | None:
    """The folder `ref` names ("." for the repo root), or None when it names a file."""
    if is_glob:
        no_gguf = not any(f.lower().endswith(".gguf") for f in filenames)
        if pattern == "*.gguf" and no_gguf and any(m in filenames for m in FOLDER_MARKERS):
            return "."
        return None
    if pattern in filenames:
        return None
    prefix = pattern.rstrip("/") + "/"
    return pattern.rstrip("/") if any(f.startswith(prefix) for f in filenames) else None


def folder_files(path: str, filenames: list[str]) -> list[str]:
    """The files of the folder at `path` that a folder model needs (weights of other
    formats, other ONNX variants of an encoder and docs are left on the hub)."""
    prefix = "" if path == "." else path + "/"
    out = []
    for name in filenames:
        if not name.startswith(prefix):
            continue
        rel = name[len(prefix) :]
        if rel.startswith(".") or rel.lower().endswith(_SKIPPED_SUFFIXES):
            continue
        if any(rel.startswith(d) for d in _SKIPPED_DIRS):
            continue
        if rel.startswith("onnx/") and not rel.startswith(("onnx/model.onnx", "onnx/model.onnx_")):
            continue  # model_O4.onnx, model_qint8_avx512.onnx, ...: the plain export only
        out.append(name)
    return sorted(out)


class ModelFolderError(StoreError):
    """A folder that is not a model this appliance serves, with what would serve it."""


def folder_format(folder: Path) -> str:
    """ "onnx" or "onnx-encoder"; raise `ModelFolderError` saying why not."""
    if not folder.is_dir():
        raise ModelFolderError(f"{folder} is not a folder")
    names = {p.name for p in folder.iterdir()}
    if "genai_config.json" in names:
        return "onnx"
    if "modules.json" in names and (
        (folder / "onnx" / "model.onnx").is_file() or "model.onnx" in names
    ):
        return "onnx-encoder"
    if any(n.endswith(".gguf") for n in names):
        raise ModelFolderError(
            f"{folder} holds GGUF files: import the .gguf file itself, not its folder"
        )
    if any(n.endswith(".safetensors") for n in names):
        quant = _safetensors_quant(folder)
        if quant:
            raise ModelFolderError(
                f"{folder} is a {quant} safetensors model, served by vLLM or TGI on a GPU, "
                "not by this appliance; use a GGUF or an ONNX (onnxruntime-genai) build of it"
            )
        raise ModelFolderError(
            f"{folder} is an unquantized safetensors model; convert it to GGUF "
            "(llama.cpp's convert_hf_to_gguf.py) or to ONNX (python -m "
            "onnxruntime_genai.models.builder), or pull a published GGUF/ONNX build"
        )
    if any(n.endswith(".onnx") for n in names):
        raise ModelFolderError(
            f"{folder} holds ONNX files but no genai_config.json (an onnxruntime-genai LLM) "
            "or modules.json (a sentence-transformers encoder); export it with "
            "onnxruntime-genai's model builder"
        )
    raise ModelFolderError(
        f"{folder} is not a model folder: expected genai_config.json (ONNX LLM) or "
        "modules.json with onnx/model.onnx (ONNX embedding encoder)"
    )


def remote_folder_problem(names: list[str]) -> str | None:
    """Why a folder on the hub (its file names, relative to it) is not a model this
    appliance serves, before anything is downloaded; None when it is one."""
    if any(m in names for m in FOLDER_MARKERS):
        return None
    if any(n.endswith(".safetensors") for n in names):
        return (
            "it is a safetensors model (unquantized, or GPTQ/AWQ/FP8 for vLLM or TGI), not "
            "a format this appliance serves; pull a GGUF or an ONNX (onnxruntime-genai) build"
        )
    if any(n.endswith(".gguf") for n in names):
        return "it holds GGUF files: pull the .gguf file itself (hf://org/repo/file.gguf)"
    return (
        "it holds neither genai_config.json (an onnxruntime-genai LLM) nor modules.json "
        "(a sentence-transformers encoder)"
    )


def _safetensors_quant(folder: Path) -> str | None:
    config = _json(folder / "config.json", required=False)
    q = config.get("quantization_config") if isinstance(config, dict) else None
    if not isinstance(q, dict):
        return None
    method = str(q.get("quant_method") or "quantized")
    return {"compressed-tensors": "compressed-tensors (FP8/INT)"}.get(method, method.upper())


def _json(path: Path, *, required: bool = True) -> Any:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        if required:
            raise ModelFolderError(f"{path.parent.name}/{path.name} is missing") from None
        return {}
    if size > MAX_CONFIG_BYTES:
        raise ModelFolderError(f"{path.name} is {size} bytes: too large for a config file")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelFolderError(f"{path.name} is not valid JSON: {e}") from None


def _inside(folder: Path, rel: str, what: str) -> Path:
    path = (folder / rel).resolve()
    if not path.is_relative_to(folder.resolve()):
        raise ModelFolderError(f"{what} {rel!r} points outside the model folder")
    if not path.is_file():
        raise ModelFolderError(f"{what} {rel!r} is missing from {folder.name}")
    return path


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _token_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return str(value["content"])
    return None


def chat_template_of(folder: Path) -> str | None:
    """The folder's chat template: chat_template.jinja, else tokenizer_config.json's."""
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    config = _json(folder / "tokenizer_config.json", required=False)
    template = config.get("chat_template") if isinstance(config, dict) else None
    if isinstance(template, list):  # [{"name": "default", "template": ...}, ...]
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default") or next(iter(named.values()), None)
    return template if isinstance(template, str) else None


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def read_folder_info(folder: str | os.PathLike[str]) -> GGUFInfo:
    """Validate a model folder and read what serving it needs."""
    path = Path(folder)
    kind = folder_format(path)
    if kind == "onnx":
        return _genai_info(path)
    return _encoder_info(path)


def _genai_info(folder: Path) -> GGUFInfo:
    config = _json(folder / "genai_config.json")
    model = config.get("model") if isinstance(config, dict) else None
    if not isinstance(model, dict) or not isinstance(model.get("decoder"), dict):
        raise ModelFolderError("genai_config.json has no model.decoder section")
    decoder: dict[str, Any] = model["decoder"]
    filename = decoder.get("filename")
    if not isinstance(filename, str):
        raise ModelFolderError("genai_config.json names no decoder file (model.decoder.filename)")
    onnx_path = _inside(folder, filename, "the decoder file")
    _inside(folder, "tokenizer.json", "the tokenizer")
    try:
        graph = read_onnx_graph(onnx_path)
    except OnnxFormatError as e:
        raise ModelFolderError(str(e)) from None
    tokenizer_config = _json(folder / "tokenizer_config.json", required=False)
    tc = tokenizer_config if isinstance(tokenizer_config, dict) else {}
    n_layers = _int(decoder.get("num_hidden_layers"))
    eos = model.get("eos_token_id")
    eos_id = eos[0] if isinstance(eos, list) and eos else eos
    size = folder_bytes(folder)
    meta: dict[str, MetaValue] = {
        "onnx.decoder": filename,
        "onnx.ops": ", ".join(f"{op}×{n}" for op, n in graph.ops.most_common(8)),
        "onnx.model_type": str(model.get("type") or ""),
    }
    return GGUFInfo(
        path=folder,
        file_size=size,
        version=0,
        architecture=str(model.get("type") or "onnx"),
        name=folder.name,
        n_params=graph.n_params,
        quantization=graph.precision,
        context_length=_int(model.get("context_length")),
        embedding_length=_int(decoder.get("hidden_size")),
        block_count=n_layers,
        head_count=_int(decoder.get("num_attention_heads")),
        head_count_kv=_int(decoder.get("num_key_value_heads")),
        key_length=_int(decoder.get("head_size")),
        value_length=_int(decoder.get("head_size")),
        feed_forward_length=None,
        vocab_size=_int(model.get("vocab_size")),
        chat_template=chat_template_of(folder),
        bos_token=_token_text(tc.get("bos_token")),
        eos_token=_token_text(tc.get("eos_token")),
        bos_token_id=_int(model.get("bos_token_id")),
        eos_token_id=_int(eos_id),
        pooling_type=None,
        is_embedding=False,
        tensor_bytes=size,
        # onnxruntime places a whole graph on one device: no per-layer split.
        block_tensor_bytes=size,
        tensor_count=len(graph.initializers),
        alignment=0,
        data_offset=0,
        metadata=meta,
        format="onnx",
    )


def encoder_onnx_path(folder: Path) -> Path:
    nested = folder / "onnx" / "model.onnx"
    return nested if nested.is_file() else _inside(folder, "model.onnx", "the encoder file")


def _encoder_info(folder: Path) -> GGUFInfo:
    onnx_path = encoder_onnx_path(folder)
    _inside(folder, "tokenizer.json", "the tokenizer")
    try:
        graph = read_onnx_graph(onnx_path)
    except OnnxFormatError as e:
        raise ModelFolderError(str(e)) from None
    config = _json(folder / "config.json", required=False)
    cfg = config if isinstance(config, dict) else {}
    st = _json(folder / "sentence_bert_config.json", required=False)
    max_seq = _int(st.get("max_seq_length")) if isinstance(st, dict) else None
    size = folder_bytes(folder)
    return GGUFInfo(
        path=folder,
        file_size=size,
        version=0,
        architecture=str(cfg.get("model_type") or "onnx-encoder"),
        name=folder.name,
        n_params=graph.n_params,
        quantization=graph.precision,
        context_length=max_seq or _int(cfg.get("max_position_embeddings")),
        embedding_length=_int(cfg.get("hidden_size")),
        block_count=_int(cfg.get("num_hidden_layers")),
        head_count=_int(cfg.get("num_attention_heads")),
        head_count_kv=None,
        key_length=None,
        value_length=None,
        feed_forward_length=_int(cfg.get("intermediate_size")),
        vocab_size=_int(cfg.get("vocab_size")),
        chat_template=None,
        bos_token=None,
        eos_token=None,
        bos_token_id=None,
        eos_token_id=None,
        pooling_type=None,
        is_embedding=True,
        tensor_bytes=size,
        block_tensor_bytes=size,
        tensor_count=len(graph.initializers),
        alignment=0,
        data_offset=0,
        metadata={"onnx.encoder": str(onnx_path.relative_to(folder))},
        format="onnx-encoder",
    )


def read_model_info(path: str | os.PathLike[str]) -> GGUFInfo:
    """A GGUF file's header, or a model folder's facts: one shape for both."""
    from appliance.store.gguf_meta import read_gguf_info

    p = Path(path)
    return read_folder_info(p) if p.is_dir() else read_gguf_info(p)


def model_bytes(path: Path) -> int:
    """Bytes on disk of a model file or folder."""
    return folder_bytes(path) if path.is_dir() else path.stat().st_size


def file_identity(path: Path) -> str:
    """An id for a model file or folder outside the store (one the catalog names by path):
    its path and each file's size, mtime and inode, so a model replaced at the same path
    gets a new id. What the store holds is known by its sha256 instead."""
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    parts = [str(path.resolve())]
    for f in files:
        st = f.stat()
        name = "" if f == path else str(f.relative_to(path))
        parts.append(f"{name}:{st.st_size}:{st.st_mtime_ns}:{st.st_ino}")
    return "file:" + hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


def weights_file(path: Path) -> Path:
    """The file holding most of a model's weights (what the warm tier keeps in RAM)."""
    if not path.is_dir():
        return path
    files = [p for p in path.rglob("*") if p.is_file()]
    return max(files, key=lambda p: p.stat().st_size) if files else path
