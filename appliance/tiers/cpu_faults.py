"""What this box's CPU was found unable to run, remembered across restarts.

Some CPUs announce instructions they cannot run (a VM's CPU flags, a hypervisor that
masks AVX-512), and llama.cpp's repacked CPU kernels then die of SIGILL. The manager
learns it from one crashed worker and turns repacking off; kept here, with the CPU and
llama.cpp version it was seen with, the next start does not crash once more to learn it
again. Another CPU or another llama.cpp tries again.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

__all__ = ["cpu_identity", "remember_repack_bad", "repack_known_bad"]


def cpu_identity(engine_version: str | None) -> str:
    """The CPU's model name and the llama.cpp version: what the verdict holds for."""
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name} | llama.cpp {engine_version or 'unknown'}"


def repack_known_bad(path: Path, identity: str) -> bool:
    """Whether repacked kernels crashed on this CPU with this llama.cpp before."""
    try:
        return bool(json.loads(path.read_text()).get("repack_sigill") == identity)
    except (OSError, ValueError, AttributeError):
        return False


def remember_repack_bad(path: Path, identity: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps({"repack_sigill": identity}, indent=1))
        os.replace(tmp, path)
    except OSError:
        pass  # not remembered: the next start learns it again
