"""llama-server's own request and answer shapes (`/completion`, `/infill`), apart from I/O.

Clients written against llama-server (SillyTavern's llama.cpp mode, llama.vscode and
llama.vim, Continue's llama.cpp provider, scripts) send its fields and read its answer:
`content`, `stop`, `stop_type`, `timings`, `tokens_evaluated`... A request is read
into a `/v1/completions` body (the validation and the engine path are shared) with
llama-server's defaults where the client gave none, and the worker's frames are written
back in llama-server's shape. `FimLimits` holds the two stops code editors rely on:
`n_indent` (a line indented less than the cursor ends the answer) and
`t_max_predict_ms` (time up, once a line is complete).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from appliance.api.errors import invalid_request
from appliance.api.schemas import MAX_TOP_LOGPROBS, CompletionRequest
from appliance.engines.protocol import Frame

__all__ = [
    "LLAMA_SERVER_DEFAULTS",
    "FimLimits",
    "completion_body",
    "final_result",
    "generation_settings",
    "partial_result",
    "probabilities",
    "select_fields",
    "stop_type",
    "timings",
]

# llama-server's sampling defaults: a client that sends only a prompt gets its answer.
LLAMA_SERVER_DEFAULTS: dict[str, Any] = {
    "temperature": 0.8,
    "top_k": 40,
    "top_p": 0.95,
    "min_p": 0.05,
}
# Fields of llama-server's that change nothing here: prompt caching is always on, slots
# are the scheduler's, and the others tune its own server.
IGNORED = (
    "cache_prompt",
    "id_slot",
    "n_keep",
    "n_discard",
    "n_cache_reuse",
    "timings_per_token",
    "return_progress",
    "sse_ping_interval",
    "t_max_prompt_ms",
    "min_keep",
    "suffix",
)


# Where llama-server takes any value and the OpenAI routes' checks would refuse it (a
# client's slider past OpenAI's range): the value llama.cpp would in effect use.
_CLAMPED = {
    "temperature": (0.0, 2.0),
    "top_p": (0.0, 1.0),
    "min_p": (0.0, 1.0),
    "presence_penalty": (-2.0, 2.0),
    "frequency_penalty": (-2.0, 2.0),
}


def clamp_sampling(out: dict[str, Any]) -> None:
    """Numbers past the OpenAI routes' ranges brought into them; top_k <= 0 is off."""
    for key, (low, high) in _CLAMPED.items():
        value = out.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[key] = min(max(value, low), high)
    top_k = out.get("top_k")
    if isinstance(top_k, int) and not isinstance(top_k, bool) and top_k < 0:
        out["top_k"] = 0


def completion_body(body: Mapping[str, Any], max_tokens_limit: int) -> dict[str, Any]:
    """A llama-server `/completion` body as the `/v1/completions` body that asks the same."""
    out = {k: v for k, v in body.items() if k not in IGNORED}
    for key, value in LLAMA_SERVER_DEFAULTS.items():
        if out.get(key) is None:
            out[key] = value
    clamp_sampling(out)
    n_predict = out.pop("n_predict", None)
    if n_predict is None:
        n_predict = out.pop("max_tokens", -1)
    if isinstance(n_predict, int) and not isinstance(n_predict, bool):
        # llama-server takes any count (the context's end stops it); so do we. 0 (editors
        # send it to read context into the cache) makes one token, as llama-server does.
        n_predict = -1 if n_predict < 0 or n_predict > max_tokens_limit else max(n_predict, 1)
    out["max_tokens"] = n_predict
    n_probs = out.pop("n_probs", None)
    if n_probs is not None:
        if not isinstance(n_probs, int) or isinstance(n_probs, bool):
            raise invalid_request(
                f"'n_probs' must be an integer, got {n_probs!r}.", param="n_probs"
            )
        out["logprobs"] = min(n_probs, MAX_TOP_LOGPROBS) if n_probs > 0 else None
    if "logit_bias" in out:
        out["logit_bias"] = _logit_bias(out["logit_bias"])
    n_cmpl = out.pop("n_cmpl", None)
    if n_cmpl is not None:
        out["n"] = n_cmpl
    lora = out.pop("lora", None)
    if lora:
        raise invalid_request("LoRA adapters are not supported by this server.", param="lora")
    out.pop("stream_options", None)
    return out


