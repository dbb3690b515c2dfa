"""One request's llama.cpp sampler chain, as llama-server builds it: logit bias,
penalties and DRY (both fed the prompt's last tokens first, as llama-server feeds them),
the answer's grammar (a response format, a GBNF `grammar`, or the tool calls'), then
either greedy, or top_n_sigma, top_k, typical_p, top_p, min_p, XTC and temperature
(dynamic with dynatemp_range) before the draw, or temperature then Mirostat.
"""

from __future__ import annotations

import ctypes
import random
from collections.abc import Sequence
from typing import Any

from appliance.engines.engine import EngineRequestError
from appliance.engines.jump_forward import ForcedText
from appliance.engines.llama_log import captured_log, captured_stderr
from appliance.engines.tool_grammar import tool_constraint
from appliance.parsing.constraints import json_gbnf

__all__ = ["LlamaSampling", "LlamaSequenceSampler"]


class LlamaSequenceSampler:
    """A llama.cpp sampler chain bound to the engine's context."""

    def __init__(
        self, chain: Any, ctx: Any, grammar: Any = None, forced: ForcedText | None = None
    ) -> None:
        import llama_cpp

        self._lib: Any = llama_cpp
        self._chain = chain
        self._ctx = ctx
        self._grammar = grammar  # the chain's grammar sampler, None without one
        self.forced = forced

    def sample(self, output_index: int) -> int:
        # llama_sampler_sample applies the chain and accepts the token itself.
        return int(self._chain.sample(self._ctx, output_index))

    def accept(self, token: int) -> bool:
        """Take `token` as if sampled; False (and nothing taken) where the grammar refuses
        it: llama.cpp's grammar aborts the process on a token it cannot accept."""
        lib = self._lib
        if self._grammar is not None:
            data = (lib.llama_token_data * 1)()
            data[0].id, data[0].logit, data[0].p = token, 0.0, 0.0
            candidates = lib.llama_token_data_array(data=data, size=1, selected=-1, sorted=False)
            lib.llama_sampler_apply(self._grammar, ctypes.byref(candidates))
            if data[0].logit == float("-inf"):
                return False
        lib.llama_sampler_accept(self._chain.sampler, token)
        return True


