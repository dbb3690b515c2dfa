"""The engine interface the scheduler drives: one batched decode step over many sequences.

An engine holds one loaded model and one context with `n_seq_max` sequences (a KV
stream each, or one pool with `kv_unified`). The scheduler (in `scheduler.py`) decides
what goes into each step; the engine only runs it. llama.cpp implements it
(`llamacpp.py`) and nothing here names llama.cpp; ONNX LLMs run under their own
`genai_runner.Runner`, as onnxruntime-genai has no per-sequence batched step.

Positions are per sequence: a sequence holding tokens t[0..n) has them at
positions 0..n-1, and the next token it evaluates goes at position n.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from appliance.engines.jump_forward import ForcedText
from appliance.engines.turn_marks import TurnMarkers


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


def error_frame(request_id: str, exc: BaseException) -> dict[str, Any]:
    """The worker's error frame for a request: the engine's own refusal as it is, any other
    exception as an engine failure (500)."""
    if isinstance(exc, EngineRequestError):
        return {
            "type": "error",
            "id": request_id,
            "code": exc.code,
            "status": exc.status,
            "message": exc.message,
            "param": exc.param,
        }
    return {
        "type": "error",
        "id": request_id,
        "code": "engine_error",
        "status": 500,
        "message": f"engine failed: {type(exc).__name__}: {exc}",
    }


def check_token_ids(ids: Sequence[int], n_vocab: int, param: str) -> list[int]:
    """Token ids a client sent, if they can be this model's: an id past its vocabulary
    means another tokenizer's ids (LangChain's OpenAIEmbeddings sends tiktoken's)."""
    for t in ids:
        if not 0 <= int(t) < n_vocab:
            raise EngineRequestError(
                f"'{param}' holds token id {t}, but this model's vocabulary has {n_vocab} "
                "tokens: these look like another tokenizer's ids. Send the text instead (with "
                "LangChain's OpenAIEmbeddings, set check_embedding_ctx_length=False).",
                code="invalid_token_ids",
                param=param,
            )
    return [int(t) for t in ids]


def check_context(n_prompt: int, n_ctx: int, param: str) -> None:
    """A prompt must leave at least one token of the context for the answer."""
    if n_prompt >= n_ctx:
        raise EngineRequestError(
            # "prompt is too long" (Anthropic's words): LangChain raises its
            # ContextOverflowError on it, and Claude clients compact their history.
            f"The prompt is too long: {n_prompt} tokens, and this model's maximum context "
            f"length is {n_ctx} tokens (at least one token must be left for the answer). "
            "Shorten the prompt or load the model with a larger context.",
            code="context_length_exceeded",
            status=400,
            param=param,
        )


class ChatRenderer(Protocol):
    """An engine's chat template: messages (and tools) in, the prompt and whether it
    opens a reasoning block out."""

    def render_chat(
        self,
        messages: Sequence[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
        parallel: bool = True,
        variables: dict[str, Any] | None = None,
    ) -> tuple[str, bool]: ...


def render_chat_frame(
    engine: ChatRenderer, frame: dict[str, Any], params: dict[str, Any]
) -> tuple[str, bool]:
    """A chat request's prompt as the engine's template renders it, with the tools it
    offers (one call or several, as its tool_choice allows)."""
    choice = params.get("tool_choice") or {}
    return engine.render_chat(
        frame.get("messages") or [],
        frame.get("tools") or None,
        parallel=bool(choice.get("parallel", True)),
        variables=dict(frame.get("template_vars") or {}),
    )


class KVFull(RuntimeError):
    """The KV memory has no room for this batch; free cached sequences and try again."""


@dataclass(frozen=True)
class BatchEntry:
    """`tokens` of sequence `seq_id` at positions `pos`, `pos + 1`, ...; `logits`: whether
    the last one's next-token distribution is wanted (to sample from); `all_logits`: every
    token's (to score a prompt, token by token)."""

    seq_id: int
    tokens: Sequence[int]
    pos: int
    logits: bool
    all_logits: bool = False


class TokenSampler(Protocol):
    """One sequence's sampler chain (its own grammar, seed, biases and penalties)."""

    forced: ForcedText | None  # text its grammar allows in one way only (jump_forward)

    def sample(self, output_index: int) -> int:
        """Sample from the logits at `output_index` of the last step, and accept the token."""
        ...

    def accept(self, token: int) -> bool:
        """Take `token` unsampled (forced text); False, taking nothing, if the grammar
        refuses it."""
        ...


class BatchEngine(ChatRenderer, Protocol):
    """What the scheduler needs from an engine."""

    n_ctx: int  # tokens one sequence may hold (prompt + answer)
    n_seq_max: int  # sequences the KV memory can tell apart
    n_batch: int  # tokens one step may carry
    can_truncate: bool  # False for recurrent models: a sequence can only be cleared whole
    prefix_copy: bool  # seq_copy can share a prefix (a unified KV); else sequences are taken over
    gap_fill_tokens: int  # throwaway one-token rows cheaper than one more pass (0: none)
    eos_token_id: int
    bos_token_id: int
    n_vocab: int

    tool_family: str  # how its output spells tool calls (appliance.parsing.Family)

    def prompt_tokens(self, text: str, *, templated: bool) -> list[int]: ...

    def turn_markers(self, variables: Mapping[str, Any] | None = None) -> TurnMarkers:
        """Its chat template's generation prompt and user-turn opening (`turn_marks`)."""
        ...

    def infill_prompt(self, request: dict[str, Any]) -> list[int]:
        """A fill-in-the-middle request's prompt (`infill.py`); raises EngineRequestError
        when the model has no FIM tokens."""
        ...

    def check_context(self, n_prompt: int, param: str) -> None: ...

    def piece(self, token: int) -> bytes: ...

    def forced_tokens(self, text: str) -> list[int]:
        """Forced text as the tokenizer splits it (no BOS), cut where the tokens stop
        spelling it."""
        ...

    def is_eog(self, token: int) -> bool: ...

    def new_sampler(self, params: dict[str, Any], prompt: Sequence[int] = ()) -> TokenSampler:
        """A sampler for one request (its penalties count `prompt`'s tokens); raises
        EngineRequestError for a bad grammar or schema."""
        ...

    def token_logprobs(self, output_index: int, token: int, top_n: int) -> dict[str, Any]:
        """A sampled token's log probability (and the `top_n` likeliest) at `output_index`."""
        ...

    def decode(self, entries: Sequence[BatchEntry]) -> list[int]:
        """Run one step; return, per entry with `logits`, its output index (for `sample`),
        and per entry with `all_logits`, one output index per token, in order.

        Raises KVFull when the KV memory has no room, leaving all sequences as they were.
        """
        ...

    def seq_clear(self, seq_id: int) -> None: ...

    def seq_truncate(self, seq_id: int, n_keep: int) -> None:
        """Keep only positions [0, n_keep) of the sequence."""
        ...

    def seq_copy(self, src: int, dst: int, n_tokens: int) -> None:
        """Make `dst` hold the first `n_tokens` positions of `src` (dst must be empty)."""
        ...

    def seq_save(self, seq_id: int) -> bytes: ...

    def seq_restore(self, seq_id: int, data: bytes) -> bool: ...

    def info(self) -> dict[str, Any]: ...
