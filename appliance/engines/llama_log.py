"""What llama.cpp says while it builds a context, read for the choices it makes there.

llama.cpp decides some settings itself (flash attention on "auto": whether the backend
has the kernels for this model) and only says so in its log; there is no getter. The
log is captured around the call that decides, then handed back to llama-cpp-python's
own handler (errors only, as the engine runs it).
"""

from __future__ import annotations

import ctypes
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_FLASH_ATTN = re.compile(r"Flash Attention (enabled|disabled)")


@contextmanager
def captured_log() -> Iterator[list[str]]:
    """llama.cpp's log lines while the block runs."""
    import llama_cpp
    from llama_cpp import _logger

    lines: list[str] = []

    @llama_cpp.llama_log_callback  # type: ignore[untyped-decorator]
    def capture(level: int, text: bytes, user_data: Any) -> None:
        lines.append(text.decode("utf-8", "replace"))

    llama_cpp.llama_log_set(capture, ctypes.c_void_p(0))
    try:
        yield lines
    finally:
        llama_cpp.llama_log_set(_logger.llama_log_callback, ctypes.c_void_p(0))


def resolved_flash_attn(log: str, setting: str) -> str:
    """ "on" or "off": what llama.cpp chose for `setting` ("auto" | "on" | "off"), from the
    context's log; the setting itself when the log does not say."""
    found = _FLASH_ATTN.findall(log)
    if found:
        return "on" if found[-1] == "enabled" else "off"
    return setting
