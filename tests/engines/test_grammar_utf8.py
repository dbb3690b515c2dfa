"""A grammar's strings are Unicode: llama.cpp reads a 4-byte lead F5-F7 (which a model
with byte tokens can write) as a character past U+10FFFF, which no UTF-8 decoder reads
back (each byte became U+FFFD: a 16-character string returned 19)."""

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
    hangul = _string_sampler(engine, STRING)  # U+D55C, 한
    assert all(hangul.accept(_byte(engine, b)) for b in "한".encode())
    # F4 leads U+100000-13FFFF, partly past Unicode: llama.cpp refuses a lead whose range
    # meets an excluded one, so plane 16 (private use only) is lost with it.
    assert not _string_sampler(engine, STRING).accept(_byte(engine, 0xF4))


def test_a_tool_arguments_string_refuses_it_too(engine: LlamaEngine) -> None:
    sampler = engine.new_sampler(TOOL_STRING)
    assert sampler.forced is not None
    for token in engine.forced_tokens(sampler.forced.text + ' {"s": "'):
        assert sampler.accept(token)
    assert not sampler.accept(_byte(engine, 0xF6))
    assert sampler.accept(_byte(engine, 0x41))
