"""Measured footprints and load times, kept across restarts.

The first load of a model with a given context, backend and device records
what it really took (memory and seconds); placement uses those numbers from
then on instead of the metadata estimate. One small JSON file in the data
folder, rewritten atomically.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil


@dataclass(frozen=True)
class Measurement:
    hot_bytes: int  # memory the loaded model holds on its device (RAM for CPU engines; 0: a
    # GPU model whose VRAM could not be measured)
    load_s: float  # seconds from starting the worker to ready
    measured_at: float  # unix time
    host_bytes: int = 0  # host RAM a model on a GPU holds besides


def measurement_key(
    model_id: str, n_ctx: int, backend: str, device: str, n_gpu_layers: int, slots: int = 1
) -> str:
    """`model_id` is the file's sha256 where known, else its path."""
    key = f"{model_id}|ctx={n_ctx}|{backend}|{device}|ngl={n_gpu_layers}"
    return key if slots == 1 else f"{key}|slots={slots}"


def process_anon_bytes(pid: int) -> int | None:
    """Resident memory of a process that is not backed by a file (heap, KV cache, buffers)."""
    try:
        info = psutil.Process(pid).memory_info()
    except (psutil.Error, OSError):
        return None
    shared = int(getattr(info, "shared", 0))
    return max(int(info.rss) - shared, 0)


class Measurements:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._data: dict[str, Measurement] = {}
        try:
            raw = json.loads(path.read_text())
            for key, value in raw.items():
                self._data[key] = Measurement(
                    int(value["hot_bytes"]),
                    float(value["load_s"]),
                    float(value["measured_at"]),
                    int(value.get("host_bytes", 0)),
                )
        except (OSError, ValueError, KeyError, TypeError):
            self._data = {}  # missing or unreadable: start over, estimates are used meanwhile

    def get(self, key: str) -> Measurement | None:
        with self._lock:
            return self._data.get(key)

    def record(self, key: str, hot_bytes: int, load_s: float, host_bytes: int = 0) -> Measurement:
        m = Measurement(int(hot_bytes), float(load_s), time.time(), int(host_bytes))
        with self._lock:
            self._data[key] = m
            body = json.dumps({k: asdict(v) for k, v in self._data.items()}, indent=1)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(self.path.name + ".tmp")
            tmp.write_text(body)
            os.replace(tmp, self.path)
        return m
