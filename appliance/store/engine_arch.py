"""Whether the engine's llama.cpp knows a GGUF's architecture, asked before an import.

The header reader (`gguf_meta`) knows the format, not which architectures this build of
llama.cpp implements: a file of an architecture it does not know was imported and failed
at its first load. llama.cpp has no call that lists them, so it is asked: a child process
loads, vocabulary only, a GGUF this module writes with nothing but
``general.architecture`` in it. llama.cpp reads the architecture before anything else, so
its refusal says "unknown model architecture" for one it does not know and names a
missing key for one it does. No byte of the imported file reaches llama.cpp, no tensor is
read, and the answer, which depends on the name alone, is kept for the process's life.

Only that answer refuses an import. A probe that cannot run (llama-cpp-python missing,
a crash, a timeout) refuses nothing: the load says what is wrong, as before.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import struct
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from appliance.store.errors import GGUFError

__all__ = ["check_architecture", "engine_version", "llama_cpp_knows"]

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 60.0
_UNKNOWN = "unknown model architecture"

# Loads the GGUF at argv[1], vocabulary only and on no device, and prints what llama.cpp
# said (its log goes to a list, not to the child's stderr).
_PROBE = r"""
import ctypes, json, sys
import llama_cpp
lines = []
@llama_cpp.llama_log_callback
def capture(level, text, user_data):
    lines.append(text.decode("utf-8", "replace"))
llama_cpp.llama_log_set(capture, ctypes.c_void_p(0))
params = llama_cpp.llama_model_default_params()
params.vocab_only = True
params.n_gpu_layers = 0
no_devices = (ctypes.c_void_p * 1)(None)
params.devices = ctypes.cast(no_devices, ctypes.c_void_p)
model = llama_cpp.llama_model_load_from_file(sys.argv[1].encode(), params)
if model:
    llama_cpp.llama_model_free(model)
print(json.dumps({"loaded": bool(model), "log": "".join(lines)[-4000:]}))
"""

_known: dict[str, bool] = {}
_lock = threading.Lock()


def engine_version() -> str:
    """llama-cpp-python's version (the llama.cpp it bundles), as an error names it."""
    try:
        return importlib.metadata.version("llama-cpp-python")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _architecture_only_gguf(architecture: str) -> bytes:
    """A GGUF v3 file with no tensors and one key: ``general.architecture``."""
    key, value = b"general.architecture", architecture.encode()
    return (
        b"GGUF"
        + struct.pack("<IQQ", 3, 0, 1)
        + struct.pack("<Q", len(key))
        + key
        + struct.pack("<IQ", 8, len(value))  # type 8: string
        + value
    )


def _probe(architecture: str) -> bool | None:
    """True or False: what llama.cpp answered; None when it could not be asked."""
    with tempfile.TemporaryDirectory(prefix="appliance-arch-") as tmp:
        path = Path(tmp) / "architecture.gguf"
        path.write_bytes(_architecture_only_gguf(architecture))
        try:
            out = subprocess.run(
                [sys.executable, "-c", _PROBE, str(path)],
                capture_output=True,
                text=True,
                timeout=PROBE_TIMEOUT_S,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.warning("could not ask llama.cpp about architecture %r: %s", architecture, exc)
            return None
    lines = out.stdout.strip().splitlines()
    try:
        said = json.loads(lines[-1]) if out.returncode == 0 and lines else None
    except ValueError:
        said = None
    if not isinstance(said, dict):
        last = (out.stderr.strip().splitlines() or [f"exit status {out.returncode}"])[-1]
        log.warning("could not ask llama.cpp about architecture %r: %s", architecture, last)
        return None
    return bool(said.get("loaded")) or _UNKNOWN not in str(said.get("log", ""))


def llama_cpp_knows(architecture: str) -> bool | None:
    """Whether this box's llama.cpp can load models of `architecture` (a name the header
    reader accepted); None when it could not be asked."""
    with _lock:
        if architecture in _known:
            return _known[architecture]
    answer = _probe(architecture)
    if answer is not None:
        with _lock:
            _known[architecture] = answer
    return answer


def check_architecture(architecture: str) -> None:
    """Raise `GGUFError` when llama.cpp does not know `architecture`."""
    if llama_cpp_knows(architecture) is False:
        raise GGUFError(
            f"unsupported GGUF: general.architecture {architecture!r} is not an architecture "
            f"llama.cpp (llama-cpp-python {engine_version()}) can load; a newer "
            "llama-cpp-python may"
        )
