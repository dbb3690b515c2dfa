"""ONNX sentence-embedding encoders (sentence-transformers layout) on plain onnxruntime.

The folder declares what to do after the transformer: `1_Pooling/config.json` says how
token vectors become one vector (mean, CLS, max, last token; in the current
`pooling_mode` form or the legacy `pooling_mode_*_tokens` flags), and a Normalize
module in `modules.json` asks for unit length. `sentence_bert_config.json` gives the
longest input; longer inputs are cut there, as sentence-transformers does.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from appliance.engines.engine import EngineRequestError, check_token_ids
from appliance.engines.llamacpp import default_threads
from appliance.store.model_folder import encoder_onnx_path, read_folder_info

POOLING_FLAGS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len",
    "pooling_mode_lasttoken": "lasttoken",
}
POOLING_MODES = frozenset(POOLING_FLAGS.values())


def pooling_of(folder: Path, modules: list[dict[str, Any]]) -> str:
    """The pooling the folder declares (mean when it declares none)."""
    path = next(
        (
            folder / str(m.get("path") or "")
            for m in modules
            if str(m.get("type", "")).endswith("Pooling")
        ),
        folder / "1_Pooling",
    )
    config_path = path / "config.json"
    if not config_path.is_file():
        return "mean"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    mode = config.get("pooling_mode")
    if isinstance(mode, str):  # the current form
        mode = {"mean_tokens": "mean", "cls_token": "cls", "max_tokens": "max"}.get(mode, mode)
        if mode not in POOLING_MODES:
            raise ValueError(f"1_Pooling/config.json: unknown pooling_mode {mode!r}")
        return mode
    for flag, name in POOLING_FLAGS.items():  # the legacy form
        if config.get(flag):
            return name
    return "mean"


def pool(hidden: np.ndarray, mask: np.ndarray, mode: str) -> np.ndarray:
    """[batch, tokens, dim] -> [batch, dim] over the tokens `mask` marks."""
    m = mask[:, :, None].astype(hidden.dtype)
    if mode == "cls":
        return np.asarray(hidden[:, 0])
    if mode == "lasttoken":
        last = mask.sum(axis=1).astype(int) - 1
        return np.asarray(hidden[np.arange(hidden.shape[0]), np.maximum(last, 0)])
    if mode == "max":
        return np.asarray(np.where(m > 0, hidden, -np.inf).max(axis=1))
    summed = (hidden * m).sum(axis=1)
    counts = np.maximum(m.sum(axis=1), 1e-9)
    if mode == "mean_sqrt_len":
        return np.asarray(summed / np.sqrt(counts))
    return np.asarray(summed / counts)


class OnnxEncoder:
    def __init__(self, model_path: str, n_threads: int | None = None) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        started = time.monotonic()
        folder = Path(model_path)
        self.facts = read_folder_info(folder)
        modules = json.loads((folder / "modules.json").read_text(encoding="utf-8"))
        self.modules = modules if isinstance(modules, list) else []
        self.pooling = pooling_of(folder, self.modules)
        self.normalize = any(str(m.get("type", "")).endswith("Normalize") for m in self.modules)
        self.max_tokens = self.facts.context_length or 512
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(self.max_tokens)
        options = ort.SessionOptions()
        self.threads = n_threads or default_threads()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            str(encoder_onnx_path(folder)), options, providers=["CPUExecutionProvider"]
        )
        self.input_names = {i.name for i in self.session.get_inputs()}
        self.n_ctx = self.max_tokens
        self.load_s = time.monotonic() - started

    def texts_of(self, token_inputs: Sequence[Sequence[int]]) -> list[str]:
        """Inputs sent as this model's token ids, as the text they spell."""
        n_vocab = int(self.tokenizer.get_vocab_size())
        return [
            self.tokenizer.decode(check_token_ids(ids, n_vocab, f"input[{i}]"))
            for i, ids in enumerate(token_inputs)
        ]

    def embed(self, inputs: Sequence[str]) -> tuple[list[list[float]], int]:
        if not inputs:
            raise EngineRequestError("input is empty", code="invalid_request", param="input")
        encodings = self.tokenizer.encode_batch(list(inputs))
        width = max(len(e.ids) for e in encodings) or 1
        ids = np.zeros((len(encodings), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        types = np.zeros_like(ids)
        for row, e in enumerate(encodings):
            ids[row, : len(e.ids)] = e.ids
            mask[row, : len(e.ids)] = e.attention_mask
            types[row, : len(e.ids)] = e.type_ids
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        out = self.session.run(None, {k: v for k, v in feed.items() if k in self.input_names})
        hidden = np.asarray(out[0], dtype=np.float32)
        vectors = hidden if hidden.ndim == 2 else pool(hidden, mask, self.pooling)
        if self.normalize:
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            vectors = vectors / np.maximum(norms, 1e-12)
        return vectors.astype(float).tolist(), int(mask.sum())

    def info(self) -> dict[str, Any]:
        return {
            "engine": "onnxruntime",
            "format": "onnx-encoder",
            "precision": self.facts.quantization,
            "provider": "cpu",
            "provider_reason": "embedding encoders run on the CPU provider",
            "n_ctx": self.n_ctx,
            "threads": self.threads,
            "load_s": round(self.load_s, 4),
            "embedding": True,
            "pooling": self.pooling,
            "normalize": self.normalize,
            "architecture": self.facts.architecture,
            "model_size_bytes": self.facts.tensor_bytes,
            "slots": 1,
            "slots_reason": None,
            "n_gpu_layers": 0,
        }
