"""Stop strings and UTF-8 reassembly over token bytes."""

from __future__ import annotations

from appliance.engines.stopping import StopBuffer


def feed_all(buf: StopBuffer, pieces: list[bytes]) -> str:
    out = "".join(buf.feed(p) for p in pieces)
    return out + buf.flush()


def test_no_stops_passes_text_through() -> None:
    assert feed_all(StopBuffer(), [b"he", b"llo"]) == "hello"


def test_stop_split_across_tokens_never_leaks() -> None:
    buf = StopBuffer(["END"])
    outs = [buf.feed(p) for p in [b"abc E", b"N", b"D tail"]]
    assert outs == ["abc ", "", ""]
    assert buf.stopped and buf.flush() == ""
    assert buf.matched == "END"


def test_false_start_is_released() -> None:
    buf = StopBuffer(["END"])
    assert buf.feed(b"xE") == "x"
    assert buf.feed(b"Nx") == "ENx"


def test_earliest_of_several_stops_wins() -> None:
    buf = StopBuffer(["b", "zz"])
    assert feed_all(buf, [b"aazzb"]) == "aa"
    assert buf.matched == "zz"
    unmatched = StopBuffer(["q"])
    feed_all(unmatched, [b"abc"])
    assert unmatched.matched is None


def test_multibyte_character_split_over_tokens() -> None:
    data = "é€".encode()
    assert feed_all(StopBuffer(), [data[:1], data[1:3], data[3:]]) == "é€"
