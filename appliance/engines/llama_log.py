"""What llama.cpp says while it builds a context (read for the choices it makes there)
or refuses a grammar (read for why).

llama.cpp decides some settings itself (flash attention on "auto": whether the backend
has the kernels for this model) and only says so in its log; there is no getter. The
log is captured around the call that decides, then handed back to llama-cpp-python's
own handler (errors only, as the engine runs it).
"""

from __future__ import annotations

import ctypes
import os
import re
import sys
import tempfile
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


@contextmanager
def captured_stderr() -> Iterator[list[str]]:
    """What C code prints on the process's stderr while the block runs (llama.cpp's
    grammar parser writes its errors there, not to the log); written on to stderr after,
    so the worker's log keeps it."""
    lines: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            text = sink.read().decode("utf-8", "replace")
            if text:
                sys.stderr.write(text)
            lines.extend(text.splitlines())


def resolved_flash_attn(log: str, setting: str) -> str:
    """ "on" or "off": what llama.cpp chose for `setting` ("auto" | "on" | "off"), from the
    context's log; the setting itself when the log does not say."""
    found = _FLASH_ATTN.findall(log)
    if found:
        return "on" if found[-1] == "enabled" else "off"
    return setting