def _logit_bias(value: Any) -> Any:
    """llama-server's `[[token, bias], ...]` (bias false: never) as OpenAI's mapping; the
    mapping form passes as it is."""
    if not isinstance(value, list):
        return value
    out: dict[str, float] = {}
    for i, pair in enumerate(value):
        if not (isinstance(pair, list) and len(pair) == 2):
            raise invalid_request(
                f"'logit_bias[{i}]' must be a [token id, bias] pair, got {pair!r}.",
                param="logit_bias",
            )
        token, bias = pair
        if isinstance(token, str):
            raise invalid_request(
                f"'logit_bias[{i}]' names a token by its text ({token!r}); give its id "
                "(POST /tokenize tells it).",
                param="logit_bias",
            )
        if bias is False:
            bias = -100.0
        if isinstance(bias, bool) or not isinstance(bias, int | float):
            raise invalid_request(
                f"'logit_bias[{i}]' bias must be a number or false, got {bias!r}.",
                param="logit_bias",
            )
        out[str(token)] = max(-100.0, min(100.0, float(bias)))
    return out


def stop_type(done: Frame, cut: bool = False) -> tuple[str, str]:
    """llama-server's `stop_type` and `stopping_word` for a finished request; `cut`: a
    FIM limit ended it."""
    if cut:
        return "limit", ""
    if done.get("finish_reason") == "length":
        return "limit", ""
    word = done.get("stop_sequence")
    if word is not None:
        return "word", str(word)
    return "eos", ""


def timings(done: Frame) -> dict[str, Any]:
    """llama-server's `timings` from the worker's done frame."""
    cached = int(done.get("cached_tokens", 0))
    prompt_n = max(0, int(done.get("prompt_tokens", 0)) - cached)
    prompt_ms = float(done.get("prompt_s", 0.0)) * 1000.0
    predicted_n = int(done.get("completion_tokens", 0))
    predicted_ms = float(done.get("decode_s", 0.0)) * 1000.0

    def per_token(ms: float, n: int) -> float:
        return ms / n if n else 0.0

    def per_second(ms: float, n: int) -> float:
        return 1000.0 * n / ms if ms > 0 else 0.0

    return {
        "cache_n": cached,
        "prompt_n": prompt_n,
        "prompt_ms": prompt_ms,
        "prompt_per_token_ms": per_token(prompt_ms, prompt_n),
        "prompt_per_second": per_second(prompt_ms, prompt_n),
        "predicted_n": predicted_n,
        "predicted_ms": predicted_ms,
        "predicted_per_token_ms": per_token(predicted_ms, predicted_n),
        "predicted_per_second": per_second(predicted_ms, predicted_n),
    }


def probabilities(entries: list[dict[str, Any]], post_sampling: bool) -> list[dict[str, Any]]:
    """`completion_probabilities` from the worker's logprob entries. With
    `post_sampling_probs` the values are probabilities (of the raw distribution: this
    server reports the model's, before the sampler chain)."""
    value_key, list_key = ("prob", "top_probs") if post_sampling else ("logprob", "top_logprobs")

    def one(e: dict[str, Any]) -> dict[str, Any]:
        logprob = float(e["logprob"])
        return {
            "id": e.get("id"),
            "token": e["token"],
            "bytes": e["bytes"],
            value_key: math.exp(logprob) if post_sampling else logprob,
        }

    return [{**one(e), list_key: [one(t) for t in e.get("top_logprobs", [])]} for e in entries]


def generation_settings(req: CompletionRequest, n_ctx: int | None, model: str) -> dict[str, Any]:
    """The settings a request ran with, as llama-server lists them."""
    p = req.params
    return {
        "n_ctx": n_ctx,
        "model": model,
        "n_predict": p.max_tokens,
        "seed": p.seed if p.seed is not None else 0xFFFFFFFF,  # llama-server's "random"
        "temperature": p.temperature,
        "top_k": p.top_k if p.top_k is not None else 0,
        "top_p": p.top_p,
        "min_p": p.min_p if p.min_p is not None else 0.0,
        "repeat_penalty": p.repeat_penalty if p.repeat_penalty is not None else 1.0,
        "repeat_last_n": p.repeat_last_n if p.repeat_last_n is not None else 64,
        "presence_penalty": p.presence_penalty,
        "frequency_penalty": p.frequency_penalty,
        "stop": list(p.stop),
        "ignore_eos": p.ignore_eos,
        "stream": req.stream,
        "n_probs": p.logprobs or 0,
        "grammar": p.grammar or "",
        **p.samplers,
    }


