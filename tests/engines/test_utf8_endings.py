"""A character split over tokens: its bytes wait for the rest of it, and when the answer
ends before the rest comes (max_tokens, end of sequence) they are dropped, never sent as
U+FFFD."""

from __future__ import annotations

from appliance.engines.sequence import Sequence
from appliance.engines.stopping import StopBuffer
from tests.engines.fake_engine import EOS, FakeEngine
from tests.engines.test_scheduler import Run

EMOJI = "😀".encode()  # f0 9f 98 80


def accept_all(seq: Sequence, pieces: list[bytes]) -> list[str]:
    """What the sequence sends after each token, until it is done."""
    out = []
    for token, piece in enumerate(pieces, start=10):
        out.append(seq.accept(token, piece, is_eog=False))
        if seq.state == "done":
            break
    return out


def test_max_tokens_in_the_middle_of_a_character_drops_its_bytes() -> None:
    seq = Sequence("r", [1, 2], {}, max_tokens=1)
    assert accept_all(seq, [EMOJI[:2], EMOJI[2:]]) == [""]
    assert (seq.state, seq.finish_reason, seq.generated) == ("done", "length", 1)

    seq = Sequence("r", [1, 2], {}, max_tokens=3)
    pieces = [b"ok ", EMOJI[:3], EMOJI[3:] + b"!", b" " + EMOJI[:1]]
    assert accept_all(seq, pieces) == ["ok ", "", "😀!"]
    seq = Sequence("r", [1, 2], {}, max_tokens=4)
    assert accept_all(seq, pieces) == ["ok ", "", "😀!", " "]


def test_end_of_sequence_after_part_of_a_character_drops_it() -> None:
    seq = Sequence("r", [1, 2], {}, max_tokens=8)
    assert seq.accept(10, b"a" + EMOJI[:2], is_eog=False) == "a"
    assert seq.accept(EOS, b"", is_eog=True) == ""
    assert seq.finish_reason == "stop"


def test_stop_strings_around_a_split_character() -> None:
    # A stop string made of the split character itself matches once it is whole.
    seq = Sequence("r", [1], {"stop": ["😀"]}, max_tokens=8)
    assert accept_all(seq, [b"hi " + EMOJI[:2], EMOJI[2:] + b" tail"]) == ["hi ", ""]
    assert (seq.finish_reason, seq.stops.matched) == ("stop", "😀")
    # Text held back as a possible stop string's start is still sent when the answer is
    # cut; only the incomplete character after it goes.
    seq = Sequence("r", [1], {"stop": ["ab"]}, max_tokens=2)
    assert accept_all(seq, [b"xa", EMOJI[:1]]) == ["x", "a"]
    assert seq.stops.matched is None


def test_stop_buffer_flush_keeps_invalid_bytes_replaced_mid_text() -> None:
    """Only a cut-off character at the end is dropped: a byte that can never be valid
    is still shown as U+FFFD where it was."""
    buf = StopBuffer()
    assert buf.feed(b"a\x80b") == "a\ufffdb"
    assert buf.feed(EMOJI[:3]) == ""
    assert buf.flush() == ""


class EmojiEngine(FakeEngine):
    """The fake model's tokens 11 and 12 spell an emoji between them, 13 is "!"."""

    def piece(self, token: int) -> bytes:
        return {11: EMOJI[:2], 12: EMOJI[2:], 13: b"!"}.get(token, super().piece(token))


def test_scheduler_answers_cut_in_a_character_end_without_u_fffd() -> None:
    run = Run(EmojiEngine())
    run.submit("one", [10], max_tokens=1)
    run.submit("two", [10], max_tokens=2)
    run.submit("three", [10], max_tokens=3)
    run.until_idle()
    assert run.text("one") == ""
    assert run.done("one")["completion_tokens"] == 1
    assert [f["text"] for f in run.of("two", "token")] == ["😀"]
    assert run.text("three") == "😀!"
    # The model's end of sequence (0) right after the emoji's first bytes.
    run = Run(EmojiEngine(n_vocab=12))
    run.submit("eos", [10], max_tokens=8)
    run.until_idle()
    assert run.text("eos") == ""
    assert run.done("eos")["finish_reason"] == "stop"
