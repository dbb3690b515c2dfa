"""The ONNX LLM engine: one model folder on onnxruntime-genai, one generator per request.

onnxruntime-genai brings the KV cache, sampling (seeded), the tokenizer with streaming
detokenization and constrained decoding (llguidance: JSON schema) for each
`og.Generator`. Its batching `og.Engine` is not used: on a model exported for the CPU
it batches statically (a request arriving during a batch waits for the whole batch
to finish) and refuses per-request seeds and stop strings, so a request here gets its
own generator and `genai_runner.Runner` advances the active ones in turn, one token
each. Chat prompts render in our sandboxed template, as for GGUF; stop strings,
`max_tokens` and finish reasons are ours (`sequence.Sequence`), so both engines
answer alike. Only the worker imports this module.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.engines.chat_prompt import TemplateChat
from appliance.engines.chat_template import ChatTemplate
from appliance.engines.engine import EngineRequestError, check_context
from appliance.engines.llamacpp import FALLBACK_TEMPLATE, default_threads
from appliance.engines.tool_grammar import answer_schema, tools_active
from appliance.hardware import AMDGPU_EP_ENV, amdgpu_ep_library
from appliance.parsing import detect_family
from appliance.store.model_folder import read_folder_info


@dataclass(frozen=True)
class GenaiConfig:
    model_path: str
    n_ctx: int = 4096  # per sequence
    n_threads: int | None = None
    use_gpu: bool = False  # the CUDA provider when onnxruntime-genai-cuda is installed
    chat_template: str | None = None
    n_slots: int = 1
    tool_parser: str | None = None  # the output family's name, when not the template's


# Sampling parameters onnxruntime-genai has no equivalent for: refused, never ignored.
UNSUPPORTED = {
    "grammar": "grammar (a GBNF grammar: llama.cpp's; use response_format's JSON schema)",
    "samplers": "llama-server's samplers (typical_p, top_n_sigma, XTC, DRY, dynatemp, mirostat)",
    "logit_bias": "logit_bias",
    "frequency_penalty": "frequency_penalty",
    "presence_penalty": "presence_penalty",
}


def choose_provider(
    use_gpu: bool, precision: str, *, cuda: bool, amdgpu_ep: str | None = None
) -> tuple[str, str]:
    """(provider, why): the GPU's provider when a GPU is asked for and the build has one,
    else the CPU; FP8 needs CUDA."""
    if use_gpu and cuda:
        return "cuda", "onnxruntime-genai-cuda found a CUDA device"
    if precision == "fp8":
        raise EngineRequestError(
            "this model has FP8 weights, which onnxruntime runs only on an NVIDIA GPU "
            "(the CUDA execution provider: onnxruntime-genai-cuda and onnxruntime-gpu, "
            "on an Ada/Hopper-class GPU); this box would serve it on the CPU, where FP8 "
            "has no kernels: use the INT4 or FP16 build of the model instead",
            code="unsupported_precision",
            status=400,
        )
    if use_gpu and amdgpu_ep is not None:
        return "amdgpu", f"AMD's amdgpu provider (MIGraphX) from {AMDGPU_EP_ENV}={amdgpu_ep}"
    if use_gpu:
        return "cpu", (
            "no GPU provider in this onnxruntime-genai build: the CPU package, without "
            f"onnxruntime-genai-cuda (NVIDIA) or AMD's amdgpu provider ({AMDGPU_EP_ENV}, AMD)"
        )
    return "cpu", "the model is placed on the CPU"


class GenaiEngine(TemplateChat):
    def __init__(self, cfg: GenaiConfig) -> None:
        import onnxruntime_genai as og

        self._og = og
        self.cfg = cfg
        started = time.monotonic()
        folder = Path(cfg.model_path)
        facts = read_folder_info(folder)
        self.precision = facts.quantization
        self.provider, self.provider_reason = choose_provider(
            cfg.use_gpu,
            self.precision,
            cuda=bool(og.is_cuda_available()),
            amdgpu_ep=amdgpu_ep_library(),
        )
        self.threads = cfg.n_threads or default_threads()
        config = og.Config(str(folder))
        config.clear_providers()
        if self.provider != "cpu":
            config.append_provider(self.provider)
        session = {"intra_op_num_threads": self.threads, "inter_op_num_threads": 1}
        config.overlay(json.dumps({"model": {"decoder": {"session_options": session}}}))
        self.model = og.Model(config)
        self.tokenizer = og.Tokenizer(self.model)
        ctx_train = facts.context_length or cfg.n_ctx
        self.n_ctx = min(cfg.n_ctx, ctx_train)
        self.n_ctx_train = ctx_train
        self.n_slots = max(1, cfg.n_slots)
        self.eog_ids = frozenset(int(t) for t in self.tokenizer.eos_token_ids)
        self.n_vocab = int(facts.vocab_size or 0) or 1 << 31
        template_src = cfg.chat_template or facts.chat_template
        self.template_from_model = template_src is not None and cfg.chat_template is None
        bos = facts.bos_token or ""
        self._bos_text = bos
        self.template = ChatTemplate(
            template_src or FALLBACK_TEMPLATE, bos_token=bos, eos_token=facts.eos_token or ""
        )
        self.facts = facts
        self.tool_family = detect_family(template_src, override=cfg.tool_parser).value
        self.special_tokens = _special_tokens(folder / "tokenizer.json")
        self.shown = self._shown_specials(template_src, bos)
        self._warm_up()
        self.load_s = time.monotonic() - started

    def _warm_up(self) -> None:
        """One token at load: the first request must not pay for session setup."""
        gen = self.new_generator([self.bos_or_zero()], {"max_tokens": 1, "temperature": 0})
        gen.append_tokens([self.bos_or_zero()])
        gen.generate_next_token()

    def _shown_specials(self, template_src: str | None, bos: str) -> dict[int, bytes]:
        """Special tokens an answer shows as their text (the tokenizer's stream skips them
        all): those the chat template writes, a family's markup its parser reads, less an
        end, the BOS and what opens a user's turn, as the llama.cpp engine shows them."""
        if not template_src:
            return {}
        user_start = self.turn_markers().user_start
        return {
            token: text.encode("utf-8")
            for text, token in self.special_tokens.items()
            if text in template_src
            and token not in self.eog_ids
            and text != bos
            and text not in user_start
        }

    def bos_or_zero(self) -> int:
        bos = self.facts.bos_token_id
        return bos if bos is not None and bos >= 0 else 0

    # -- prompts ----------------------------------------------------------------------------

    def prompt_tokens(self, text: str) -> list[int]:
        return [int(t) for t in self.tokenizer.encode(text)]

    def tokenize_text(self, text: str, *, add_special: bool, parse_special: bool) -> list[int]:
        """`/tokenize`: the tokenizer's own encoding (it adds what its config says)."""
        return self.prompt_tokens(text)

    def special_piece(self, token: int) -> bytes:
        return str(self.tokenizer.decode([token])).encode("utf-8")

    def check_context(self, n_prompt: int, param: str) -> None:
        check_context(n_prompt, self.n_ctx, param)

    # -- generating -------------------------------------------------------------------------

    def check_params(self, params: dict[str, Any]) -> Any:
        """Generator parameters for a request, or EngineRequestError for what onnxruntime-genai
        cannot honour (a sampling option it lacks, a schema llguidance refuses): checked
        when the request arrives, before it is accepted."""
        og = self._og
        params.update(self._eos_bans(params))
        if params.get("logprobs") is not None:
            raise EngineRequestError(
                "logprobs are not supported by the ONNX engine (onnxruntime-genai)",
                code="unsupported_parameter",
                param="logprobs",
            )
        if params.get("echo"):
            raise EngineRequestError(
                "echo of a prompt sent as token ids, or with max_tokens 0, is not supported "
                "by the ONNX engine (onnxruntime-genai); send the prompt as text",
                code="unsupported_parameter",
                param="echo",
            )
        for key, name in UNSUPPORTED.items():
            value = params.get(key)
            if value not in (None, 0, 0.0, {}):
                raise EngineRequestError(
                    f"{name} is not supported by the ONNX engine (onnxruntime-genai)",
                    code="unsupported_parameter",
                    param=name,
                )
        last_n = params.get("repeat_last_n")
        if last_n not in (None, -1, 0) and params.get("repeat_penalty") not in (None, 1.0):
            raise EngineRequestError(
                "repeat_last_n: the ONNX engine's repetition penalty counts every token of "
                "prompt and answer (-1); it cannot look back a set number (0 turns it off)",
                code="unsupported_parameter",
                param="repeat_last_n",
            )
        gp = og.GeneratorParams(self.model)
        # With tools, the calls' grammar holds the response format where it applies; with
        # none (after an opened reasoning block) the format must not force JSON into it.
        tools_on = tools_active(params)
        guidance = self._tool_guidance(params) if tools_on else _guidance(params)
        if guidance is not None:
            try:
                gp.set_guidance(*guidance)
                # The grammar is built with a generator: a two-token one tells now.
                probe = og.GeneratorParams(self.model)
                probe.set_guidance(*guidance)
                probe.set_search_options(max_length=2)
                og.Generator(self.model, probe)
            except Exception as exc:
                if tools_on:
                    raise EngineRequestError(
                        f"tools: a grammar for these tool schemas cannot be used: {exc}",
                        code="invalid_tool_schema",
                        param="tools",
                    ) from exc
                raise EngineRequestError(
                    f"response_format: the JSON schema cannot be used: {exc}",
                    code="invalid_json_schema",
                    param="response_format",
                ) from exc
        return gp

    def _eos_bans(self, params: dict[str, Any]) -> dict[str, Any]:
        """A `logit_bias` that only bans end-of-sequence tokens (what benchmarks send to get
        exactly max_tokens) is honoured as `ignore_eos`; any other bias stays refused."""
        bias = params.get("logit_bias") or {}
        try:
            banned = {int(k) for k, v in bias.items() if float(v) <= -100}
        except (TypeError, ValueError):
            return {}
        if bias and banned == {int(k) for k in bias} and banned <= self.eog_ids:
            return {"logit_bias": None, "ignore_eos": True}
        return {}

    def _tool_guidance(self, params: dict[str, Any]) -> tuple[str, str] | None:
        """A lark grammar when a tool call is required (or named): the answer is the call;
        with "auto" and a response format: calls or JSON in that format. Not with "auto"
        alone (llguidance has no lazy trigger here) nor after a prompt that opened a
        reasoning block: the parser then reads whatever the model wrote, and a call it
        cannot read is flagged, not lost."""
        choice = params["tool_choice"]
        tools = params["tools"]
        mode = choice.get("mode")
        answer = answer_schema(params.get("response_format")) if mode == "auto" else None
        if mode not in ("required", "named") and answer is None:
            return None
        if params.get("reasoning_started"):
            return None
        from appliance.parsing import Family
        from appliance.parsing.constraints import tool_call_lark

        lark = tool_call_lark(
            Family(self.tool_family),
            tools,
            parallel=bool(choice.get("parallel", True)),
            name=choice.get("name"),
            template=self.template.source,
            special_tokens=self.special_tokens,
            answer=answer,
        )
        return "lark_grammar", lark

    def new_generator(self, prompt: list[int], params: dict[str, Any]) -> Any:
        """A generator for `prompt` (its KV memory is taken now; the caller feeds the prompt
        with `append_tokens`, in chunks)."""
        og = self._og
        gp = self.check_params(params)
        max_tokens = int(params.get("max_tokens", 256))
        options: dict[str, Any] = {"max_length": min(len(prompt) + max_tokens, self.n_ctx)}
        temperature = float(params.get("temperature", 1.0))
        if temperature <= 0.0 or float(params.get("top_p", 1.0)) <= 0.0:  # top_p 0: one token
            options["do_sample"] = False
        else:
            top_k = params.get("top_k")
            options.update(
                do_sample=True,
                temperature=temperature,
                top_p=float(params.get("top_p", 1.0)),
                top_k=int(top_k) if top_k is not None else 40,
            )
        seed = params.get("seed")
        if seed is not None:
            options["random_seed"] = int(seed) & 0x7FFFFFFF
        repeat = params.get("repeat_penalty")
        if repeat not in (None, 1.0) and params.get("repeat_last_n") != 0:
            options["repetition_penalty"] = float(repeat)
        if params.get("ignore_eos"):
            options["min_length"] = options["max_length"]
        gp.set_search_options(**options)
        try:
            gen = og.Generator(self.model, gp)
        except Exception as exc:
            raise EngineRequestError(
                f"the ONNX engine refused the request: {exc}", code="engine_error", status=500
            ) from exc
        return gen

    def new_stream(self) -> Any:
        return self.tokenizer.create_stream()

    def info(self) -> dict[str, Any]:
        return {
            "engine": "onnxruntime-genai",
            "engine_version": getattr(self._og, "__version__", "?"),
            "format": "onnx",
            "precision": self.precision,
            "provider": self.provider,
            "provider_reason": self.provider_reason,
            "n_ctx": self.n_ctx,
            "n_ctx_train": self.n_ctx_train,
            "eos_token_id": self.facts.eos_token_id,
            "threads": self.threads,
            "load_s": round(self.load_s, 4),
            "embedding": False,
            "template_from_gguf": self.template_from_model,  # the name GGUF models use
            "template_from_model": self.template_from_model,
            "architecture": self.facts.architecture,
            "model_size_bytes": self.facts.tensor_bytes,
            "slots": self.n_slots,
            "slots_reason": None,
            "tool_family": self.tool_family,
            "batching": "one generator per request, advanced in turn (no batched step)",
            "n_gpu_layers": -1 if self.provider != "cpu" else 0,
            "pid": os.getpid(),
        }


def _special_tokens(path: Path) -> dict[str, int]:
    """The tokenizer's special tokens (text -> id): forced markers must name them by id."""
    from appliance.parsing.constraints import special_token_ids

    try:
        return special_token_ids(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return {}


def _guidance(params: dict[str, Any]) -> tuple[str, str] | None:
    """llguidance's JSON schema for the request's response format (none for text)."""
    schema = answer_schema(params.get("response_format"))
    return ("json_schema", json.dumps(schema)) if schema is not None else None
