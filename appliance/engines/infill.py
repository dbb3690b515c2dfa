"""Fill-in-the-middle prompts, laid out as llama-server's `/infill` lays them out.

Code editors (llama.vscode, llama.vim) send the text before the cursor, the text after
it and snippets of other files; a FIM-trained model reads them between its special
tokens and writes the middle. The layout, the 3:1 prefix-to-suffix budget within one
batch and the extra context trimmed from its start follow llama-server's
`format_prompt_infill`, so a client tuned against it gets the same prompt here. With the
repo-level tokens (FIM_REP, FIM_SEP) the snippets are files of a project:

    <FIM_REP>myproject\\n<FIM_SEP>{name}\\n{text}...<FIM_SEP>filename\\n
    <FIM_PRE>{prefix}<FIM_SUF>{suffix}<FIM_MID>{prompt}
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from appliance.engines.engine import EngineRequestError

__all__ = ["FimTokens", "infill_tokens"]

# llama-server's separator before each snippet when the model has no FIM_SEP token.
SNIPPET_SEPARATOR = "\n\n--- snippet ---\n\n"


@dataclass(frozen=True)
class FimTokens:
    """The model's fill-in-the-middle token ids; None where its vocabulary has none."""

    pre: int | None
    suf: int | None
    mid: int | None
    rep: int | None = None
    sep: int | None = None

    def missing(self) -> list[str]:
        names = {"prefix": self.pre, "suffix": self.suf, "middle": self.mid}
        return [name for name, token in names.items() if token is None]


def infill_tokens(
    tokenize: Callable[[str], list[int]],
    fim: FimTokens,
    request: dict[str, Any],
    *,
    bos: int | None,
    n_batch: int,
    n_ctx: int,
    n_predict: int,
) -> list[int]:
    """The prompt's tokens for one infill request (`input_prefix`, `input_suffix`,
    `input_extra`, `prompt`); `tokenize` reads text without special tokens; `bos` is
    put first when the model wants one."""
    if fim.missing():
        raise EngineRequestError(
            "Infill is not supported by this model: its vocabulary has no FIM token for "
            + ", ".join(fim.missing())
            + ". Use a code model trained for fill-in-the-middle (Qwen2.5-Coder, "
            "CodeGemma, StarCoder2, DeepSeek-Coder, Codestral).",
            code="infill_unsupported",
            status=501,  # llama-server's not_supported_error
            param="model",
        )
    assert fim.pre is not None and fim.suf is not None and fim.mid is not None
    prefix = tokenize(str(request.get("input_prefix") or ""))
    suffix = tokenize(str(request.get("input_suffix") or ""))
    prompt = tokenize(str(request.get("prompt") or ""))
    extra = _extra_tokens(tokenize, fim, request.get("input_extra") or [])

    n_prefix = min(len(prefix), 3 * (n_batch // 4))
    n_suffix = min(len(suffix), max(0, n_batch // 4 - (2 + len(prompt))))
    n_extra = min(max(0, n_ctx - n_batch - 2 * n_predict), len(extra))
    head = [fim.pre, *prefix[len(prefix) - n_prefix :], *prompt]
    tail = [fim.suf, *suffix[:n_suffix]]
    out = ([bos] if bos is not None else []) + head
    out[:0] = extra[len(extra) - n_extra :] if n_extra else []
    return [*out, *tail, fim.mid]


def _extra_tokens(
    tokenize: Callable[[str], list[int]], fim: FimTokens, chunks: Sequence[dict[str, Any]]
) -> list[int]:
    extra: list[int] = []
    if fim.rep is not None:
        extra += [fim.rep, *tokenize("myproject\n")]
    for chunk in chunks:
        name = str(chunk.get("filename") or "tmp")
        if fim.sep is not None:
            extra += [fim.sep, *tokenize(name + "\n")]
        else:
            extra += tokenize(SNIPPET_SEPARATOR)
        extra += tokenize(str(chunk.get("text") or ""))
    if fim.sep is not None:
        extra += [fim.sep, *tokenize("filename\n")]
    return extra