class LlamaSampling:
    """Builds sampler chains for one loaded model."""

    def __init__(
        self,
        *,
        model: Any,
        ctx: Any,
        n_ctx: int,
        eog_ids: Sequence[int],
        tool_family: str,
        template: str,
    ) -> None:
        import llama_cpp

        self._lib: Any = llama_cpp
        self._model = model
        self._ctx = ctx
        self.n_ctx = n_ctx
        self.n_vocab = int(model.n_vocab())
        self._eog_ids = list(eog_ids)
        self.tool_family = tool_family
        self.template = template

    def _add_penalties(self, chain: Any, params: dict[str, Any], prompt: Sequence[int]) -> None:
        """The repeat, frequency and presence penalties over the last `repeat_last_n`
        tokens (64 by default, -1 the whole context, 0 none) of the prompt and the answer,
        as llama-server and llama-cpp-python count them: the prompt's tokens are fed to the
        penalties first (not to the grammar)."""
        repeat = float(params.get("repeat_penalty") or 1.0)
        freq = float(params.get("frequency_penalty") or 0.0)
        present = float(params.get("presence_penalty") or 0.0)
        last_n = params.get("repeat_last_n")
        last_n = 64 if last_n is None else int(last_n)
        if last_n < 0:
            last_n = self.n_ctx
        if (repeat, freq, present) == (1.0, 0.0, 0.0) or last_n == 0:
            return
        lib = self._lib
        at = lib.llama_sampler_chain_n(chain.sampler)
        chain.add_penalties(
            n_vocab=self.n_vocab,
            penalty_last_n=last_n,
            penalty_repeat=repeat,
            penalty_freq=freq,
            penalty_present=present,
        )
        self._feed(chain, at, prompt[-last_n:])

    def _feed(self, chain: Any, at: int, tokens: Sequence[int]) -> None:
        """Give the chain's sampler at `at` the prompt's tokens, as if it had seen them."""
        lib = self._lib
        sampler = lib.llama_sampler_chain_get(chain.sampler, at)
        for token in tokens:
            lib.llama_sampler_accept(sampler, token)

    def _add_dry(self, chain: Any, extra: dict[str, Any], prompt: Sequence[int]) -> None:
        """DRY (repeated sequences penalised by their length), fed the prompt too."""
        last_n = int(extra["dry_penalty_last_n"])
        last_n = self.n_ctx if last_n < 0 else last_n
        if float(extra["dry_multiplier"]) <= 0.0 or last_n == 0:
            return
        at = self._lib.llama_sampler_chain_n(chain.sampler)
        chain.add_dry(
            self._model,
            float(extra["dry_multiplier"]),
            float(extra["dry_base"]),
            int(extra["dry_allowed_length"]),
            last_n,
            list(extra["dry_sequence_breakers"]),
        )
        self._feed(chain, at, prompt[-last_n:])

    def _add_draw(self, chain: Any, params: dict[str, Any], seed: int) -> None:
        """The samplers that pick the token, in llama-server's order."""
        extra: dict[str, Any] = params.get("samplers") or {}
        temperature = float(params.get("temperature", 1.0))
        if temperature <= 0.0 or float(params.get("top_p", 1.0)) <= 0.0:  # top_p 0: one token
            chain.add_greedy()
            return
        dynatemp = float(extra.get("dynatemp_range", 0.0))
        mirostat = int(extra.get("mirostat", 0))
        if mirostat:
            chain.add_temp(temperature)
            tau, eta = float(extra["mirostat_tau"]), float(extra["mirostat_eta"])
            if mirostat == 1:
                chain.add_mirostat(self.n_vocab, seed, tau, eta, 100)
            else:
                chain.add_mirostat_v2(seed, tau, eta)
            return
        order = [str(n) for n in params.get("sampler_order") or ()]
        if order:
            for name in order:
                self._add_one(chain, name, params, extra, seed)
            chain.add_dist(seed)
            return
        if float(extra.get("top_n_sigma", -1.0)) > 0.0:
            chain.add_top_n_sigma(float(extra["top_n_sigma"]))
        top_k = params.get("top_k")
        min_p = params.get("min_p")
        chain.add_top_k(int(top_k) if top_k is not None else 40)
        if float(extra.get("typical_p", 1.0)) < 1.0:
            chain.add_typical(float(extra["typical_p"]), 1)
        chain.add_top_p(float(params.get("top_p", 1.0)), 1)
        chain.add_min_p(float(min_p) if min_p is not None else 0.05, 1)
        if float(extra.get("xtc_probability", 0.0)) > 0.0:
            chain.add_xtc(float(extra["xtc_probability"]), float(extra["xtc_threshold"]), 1, seed)
        if dynatemp > 0.0:
            chain.add_temp_ext(temperature, dynatemp, float(extra["dynatemp_exponent"]))
        else:
            chain.add_temp(temperature)
        chain.add_dist(seed)

    def _add_one(
        self, chain: Any, name: str, params: dict[str, Any], extra: dict[str, Any], seed: int
    ) -> None:
        """One sampler of a request's own order (llama-server's `samplers`), with the
        request's settings or llama-server's defaults."""
        if name == "top_k":
            top_k = params.get("top_k")
            chain.add_top_k(int(top_k) if top_k is not None else 40)
        elif name == "typ_p":
            chain.add_typical(float(extra.get("typical_p", 1.0)), 1)
        elif name == "top_p":
            chain.add_top_p(float(params.get("top_p", 1.0)), 1)
        elif name == "min_p":
            min_p = params.get("min_p")
            chain.add_min_p(float(min_p) if min_p is not None else 0.05, 1)
        elif name == "xtc" and float(extra.get("xtc_probability", 0.0)) > 0.0:
            chain.add_xtc(float(extra["xtc_probability"]), float(extra["xtc_threshold"]), 1, seed)
        elif name == "top_n_sigma" and float(extra.get("top_n_sigma", -1.0)) > 0.0:
            chain.add_top_n_sigma(float(extra["top_n_sigma"]))
        elif name == "temperature":
            temperature = float(params.get("temperature", 1.0))
            dynatemp = float(extra.get("dynatemp_range", 0.0))
            if dynatemp > 0.0:
                chain.add_temp_ext(temperature, dynatemp, float(extra["dynatemp_exponent"]))
            else:
                chain.add_temp(temperature)
        elif name == "infill":
            # Code completion: ends the middle early once the end of text is likely enough.
            infill = self._lib.llama_sampler_init_infill(self._model.vocab)
            self._lib.llama_sampler_chain_add(chain.sampler, infill)

    def _answer_gbnf(self, params: dict[str, Any]) -> tuple[str, str, str] | None:
        """The GBNF of the request's own `grammar` or its response format, with the error
        code and parameter a grammar llama.cpp refuses is reported under."""
        if params.get("grammar"):
            return str(params["grammar"]), "invalid_grammar", "grammar"
        fmt = params.get("response_format")
        kind = fmt.get("type") if fmt else None
        if kind == "json_object":
            from llama_cpp.llama_grammar import JSON_GBNF

            return JSON_GBNF, "invalid_json_schema", "response_format"
        if kind == "json_schema":
            try:
                gbnf = json_gbnf(fmt.get("schema") or {}) if fmt else ""
            except Exception as exc:
                raise EngineRequestError(
                    f"response_format: the JSON schema cannot be turned into a grammar: {exc}",
                    code="invalid_json_schema",
                    param="response_format",
                ) from exc
            return gbnf, "invalid_json_schema", "response_format"
        return None

    def _add_grammar(
        self, chain: Any, gbnf: str, trigger: str | None, code: str, param: str
    ) -> Any:
        """Add a grammar sampler to `chain` (lazy: from `trigger` on). llama.cpp gives no
        sampler for a grammar it cannot parse (it logs why); chained as is, that null
        would crash the worker at the first token, so the request is refused instead."""
        lib = self._lib
        vocab = self._model.vocab

        def init() -> Any:
            if trigger is None:
                return lib.llama_sampler_init_grammar(vocab, gbnf.encode(), b"root")
            patterns = (ctypes.c_char_p * 1)(trigger.encode())
            return lib.llama_sampler_init_grammar_lazy_patterns(
                vocab, gbnf.encode(), b"root", patterns, 1, None, 0
            )

        sampler = init()
        if not sampler:
            # Parsed again to hear why (parsing is deterministic): the parser prints its
            # reason ("Undefined rule identifier ...") on stderr, then the whole grammar.
            with captured_log() as log, captured_stderr() as printed:
                init()
            said = [line.strip() for line in printed[:1] + log if line.strip()]
            why = " ".join(dict.fromkeys(said))[:500]
            raise EngineRequestError(
                f"{param}: llama.cpp cannot use this grammar: {why or 'it does not parse'}",
                code=code,
                param=param,
            )
        lib.llama_sampler_chain_add(chain.sampler, sampler)
        return sampler

    def new_sampler(
        self, params: dict[str, Any], prompt: Sequence[int] = ()
    ) -> LlamaSequenceSampler:
        """The request's sampler chain (see the module); raises EngineRequestError for
        what llama.cpp cannot take (a grammar, a bias outside the vocabulary)."""
        from llama_cpp import _internals

        try:
            constraint = tool_constraint(self.tool_family, params, self.template)
        except ValueError as exc:  # a schema no grammar can follow ($ref cycle, counts)
            raise EngineRequestError(
                f"tools: {exc}", code="invalid_tool_schema", param="tools"
            ) from exc
        # With tools, the calls' grammar holds the response format where it applies.
        answer = self._answer_gbnf(params) if constraint is None else None
        seed = params.get("seed")
        seed = int(seed) & 0xFFFFFFFF if seed is not None else random.getrandbits(32)
        sampler_cls: Any = _internals.LlamaSampler  # untyped in llama-cpp-python
        s = sampler_cls()
        bias: dict[int, float] = {}
        for key, value in (params.get("logit_bias") or {}).items():
            token = int(key)
            if not 0 <= token < self.n_vocab:  # a bias meant for another model's tokens
                raise EngineRequestError(
                    f"logit_bias: token id {token} is not in this model's vocabulary "
                    f"(0 to {self.n_vocab - 1})",
                    code="invalid_logit_bias",
                    param="logit_bias",
                )
            bias[token] = float(value)
        if params.get("ignore_eos"):
            for token in self._eog_ids:
                bias[token] = float("-inf")
        if bias:
            s.add_logit_bias(self.n_vocab, bias)
        self._add_penalties(s, params, prompt)
        if params.get("samplers"):
            self._add_dry(s, params["samplers"], prompt)
        grammar = None
        if answer is not None:
            grammar = self._add_grammar(s, answer[0], None, answer[1], answer[2])
        forced = None
        if constraint is not None:
            grammar = self._add_grammar(
                s, constraint.gbnf, constraint.trigger, "invalid_tool_schema", "tools"
            )
            # Log probabilities are reported for sampled tokens only: none are skipped.
            if params.get("logprobs") is None:
                forced = constraint.forced
        self._add_draw(s, params, seed)
        return LlamaSequenceSampler(s, self._ctx, grammar, forced)
