import itertools

import pytest

from appliance.api.reasoning import ReasoningSplitter, split_reasoning


@pytest.mark.parametrize(
    ("text", "started", "expected"),
    [
        ("hello", False, (None, "hello")),
        ("", False, (None, "")),
        ("<think>plan</think>answer", False, ("plan", "answer")),
        ("  \n<think>plan</think>\n\nanswer", False, ("plan", "answer")),
        ("<think>\nplan\n</think>\n\n  answer\n", False, ("\nplan\n", "  answer\n")),
        ("<think></think>answer", False, ("", "answer")),
        ("<think>still thinking", False, ("still thinking", "")),
        ("<think>a</thi", False, ("a</thi", "")),
        ("text <think>x</think>", False, (None, "text <think>x</think>")),
        ("<thin", False, (None, "<thin")),
        ("  ", False, (None, "  ")),
        ("plan</think>answer", True, ("plan", "answer")),
        ("all reasoning", True, ("all reasoning", "")),
        ("", True, ("", "")),
        ("<think>x</think>y", True, ("<think>x", "y")),
        ("a</think>b</think>c<think>d", False, (None, "a</think>b</think>c<think>d")),
        ("a</think>b</think>c<think>d", True, ("a", "b</think>c<think>d")),
    ],
)
def test_split_reasoning(text: str, started: bool, expected: tuple[str | None, str]) -> None:
    assert split_reasoning(text, started=started) == expected


def _stream(deltas: list[str], started: bool) -> tuple[str, str, ReasoningSplitter]:
    splitter = ReasoningSplitter(started=started)
    reasoning, content = "", ""
    for delta in deltas:
        r, c = splitter.feed(delta)
        reasoning += r
        content += c
    r, c = splitter.flush()
    return reasoning + r, content + c, splitter


def _splits(text: str, max_cuts: int) -> list[list[str]]:
    """Every way to cut ``text`` at up to ``max_cuts`` positions."""
    out: list[list[str]] = []
    for k in range(max_cuts + 1):
        for cuts in itertools.combinations(range(1, len(text)), k):
            bounds = (0, *cuts, len(text))
            out.append([text[a:b] for a, b in itertools.pairwise(bounds)])
    return out


TEXTS = [
    "<think>a</think>b",
    " <think>ab</thi</think>\n\ncd",
    "<think></think>\nx<think>y",
    "<thi",
    "no tags <think>here</think>",
    "\n<think>unclosed </thin",
    "<<think>>",
    "x</think>\r\ny",
    "</think></think>",
    "\n\n",
]


@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize("started", [False, True])
def test_any_split_streams_like_the_whole(text: str, started: bool) -> None:
    reasoning, content = split_reasoning(text, started=started)
    for deltas in _splits(text, 3):
        got_r, got_c, splitter = _stream(deltas, started)
        assert (got_r, got_c) == (reasoning or "", content), deltas
        assert splitter.has_reasoning == (reasoning is not None)


def test_every_character_alone() -> None:
    text = "  <think>\nLet me think. </thin </think>\n\nThe answer <think> is 4."
    reasoning, content = split_reasoning(text)
    got_r, got_c, _ = _stream(list(text), False)
    assert (got_r, got_c) == (reasoning, content)
    assert content == "The answer <think> is 4."


def test_tags_are_never_leaked_and_hold_back_is_minimal() -> None:
    splitter = ReasoningSplitter()
    assert splitter.feed("<th") == ("", "")
    assert splitter.feed("ink>I wonder") == ("I wonder", "")
    assert splitter.in_reasoning
    assert splitter.feed(" what </th") == (" what ", "")
    assert splitter.feed("inking") == ("</thinking", "")
    assert splitter.feed("</") == ("", "")
    assert splitter.feed("think>\n") == ("", "")
    assert not splitter.in_reasoning
    assert splitter.feed("\nHi <think>") == ("", "Hi <think>")
    assert splitter.flush() == ("", "")


def test_plain_output_is_released_as_soon_as_it_cannot_be_a_tag() -> None:
    splitter = ReasoningSplitter()
    assert splitter.feed("  ") == ("", "")
    assert splitter.feed("<") == ("", "")
    assert splitter.feed("b>") == ("", "  <b>")
    assert not splitter.has_reasoning
    assert splitter.feed("more") == ("", "more")


def test_started_streams_reasoning_at_once() -> None:
    splitter = ReasoningSplitter(started=True)
    assert splitter.has_reasoning
    assert splitter.feed("abc") == ("abc", "")
    assert splitter.feed("<") == ("", "")
    assert splitter.flush() == ("<", "")
