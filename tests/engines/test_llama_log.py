"""What llama.cpp chose for flash attention, read from its log as it builds a context."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.engines.llama_log import resolved_flash_attn
from appliance.engines.llamacpp import EngineConfig, LlamaEngine


def test_the_log_line_says_what_auto_chose() -> None:
    log = "llama_context: flash_attn = auto\nresolve_fused_ops: Flash Attention enabled\n"
    assert resolved_flash_attn(log, "auto") == "on"
    assert resolved_flash_attn(log.replace("enabled", "disabled"), "auto") == "off"
    assert resolved_flash_attn("nothing about it\n", "off") == "off"  # the setting then


@pytest.mark.parametrize(("setting", "runs"), [("auto", "on"), ("off", "off"), ("on", "on")])
def test_the_engine_reports_what_runs(models_dir: Path, setting: str, runs: str) -> None:
    # llama.cpp's CPU backend has flash attention for this model: "auto" turns it on.
    cfg = EngineConfig(str(models_dir / "tiny.gguf"), n_ctx=64, n_threads=1, flash_attn=setting)
    info = LlamaEngine(cfg).info()
    assert (info["flash_attn"], info["flash_attn_setting"]) == (runs, setting)