@dataclass
class FimLimits:
    """Code editors' stops: `n_indent` ends the answer at a new line indented less than
    that (the line's text is cut, its indentation kept), `t_max_ms` at the first line end
    after that long since the first token. As llama-server applies them."""

    n_indent: int = 0
    t_max_ms: float = 0.0
    text: str = ""
    first_at: float | None = None
    last_nl: int = 0
    cut: bool = field(default=False, init=False)

    @classmethod
    def of(cls, body: Mapping[str, Any]) -> FimLimits:
        """The request's limits; a negative one is off, as llama-server takes it."""
        n_indent = body.get("n_indent") or 0
        t_max = body.get("t_max_predict_ms") or 0
        for key, value in (("n_indent", n_indent), ("t_max_predict_ms", t_max)):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise invalid_request(f"'{key}' must be a number, got {value!r}.", param=key)
        return cls(max(int(n_indent), 0), max(float(t_max), 0.0))

    def feed(self, piece: str, now: float) -> tuple[str, bool]:
        """The part of `piece` to send, and whether the answer ends with it."""
        if self.first_at is None:
            self.first_at = now
        start = len(self.text)
        self.text += piece
        if self.n_indent > 0 and self.last_nl > 0:
            pos = self.last_nl
            while pos < len(self.text) and self.text[pos] in " \t":
                pos += 1
            if pos < len(self.text) and pos - self.last_nl < self.n_indent:
                self.text = self.text[:pos]
                self.cut = True
                return self.text[start:], True
        if self.n_indent > 0:
            nl = self.text.find("\n", self.last_nl)
            if nl >= 0:
                self.last_nl = nl + 1
        # The time limit is looked at on a new line only: the answer ends with a whole line.
        if "\n" in piece and self.t_max_ms > 0 and (now - self.first_at) * 1000 > self.t_max_ms:
            self.cut = True
            return piece, True
        return piece, False


def partial_result(
    index: int,
    content: str,
    ids: list[int],
    predicted: int,
    evaluated: int,
    probs: list[dict[str, Any]] | None,
) -> dict[str, Any]:
    """One streamed chunk, as llama-server sends it."""
    out: dict[str, Any] = {
        "index": index,
        "content": content,
        "tokens": ids,
        "stop": False,
        "id_slot": -1,
        "tokens_predicted": predicted,
        "tokens_evaluated": evaluated,
    }
    if probs:
        out["completion_probabilities"] = probs
    return out


def final_result(
    index: int,
    content: str,
    ids: list[int],
    done: Frame,
    settings: dict[str, Any],
    prompt: str,
    cut: bool,
    probs: list[dict[str, Any]] | None,
) -> dict[str, Any]:
    """The last answer of one completion (in a stream, its content was sent already)."""
    kind, word = stop_type(done, cut)
    prompt_n = int(done.get("prompt_tokens", 0))
    predicted = int(done.get("completion_tokens", 0))
    out: dict[str, Any] = {
        "index": index,
        "content": content,
        "tokens": ids,
        "id_slot": -1,
        "stop": True,
        "model": settings.get("model"),
        "tokens_predicted": predicted,
        "tokens_evaluated": prompt_n,
        "generation_settings": settings,
        "prompt": prompt,
        "has_new_line": "\n" in content,
        "truncated": False,  # a prompt over the context is refused, never cut
        "stop_type": kind,
        "stopping_word": word,
        "tokens_cached": prompt_n + max(predicted - 1, 0),  # the last token is not read
        "timings": timings(done),
    }
    if probs is not None:
        out["completion_probabilities"] = probs
    return out


def select_fields(fields: Any, result: dict[str, Any]) -> dict[str, Any]:
    """llama-server's `response_fields`: only those, `a/b` taken out of `a` and named
    `a/b`; a missing one is left out."""
    if not fields:
        return result
    if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
        raise invalid_request(
            "'response_fields' must be a list of field names.", param="response_fields"
        )
    out: dict[str, Any] = {}
    for name in fields:
        value: Any = result
        for part in name.split("/"):
            if not isinstance(value, dict) or part not in value:
                break
            value = value[part]
        else:
            out[name] = value
    return out
