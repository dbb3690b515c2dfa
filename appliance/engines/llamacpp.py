"""The llama.cpp engine, as used inside one worker process.

It loads one GGUF through llama-cpp-python's low-level API into one context whose
KV memory is a stream per slot (llama-server's layout: each token attends over its
own sequence's cells only) or, with `kv_unified`, one pool across `n_seq_max`
sequences (a shared prefix is held once, copied in place, but every token scans
every sequence's cells), renders chat prompts with the model's own template (sandboxed), and
runs the batched steps the scheduler builds (`engine.BatchEngine`). Embedding
models keep llama-cpp-python's `Llama` object, which pools per sequence. Only the
worker imports this module; the daemon never runs model code.
"""

from __future__ import annotations

import ctypes
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from appliance.engines.chat_prompt import TemplateChat
from appliance.engines.chat_template import ChatTemplate
from appliance.engines.engine import (
    BatchEntry,
    EngineRequestError,
    KVFull,
    TokenSampler,
    check_context,
    check_token_ids,
)
from appliance.engines.infill import FimTokens, infill_tokens
from appliance.engines.llama_log import captured_log, resolved_flash_attn
from appliance.engines.llama_sampling import LlamaSampling
from appliance.parsing import detect_family

__all__ = ["EngineConfig", "EngineRequestError", "LlamaEngine", "default_threads"]

# llama.cpp's own fallback when a GGUF carries no template.
FALLBACK_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

FLASH_ATTN = {"auto": -1, "off": 0, "on": 1}
# Throwaway one-token rows worth less than one more pass over the weights (see step_plan);
# the GPU figure is not measured yet.
GAP_FILL_CPU = 1
GAP_FILL_GPU = 4


@dataclass(frozen=True)
class EngineConfig:
    model_path: str
    n_ctx: int = 4096  # per sequence
    n_gpu_layers: int = 0
    n_threads: int | None = None
    embedding: bool = False
    n_batch: int = 512
    chat_template: str | None = None
    n_slots: int = 1  # sequences decoded together
    n_cache_seqs: int = 4  # extra sequences kept in the KV as prompt-cache entries (unified KV)
    kv_unified: bool = False  # one KV pool for all sequences, or a stream per slot
    flash_attn: str = "auto"  # auto | on | off
    weight_repack: bool = True  # llama.cpp's extra CPU buffer types (repacked weights, AMX)
    tool_parser: str | None = None  # the output family's name, when not the template's


def default_threads() -> int:
    try:
        import psutil

        physical = psutil.cpu_count(logical=False)
    except Exception:  # psutil cannot tell on some containers
        physical = None
    return max(1, physical or os.cpu_count() or 1)


