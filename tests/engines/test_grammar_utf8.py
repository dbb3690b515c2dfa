"""A grammar's strings are Unicode: llama.cpp reads a 4-byte lead F5-F7 (which a model
with byte tokens can write) as a character past U+10FFFF, and ED A0-BF as a surrogate,
which no UTF-8 decoder reads back (each byte became U+FFFD: a 16-character string
returned 19, a 12-character city 14)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from appliance.engines.llamacpp import EngineConfig, LlamaEngine

BYTE_TOKENS = 7  # the tiny vocabulary's byte tokens start after its 7 specials


@pytest.fixture(scope="module")
def engine(models_dir: Path) -> LlamaEngine:
    return LlamaEngine(EngineConfig(str(models_dir / "tiny.gguf"), n_ctx=256, n_threads=1))


def _byte(engine: LlamaEngine, value: int) -> int:
    token = BYTE_TOKENS + value
    assert engine.special_piece(token) == bytes([value])
    return token


def _string_sampler(engine: LlamaEngine, params: dict[str, Any]) -> Any:
    sampler = engine.new_sampler(params)
    (quote,) = engine.forced_tokens('"')
    assert sampler.accept(quote)
    return sampler


STRING = {"response_format": {"type": "json_schema", "schema": {"type": "string"}}}
TOOL_STRING = {
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "f",
                "parameters": {
                    "type": "object",
                    "properties": {"s": {"type": "string"}},
                    "required": ["s"],
                },
            },
        }
    ],
    "tool_choice": {"mode": "named", "name": "f", "parallel": False},
}


def test_a_json_string_takes_utf8_and_refuses_what_is_not(engine: LlamaEngine) -> None:
    ok = _string_sampler(engine, STRING)
    assert ok.accept(_byte(engine, 0xC3)) and ok.accept(_byte(engine, 0xA9))  # é
    assert ok.accept(_byte(engine, 0xF0))  # the lead of a 4-byte character (U+10000+)
    for lead in (0xF5, 0xF6, 0xF7):
        assert not _string_sampler(engine, STRING).accept(_byte(engine, lead))
    for text in ("한", "힣", "\U00100000"):  # Hangul U+D55C and U+D7A3 (lead ED), plane 16
        sampler = _string_sampler(engine, STRING)
        assert all(sampler.accept(_byte(engine, b)) for b in text.encode()), text
    # A surrogate (ED A0-BF ..), which no decoder reads back: its lead ED is taken (Hangul
    # too starts so), the byte that makes it a surrogate is not.
    surrogate = _string_sampler(engine, STRING)
    assert surrogate.accept(_byte(engine, 0xED))
    assert not surrogate.accept(_byte(engine, 0xA0))
    assert surrogate.accept(_byte(engine, 0x9E))  # U+D780-D7BF: Hangul's end
    # Past U+10FFFF from F4 on: F4 8F is plane 16, F4 90 is not Unicode.
    past = _string_sampler(engine, STRING)
    assert past.accept(_byte(engine, 0xF4)) and not past.accept(_byte(engine, 0x90))


def test_a_tool_arguments_string_refuses_it_too(engine: LlamaEngine) -> None:
    sampler = engine.new_sampler(TOOL_STRING)
    assert sampler.forced is not None
    for token in engine.forced_tokens(sampler.forced.text + ' {"s": "'):
        assert sampler.accept(token)
    assert not sampler.accept(_byte(engine, 0xF6))
    assert sampler.accept(_byte(engine, 0xED)) and not sampler.accept(_byte(engine, 0xB0))
    assert sampler.accept(_byte(engine, 0x80)) and sampler.accept(_byte(engine, 0x80))  # U+D000
