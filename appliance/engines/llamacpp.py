"""The llama.cpp engine, as used inside one worker process.

It loads one GGUF with llama-cpp-python, renders chat prompts with the
model's own template (sandboxed), and generates token by token so the worker
can stream, cancel between tokens and count exactly. Only the worker imports
this module; the daemon never runs model code.
"""

from __future__ import annotations

import ctypes
import json
import os
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from appliance.engines.chat_template import ChatTemplate, ChatTemplateError, opens_reasoning
from appliance.engines.stopping import StopBuffer

# llama.cpp's own fallback when a GGUF carries no template.
FALLBACK_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


class EngineRequestError(Exception):
    """A request the engine refuses; `code` and `status` travel to the client."""

    def __init__(
        self,
        message: str,
        code: str = "invalid_request",
        status: int = 400,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.param = param


@dataclass(frozen=True)
class EngineConfig:
    model_path: str
    n_ctx: int = 4096
    n_gpu_layers: int = 0
    n_threads: int | None = None
    embedding: bool = False
    n_batch: int = 512
    chat_template: str | None = None


@dataclass
class GenerationResult:
    finish_reason: str = "stop"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    prompt_s: float = 0.0
    decode_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def default_threads() -> int:
    try:
        import psutil

        physical = psutil.cpu_count(logical=False)
    except Exception:  # psutil cannot tell on some containers
        physical = None
    return max(1, physical or os.cpu_count() or 1)


class LlamaEngine:
    def __init__(self, cfg: EngineConfig) -> None:
        import llama_cpp
        from llama_cpp import Llama

        self._llama_cpp = llama_cpp
        self.cfg = cfg
        threads = cfg.n_threads or default_threads()
        started = time.monotonic()
        n_ctx = cfg.n_ctx
        kwargs: dict[str, Any] = {}
        if cfg.embedding:
            # Encoders need the whole input in one ubatch.
            kwargs.update(n_batch=n_ctx, n_ubatch=n_ctx)
        else:
            kwargs.update(n_batch=cfg.n_batch)
        self.llama = Llama(
            model_path=cfg.model_path,
            n_ctx=n_ctx,
            n_gpu_layers=cfg.n_gpu_layers,
            n_threads=threads,
            n_threads_batch=threads,
            embedding=cfg.embedding,
            verbose=False,
            **kwargs,
        )
        self.load_s = time.monotonic() - started
        self.threads = threads
        self.n_ctx = self.llama.n_ctx()
        self.n_vocab = self.llama.n_vocab()
        self._vocab = llama_cpp.llama_model_get_vocab(self.llama.model)
        self._piece_cache: dict[int, bytes] = {}
        meta = self.llama.metadata
        template_src = cfg.chat_template or meta.get("tokenizer.chat_template") or None
        self.template_from_gguf = template_src is not None and cfg.chat_template is None
        self.eos_token_id = int(self.llama.token_eos())
        self.bos_token_id = int(self.llama.token_bos())
        bos = self._piece(self.bos_token_id, special=True).decode("utf-8", "replace")
        eos = self._piece(self.eos_token_id, special=True).decode("utf-8", "replace")
        self.template = ChatTemplate(
            template_src or FALLBACK_TEMPLATE, bos_token=bos, eos_token=eos
        )
        self._bos_text = bos
        self._eog_ids = self._find_eog_ids()

    # -- vocabulary -------------------------------------------------------------------------

    def _piece(self, token: int, special: bool = False) -> bytes:
        size = 64
        while True:
            buf = ctypes.create_string_buffer(size)
            n = self._llama_cpp.llama_token_to_piece(self._vocab, token, buf, size, 0, special)
            if n >= 0:
                return buf.raw[:n]
            size = -n

    def piece(self, token: int) -> bytes:
        cached = self._piece_cache.get(token)
        if cached is None:
            cached = self._piece(token)
            self._piece_cache[token] = cached
        return cached

    def _find_eog_ids(self) -> list[int]:
        is_eog = self._llama_cpp.llama_vocab_is_eog
        found = [t for t in range(self.n_vocab) if is_eog(self._vocab, t)]
        return found or [self.eos_token_id]

    def is_eog(self, token: int) -> bool:
        return bool(self._llama_cpp.llama_vocab_is_eog(self._vocab, token))

    def tokenize(self, text: str, *, add_bos: bool) -> list[int]:
        return list(self.llama.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True))

    # -- prompts ----------------------------------------------------------------------------

    def render_chat(self, messages: Sequence[dict[str, Any]]) -> tuple[str, bool]:
        try:
            text = self.template.render(messages, add_generation_prompt=True)
        except ChatTemplateError as exc:
            raise EngineRequestError(
                str(exc), code="invalid_chat_template", status=400, param="messages"
            ) from exc
        return text, opens_reasoning(text)

    def prompt_tokens(self, text: str, *, templated: bool) -> list[int]:
        # A rendered template that already starts with BOS must not get a second one.
        add_bos = not (templated and self._bos_text and text.startswith(self._bos_text))
        add_bos = add_bos and self.llama._model.add_bos_token()
        return self.tokenize(text, add_bos=add_bos)

    def check_context(self, n_prompt: int, param: str) -> None:
        if n_prompt >= self.n_ctx:
            raise EngineRequestError(
                f"This model's maximum context length is {self.n_ctx} tokens, but the prompt "
                f"has {n_prompt} tokens (at least one token must be left for the answer). "
                "Shorten the prompt or load the model with a larger context.",
                code="context_length_exceeded",
                status=400,
                param=param,
            )

    # -- sampling ---------------------------------------------------------------------------

    def _grammar(self, response_format: dict[str, Any] | None) -> Any:
        if not response_format:
            return None
        from llama_cpp.llama_grammar import JSON_GBNF, LlamaGrammar

        kind = response_format.get("type")
        try:
            if kind == "json_object":
                return LlamaGrammar.from_string(JSON_GBNF, verbose=False)
            if kind == "json_schema":
                schema = response_format.get("schema") or {}
                return LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False)
        except Exception as exc:
            raise EngineRequestError(
                f"response_format: the JSON schema cannot be turned into a grammar: {exc}",
                code="invalid_json_schema",
                param="response_format",
            ) from exc
        return None

    def _sampler(self, params: dict[str, Any], grammar: Any, seed: int) -> Any:
        from llama_cpp import _internals

        sampler_cls: Any = _internals.LlamaSampler  # untyped in llama-cpp-python
        s = sampler_cls()
        bias: dict[int, float] = {}
        for key, value in (params.get("logit_bias") or {}).items():
            token = int(key)
            if 0 <= token < self.n_vocab:
                bias[token] = float(value)
        if params.get("ignore_eos"):
            for token in self._eog_ids:
                bias[token] = float("-inf")
        if bias:
            s.add_logit_bias(self.n_vocab, bias)
        repeat = float(params.get("repeat_penalty") or 1.0)
        freq = float(params.get("frequency_penalty") or 0.0)
        present = float(params.get("presence_penalty") or 0.0)
        if (repeat, freq, present) != (1.0, 0.0, 0.0):
            s.add_penalties(
                n_vocab=self.n_vocab,
                penalty_last_n=64,
                penalty_repeat=repeat,
                penalty_freq=freq,
                penalty_present=present,
            )
        if grammar is not None:
            s.add_grammar(self.llama._model, grammar)
        temperature = float(params.get("temperature", 1.0))
        if temperature <= 0.0:
            s.add_greedy()
        else:
            top_k = params.get("top_k")
            min_p = params.get("min_p")
            s.add_top_k(int(top_k) if top_k is not None else 40)
            s.add_top_p(float(params.get("top_p", 1.0)), 1)
            s.add_min_p(float(min_p) if min_p is not None else 0.05, 1)
            s.add_temp(temperature)
            s.add_dist(seed)
        return s

    # -- generation -------------------------------------------------------------------------

    def generate(
        self,
        tokens: list[int],
        params: dict[str, Any],
        cancelled: Callable[[], bool],
        result: GenerationResult,
    ) -> Iterator[str]:
        """Yield text pieces; fill `result` with counts and the finish reason."""
        llama: Any = self.llama
        grammar = self._grammar(params.get("response_format"))
        seed = params.get("seed")
        seed = int(seed) & 0xFFFFFFFF if seed is not None else random.getrandbits(32)
        # Like llama-server, a request asking for more than the context leaves is cut
        # at the context's end (finish_reason "length"), not refused.
        max_tokens = min(int(params.get("max_tokens", 256)), self.n_ctx - len(tokens))
        stops = StopBuffer(tuple(params.get("stop") or ()))
        result.prompt_tokens = len(tokens)
        result.finish_reason = "length"

        # Reuse the common prefix with the previous request's KV cache.
        prefix = 0
        for a, b in zip(llama._input_ids[: llama.n_tokens], tokens, strict=False):
            if a != b:
                break
            prefix += 1
        prefix = min(prefix, len(tokens) - 1)
        if prefix > 0 and llama._ctx.kv_cache_seq_rm(-1, prefix, -1):
            llama.n_tokens = prefix
        else:
            prefix = 0
            llama.reset()
            llama._ctx.kv_cache_seq_rm(-1, 0, -1)
        result.cached_tokens = prefix

        sampler = self._sampler(params, grammar, seed)
        t0 = time.monotonic()
        llama.eval(tokens[prefix:])
        result.prompt_s = time.monotonic() - t0
        t1 = time.monotonic()
        generated = 0
        finish = "length"
        try:
            while generated < max_tokens:
                if cancelled():
                    result.finish_reason = "cancelled"
                    return
                # llama_sampler_sample applies the chain and accepts the token itself.
                token = sampler.sample(llama._ctx, -1)
                generated += 1
                result.completion_tokens = generated
                if self.is_eog(token) and not params.get("ignore_eos"):
                    finish = "stop"
                    break
                text = stops.feed(self.piece(token))
                if text:
                    yield text
                if stops.stopped:
                    finish = "stop"
                    break
                if generated >= max_tokens:
                    break
                llama.eval([token])
            result.finish_reason = finish
            rest = stops.flush()
            if rest:
                yield rest
        finally:
            result.decode_s = time.monotonic() - t1

    # -- embeddings -------------------------------------------------------------------------

    def embed(self, inputs: Sequence[str]) -> tuple[list[list[float]], int]:
        total = 0
        for i, text in enumerate(inputs):
            n = len(self.tokenize(text, add_bos=True))
            if n > self.n_ctx:
                raise EngineRequestError(
                    f"input[{i}] has {n} tokens but this embedding model's context is "
                    f"{self.n_ctx} tokens.",
                    code="context_length_exceeded",
                    param="input",
                )
            total += n
        vectors = self.llama.embed(list(inputs), normalize=True, truncate=False)
        return [list(map(float, v)) for v in vectors], total

    def info(self) -> dict[str, Any]:
        llama_cpp = self._llama_cpp
        meta = self.llama.metadata
        return {
            "n_ctx": self.n_ctx,
            "n_ctx_train": int(self.llama._model.n_ctx_train()),
            "n_vocab": self.n_vocab,
            "n_gpu_layers": self.cfg.n_gpu_layers,
            "gpu_offload_supported": bool(llama_cpp.llama_supports_gpu_offload()),
            "threads": self.threads,
            "load_s": round(self.load_s, 4),
            "eos_token_id": self.eos_token_id,
            "bos_token_id": self.bos_token_id,
            "embedding": self.cfg.embedding,
            "template_from_gguf": self.template_from_gguf,
            "architecture": meta.get("general.architecture"),
            "model_size_bytes": int(llama_cpp.llama_model_size(self.llama.model)),
            "system_info": llama_cpp.llama_print_system_info().decode("utf-8", "replace"),
        }