class LlamaEngine(TemplateChat):
    def __init__(self, cfg: EngineConfig) -> None:
        import llama_cpp
        from llama_cpp import _internals, _logger

        _logger.set_verbose(False)  # llama.cpp's own log: errors only
        self._llama_cpp = llama_cpp
        self.cfg = cfg
        threads = cfg.n_threads or default_threads()
        self.threads = threads
        started = time.monotonic()
        self.llama: Any = None
        self.slots_reason: str | None = None  # why fewer slots than asked, if so
        self._ctx: Any = None
        self._batch: Any = None
        if cfg.embedding:
            from llama_cpp import Llama

            # Encoders need the whole input in one ubatch.
            self.llama = Llama(
                model_path=cfg.model_path,
                n_ctx=cfg.n_ctx,
                n_gpu_layers=cfg.n_gpu_layers,
                n_threads=threads,
                n_threads_batch=threads,
                embedding=True,
                verbose=False,
                n_batch=cfg.n_ctx,
                n_ubatch=cfg.n_ctx,
            )
            self._model: Any = self.llama._model
            self.n_ctx = self.llama.n_ctx()
            self.n_seq_max = 1
            self.n_slots = 1
            self.n_batch = self.n_ctx
            self.can_truncate = True
            self.prefix_copy = False
            self.gap_fill_tokens = 0
            self.kv_layout = "unified"
            self.flash_attn = "off"
        else:
            mparams = llama_cpp.llama_model_default_params()
            mparams.n_gpu_layers = cfg.n_gpu_layers
            mparams.use_extra_bufts = cfg.weight_repack
            self._model = _internals.LlamaModel(
                path_model=cfg.model_path, params=mparams, verbose=False
            )
            model = self._model.model
            recurrent = bool(
                llama_cpp.llama_model_is_recurrent(model) or llama_cpp.llama_model_is_hybrid(model)
            )
            # A recurrent state cannot be cut back to a prefix: its sequences decode together
            # like any others, but a cached one serves only a prompt that extends it whole.
            self.can_truncate = not recurrent
            self.n_slots = max(1, cfg.n_slots)
            # Split KV (a stream per slot, llama-server's layout) keeps every row's attention
            # to its own slot's cells; unified KV shares prefix cells between sequences but
            # makes each row scan (and, in mixed steps, compute over) every slot's cells.
            self.prefix_copy = cfg.kv_unified and not recurrent
            # Split KV reads each run of consecutive sequence ids in a pass of its own; a
            # throwaway row for an idle stream between decoding ones joins the runs. On CPU
            # (700M Q4_K_M, 1 thread) a row cost 39 ms and the extra pass 74 ms: one row pays,
            # two do not. On a GPU a pass is a read of all the weights and a row next to free.
            split = not self.prefix_copy and not recurrent
            self.gap_fill_tokens = (
                0 if not split else GAP_FILL_GPU if cfg.n_gpu_layers else GAP_FILL_CPU
            )
            cache_seqs = max(0, cfg.n_cache_seqs) if self.prefix_copy else 0
            limit = int(llama_cpp.llama_max_parallel_sequences())
            self.n_seq_max = min(self.n_slots + cache_seqs, limit)
            if self.n_slots > self.n_seq_max:
                self.slots_reason = f"llama.cpp decodes at most {limit} sequences together"
            self.n_slots = min(self.n_slots, self.n_seq_max)
            cparams = llama_cpp.llama_context_default_params()
            # Every slot can hold a whole context at once; cache entries use what is free.
            cparams.n_ctx = cfg.n_ctx * self.n_slots
            cparams.n_batch = cfg.n_batch
            cparams.n_ubatch = min(cfg.n_batch, 512)
            cparams.n_seq_max = self.n_seq_max
            cparams.kv_unified = cfg.kv_unified
            self.kv_layout = "unified" if cfg.kv_unified else f"split{self.n_seq_max}"
            cparams.n_threads = threads
            cparams.n_threads_batch = threads
            cparams.flash_attn_type = FLASH_ATTN.get(cfg.flash_attn, -1)
            cparams.no_perf = True
            with captured_log() as log:  # where llama.cpp says what "auto" chose
                self._ctx = _internals.LlamaContext(
                    model=self._model, params=cparams, verbose=False
                )
            self.n_ctx = min(cfg.n_ctx, int(self._ctx.n_ctx()))
            self.n_batch = cfg.n_batch
            self._batch = llama_cpp.llama_batch_init(self.n_batch, 0, 1)
            self.flash_attn = resolved_flash_attn("".join(log), cfg.flash_attn)
            self._warm_up()
        self.load_s = time.monotonic() - started
        self.n_vocab = int(self._model.n_vocab())
        self._vocab = self._model.vocab
        self._piece_cache: dict[int, bytes] = {}
        meta = self._model.metadata()
        self.metadata = meta
        template_src = cfg.chat_template or meta.get("tokenizer.chat_template") or None
        self.template_from_gguf = template_src is not None and cfg.chat_template is None
        self.eos_token_id = int(self._model.token_eos())
        self.bos_token_id = int(self._model.token_bos())
        bos = self._piece(self.bos_token_id, special=True).decode("utf-8", "replace")
        eos = self._piece(self.eos_token_id, special=True).decode("utf-8", "replace")
        self.template = ChatTemplate(
            template_src or FALLBACK_TEMPLATE, bos_token=bos, eos_token=eos
        )
        self._bos_text = bos
        self.tool_family = detect_family(template_src, override=cfg.tool_parser).value
        self._eog_ids = self._find_eog_ids()
        self._shown = self._shown_controls(template_src)
        self.fim = self._fim_tokens()
        self._sampling = LlamaSampling(
            model=self._model,
            ctx=self._ctx,
            n_ctx=self.n_ctx,
            eog_ids=self._eog_ids,
            tool_family=self.tool_family,
            template=self.template.source,
        )

    def _warm_up(self) -> None:
        """One throwaway step at load, as llama-server does: the first request must not pay
        for kernel loading, graph setup and weight repacking."""
        bos, eos = int(self._model.token_bos()), int(self._model.token_eos())
        # Two tokens, as llama.cpp's own warm-up: batched kernels run too (a CPU that cannot
        # run them fails here, at load, not on a user's request).
        tokens = [t if t >= 0 else 0 for t in (bos, eos)]
        try:
            self.decode([BatchEntry(0, tokens, 0, True)])
        finally:
            self.seq_clear(0)

    def close(self) -> None:
        if self._batch is not None:
            self._llama_cpp.llama_batch_free(self._batch)
            self._batch = None

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
            cached = self._piece(token, special=token in self._shown)
            self._piece_cache[token] = cached
        return cached

    def _fim_tokens(self) -> FimTokens:
        lib, vocab = self._llama_cpp, self._vocab

        def token(name: str) -> int | None:
            fn = getattr(lib, f"llama_vocab_fim_{name}", None)
            value = int(fn(vocab)) if fn is not None else -1
            return value if 0 <= value < self.n_vocab else None

        return FimTokens(token("pre"), token("suf"), token("mid"), token("rep"), token("sep"))

    def _shown_controls(self, template_src: str | None) -> frozenset[int]:
        """Control tokens an answer shows as their text: those its chat template writes, a
        family's markup its parser reads (Gemma 4's <|channel>, Magistral's [THINK], Llama
        3's <|python_tag|>, Kimi K2's call sections), as llama-server shows its chat
        format's preserved tokens. Not an end of generation, the BOS, or what opens a
        user's turn. Other control tokens show as nothing, as before."""
        if not template_src:
            return frozenset()
        lib, vocab = self._llama_cpp, self._vocab
        hidden = {self.bos_token_id, *self._eog_ids}
        hidden.update(self.tokenize(self.turn_markers().user_start, add_bos=False))
        written = set(self.tokenize(template_src, add_bos=False)) - hidden
        control = lib.LLAMA_TOKEN_ATTR_CONTROL
        return frozenset(t for t in written if lib.llama_vocab_get_attr(vocab, t) & control)

    def _find_eog_ids(self) -> list[int]:
        is_eog = self._llama_cpp.llama_vocab_is_eog
        found = [t for t in range(self.n_vocab) if is_eog(self._vocab, t)]
        return found or [self.eos_token_id]

    def is_eog(self, token: int) -> bool:
        return bool(self._llama_cpp.llama_vocab_is_eog(self._vocab, token))

    def tokenize(self, text: str, *, add_bos: bool) -> list[int]:
        return list(self._model.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True))

    def tokenize_text(self, text: str, *, add_special: bool, parse_special: bool) -> list[int]:
        """llama-server's `/tokenize`: BOS only when asked, special tokens' text read as
        those tokens unless `parse_special` is false."""
        add = add_special and self._model.add_bos_token()
        return list(self._model.tokenize(text.encode("utf-8"), add_bos=add, special=parse_special))

    def forced_tokens(self, text: str) -> list[int]:
        """`text` as the tokenizer splits it, to write without sampling: the tokens whose
        pieces spell a start of it."""
        tokens = self._spelling(text, self.tokenize(text, add_bos=False))
        if tokens or not text:
            return tokens
        # A SentencePiece tokenizer puts a space before a text's first word: the text is
        # read after a newline, whose tokens are dropped.
        head = self.tokenize("\n", add_bos=False)
        both = self.tokenize("\n" + text, add_bos=False)
        if both[: len(head)] != head:
            return []
        return self._spelling(text, both[len(head) :])

    def _spelling(self, text: str, tokens: list[int]) -> list[int]:
        """The first of `tokens` whose pieces spell a start of `text`."""
        want = text.encode("utf-8")
        out: list[int] = []
        spelled = b""
        for token in tokens:
            spelled += self.special_piece(token)
            if not want.startswith(spelled):
                break
            out.append(token)
        return out

    def special_piece(self, token: int) -> bytes:
        """A token's text with special tokens spelled out (`/detokenize`, `/tokenize`'s pieces)."""
        return self._piece(token, special=True)

    def infill_prompt(self, request: dict[str, Any]) -> list[int]:
        return infill_tokens(
            lambda text: self.tokenize_text(text, add_special=False, parse_special=False),
            self.fim,
            request,
            bos=self.bos_token_id if self._model.add_bos_token() else None,
            # The budgets of llama-server's defaults (a 2048-token batch, no -n), whatever
            # this engine's step size: a client tuned against it gets the same prompt.
            n_batch=min(2048, self.n_ctx),
            n_ctx=self.n_ctx,
            n_predict=-1,
        )

    # -- prompts ----------------------------------------------------------------------------

    def prompt_tokens(self, text: str, *, templated: bool) -> list[int]:
        # A rendered template that already starts with BOS must not get a second one.
        add_bos = not (templated and self._bos_text and text.startswith(self._bos_text))
        add_bos = add_bos and self._model.add_bos_token()
        return self.tokenize(text, add_bos=add_bos)

    def check_context(self, n_prompt: int, param: str) -> None:
        check_context(n_prompt, self.n_ctx, param)

    # -- sampling ---------------------------------------------------------------------------

    def new_sampler(self, params: dict[str, Any], prompt: Sequence[int] = ()) -> TokenSampler:
        return self._sampling.new_sampler(params, prompt)

    # -- log probabilities --------------------------------------------------------------------

    def token_logprobs(self, output_index: int, token: int, top_n: int) -> dict[str, Any]:
        """`token`'s log probability at `output_index` of the last step, from the model's raw
        distribution (before temperature and the other samplers, as OpenAI reports them),
        with the `top_n` likeliest tokens."""
        import numpy as np

        ptr = self._llama_cpp.llama_get_logits_ith(self._ctx.ctx, output_index)
        logits = np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)).astype(np.float64)
        peak = float(logits.max())
        norm = peak + float(np.log(np.exp(logits - peak).sum()))

        def entry(t: int) -> dict[str, Any]:
            piece = self.piece(t)
            return {
                "id": t,
                "token": piece.decode("utf-8", "replace"),
                "logprob": float(logits[t]) - norm,
                "bytes": list(piece),
            }

        top: list[dict[str, Any]] = []
        if top_n > 0:
            n = min(top_n, self.n_vocab)
            idx = np.argpartition(-logits, n - 1)[:n]
            top = [entry(int(i)) for i in idx[np.argsort(-logits[idx])]]
        return {**entry(token), "top_logprobs": top}

    # -- batched steps ----------------------------------------------------------------------

    def decode(self, entries: Sequence[BatchEntry]) -> list[int]:
        batch = self._batch
        total = sum(len(entry.tokens) for entry in entries)
        if total > self.n_batch:  # checked first: the batch's arrays hold n_batch tokens
            raise ValueError(f"a step of {total} tokens exceeds n_batch {self.n_batch}")
        n = 0
        outputs: list[int] = []
        for entry in entries:
            last = len(entry.tokens) - 1
            for i, token in enumerate(entry.tokens):
                batch.token[n] = token
                batch.pos[n] = entry.pos + i
                batch.n_seq_id[n] = 1
                batch.seq_id[n][0] = entry.seq_id
                wanted = entry.all_logits or (entry.logits and i == last)
                batch.logits[n] = wanted
                if wanted:
                    outputs.append(n)
                n += 1
        batch.n_tokens = n
        rc = int(self._llama_cpp.llama_decode(self._ctx.ctx, batch))
        if rc == 1:
            raise KVFull("no room in the KV memory for this step")
        if rc != 0:
            raise RuntimeError(f"llama_decode failed with code {rc}")
        return outputs

    def seq_clear(self, seq_id: int) -> None:
        self._llama_cpp.llama_memory_seq_rm(self._ctx.memory, seq_id, -1, -1)

    def seq_truncate(self, seq_id: int, n_keep: int) -> None:
        if n_keep <= 0:
            self.seq_clear(seq_id)
        elif not self._llama_cpp.llama_memory_seq_rm(self._ctx.memory, seq_id, n_keep, -1):
            raise RuntimeError(f"sequence {seq_id} cannot be truncated to {n_keep} tokens")

    def seq_copy(self, src: int, dst: int, n_tokens: int) -> None:
        self._llama_cpp.llama_memory_seq_cp(self._ctx.memory, src, dst, 0, n_tokens)

    def seq_save(self, seq_id: int) -> bytes:
        lib = self._llama_cpp
        size = int(lib.llama_state_seq_get_size(self._ctx.ctx, seq_id))
        if size <= 0:
            return b""
        buf = (ctypes.c_uint8 * size)()
        written = int(lib.llama_state_seq_get_data(self._ctx.ctx, buf, size, seq_id))
        return ctypes.string_at(buf, written)

    def seq_restore(self, seq_id: int, data: bytes) -> bool:
        if not data:
            return False
        buf = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
        read = int(self._llama_cpp.llama_state_seq_set_data(self._ctx.ctx, buf, len(data), seq_id))
        if read != len(data):
            self.seq_clear(seq_id)
            return False
        return True

    # -- embeddings -------------------------------------------------------------------------

    def texts_of(self, token_inputs: Sequence[Sequence[int]]) -> list[str]:
        """Inputs sent as this model's token ids, as the text they spell."""
        out = []
        for i, ids in enumerate(token_inputs):
            checked = check_token_ids(ids, self.n_vocab, f"input[{i}]")
            out.append(b"".join(self.piece(t) for t in checked).decode("utf-8", "replace"))
        return out

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
        meta = self.metadata
        return {
            "n_ctx": self.n_ctx,
            "n_ctx_train": int(self._model.n_ctx_train()),
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
            "model_size_bytes": int(llama_cpp.llama_model_size(self._model.model)),
            "system_info": llama_cpp.llama_print_system_info().decode("utf-8", "replace"),
            "slots": self.n_slots,
            "slots_reason": self.slots_reason,
            "n_seq_max": self.n_seq_max,
            "n_batch": self.n_batch,
            "flash_attn": self.flash_attn,  # what runs: on | off (auto resolved)
            "flash_attn_setting": self.cfg.flash_attn,
            "kv_unified": self.cfg.kv_unified and not self.cfg.embedding,
            "weight_repack": self.cfg.weight_repack,
            "tool_family": getattr(self, "tool_family", None),
            "infill": not self.fim.missing(),
            "chat_template": self.template.source,
        }
