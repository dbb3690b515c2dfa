"""The fill-in-the-middle prompt is laid out token for token as llama-server's
`format_prompt_infill` lays it out (a client tuned against it gets the same prompt)."""

from __future__ import annotations

import pytest

from appliance.engines.engine import EngineRequestError
from appliance.engines.infill import SNIPPET_SEPARATOR, FimTokens, infill_tokens

PRE, SUF, MID, REP, SEP, BOS = 900, 901, 902, 903, 904, 1


def tokenize(text: str) -> list[int]:
    """One token per character (its code point), so lengths are easy to follow."""
    return [ord(c) for c in text]


def build(request: dict[str, object], fim: FimTokens, **kw: int) -> list[int]:
    budgets = {"n_batch": 2048, "n_ctx": 4096, "n_predict": -1, **kw}
    return infill_tokens(tokenize, fim, request, bos=BOS, **budgets)


def test_prefix_prompt_suffix_and_middle_in_llama_server_order() -> None:
    fim = FimTokens(PRE, SUF, MID)
    out = build({"input_prefix": "ab", "input_suffix": "cd", "prompt": "p"}, fim)
    # The prompt goes after the prefix, before FIM_SUF, as llama-server's code has it.
    assert out == [BOS, PRE, *tokenize("ab"), *tokenize("p"), SUF, *tokenize("cd"), MID]


def test_snippets_come_first_with_a_separator_or_the_repo_level_tokens() -> None:
    request = {
        "input_prefix": "x",
        "input_suffix": "y",
        "input_extra": [{"filename": "a.py", "text": "A"}],
    }
    plain = build(request, FimTokens(PRE, SUF, MID))
    assert plain == [*tokenize(SNIPPET_SEPARATOR + "A"), BOS, PRE, ord("x"), SUF, ord("y"), MID]
    repo = build(request, FimTokens(PRE, SUF, MID, REP, SEP))
    head = [REP, *tokenize("myproject\n"), SEP, *tokenize("a.py\n"), *tokenize("A")]
    tail_file = [SEP, *tokenize("filename\n")]
    assert repo == [*head, *tail_file, BOS, PRE, ord("x"), SUF, ord("y"), MID]


def test_budgets_keep_the_end_of_the_prefix_and_the_start_of_the_suffix() -> None:
    fim = FimTokens(PRE, SUF, MID)
    prefix, suffix = "p" * 50 + "END", "START" + "s" * 50
    out = build({"input_prefix": prefix, "input_suffix": suffix}, fim, n_batch=40)
    # 3/4 of the batch for the prefix (30), 1/4 less 2 for the suffix (8).
    assert out[2 : 2 + 30] == tokenize(prefix[-30:])
    assert out[-10:-1] == [SUF, *tokenize(suffix[:8])]
    # The snippets get what the context leaves past the batch and twice n_predict.
    extra = {"input_prefix": "", "input_suffix": "", "input_extra": [{"text": "z" * 100}]}
    trimmed = build(extra, fim, n_batch=40, n_ctx=60, n_predict=-1)
    assert trimmed[:22] == tokenize(("--- snippet ---\n\n" + "z" * 100)[-22:])
    assert trimmed[22] == BOS


def test_a_model_without_fim_tokens_is_refused_as_llama_server_refuses_it() -> None:
    with pytest.raises(EngineRequestError) as err:
        build({"input_prefix": "", "input_suffix": ""}, FimTokens(None, None, None))
    assert err.value.status == 501 and err.value.code == "infill_unsupported"
    assert "prefix, suffix, middle" in err.value.message
