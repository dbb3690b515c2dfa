"""`appliance doctor`: what this box has for serving, whether models.toml and the
daemon are well, and a self-test that generates with a tiny model through a real worker.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from appliance import __version__
from appliance.client import AdminClient, DaemonError, DaemonUnreachable
from appliance.paths import Paths
from appliance.settings import Settings
from appliance.tiers.policy import fmt_bytes

__all__ = ["run"]


def _catalog_lines(settings: Settings, load: Callable[[], Any]) -> tuple[bool, list[str]]:
    """Whether models.toml is valid, and doctor's lines about it: every error, since the
    daemon refuses to start with any."""
    from appliance.catalog import CatalogError

    path = settings.catalog_path
    if path is None:
        return True, ["catalog         none"]
    if not path.exists():
        return True, [f"catalog         {path}: no such file (an empty catalog)"]
    try:
        catalog = load()
    except CatalogError as exc:
        lines = [
            f"catalog         {path}: FAILED, {len(exc.errors)} error(s); "
            "`appliance serve` refuses to start until they are mended"
        ]
        lines += [
            f"  {e.key_path}: {e.problem}" if e.key_path else f"  {e.problem}" for e in exc.errors
        ]
        return False, lines
    return True, [f"catalog         {path}: {len(catalog)} model(s), ok"]


def _daemon_line(url: str) -> str:
    """Whether a daemon answers at `url`, and what its /health says; none is no failure."""
    try:
        with AdminClient(url, timeout=3.0) as client:
            health = client.health()
    except DaemonUnreachable:
        return f"none answers at {url} (start it with `appliance serve` or systemctl)"
    except (DaemonError, ValueError) as exc:
        return f"something answers at {url}, but not as this daemon's /health does ({exc})"
    if not isinstance(health, dict) or not isinstance(health.get("status"), str):
        return f"something answers at {url}, but not as this daemon's /health does"
    reasons = [str(r) for r in health.get("reasons") or []]
    why = f": {'; '.join(reasons)}" if reasons else ""
    return f"answers at {url}, version {health.get('version')}, /health {health['status']}{why}"


def run(paths: Paths, settings: Settings, load_catalog: Callable[[], Any], daemon_url: str) -> int:
    """Print the report; 0 when all is well, 1 when something is not."""
    from appliance.engines.supervisor import WorkerProcess, WorkerSpec
    from appliance.hardware import detect
    from appliance.tiny_model import write_tiny_gguf

    report = detect()
    ok = True
    engine = report.engine
    print(f"appliance       {__version__} (python {sys.version.split()[0]})")
    if engine:
        print(
            f"engine          llama-cpp-python {engine.version}, backend {engine.backend}, "
            f"GPU offload {'yes' if engine.gpu_offload else 'no'}"
        )
    else:
        ok = False
        print("engine          unavailable")
    if report.onnx is not None:
        onnx = report.onnx
        print(
            f"onnx            onnxruntime-genai {onnx.genai_version} (onnxruntime "
            f"{onnx.ort_version}), provider {onnx.provider}: INT4/FP16/FP32 ONNX models "
            + {
                "cuda": "on the GPU, FP8 too",
                "amdgpu": "on the AMD GPU; FP8 ONNX models need CUDA",
            }.get(onnx.provider, "on the CPU; FP8 ONNX models need CUDA")
        )
    else:
        print("onnx            unavailable: ONNX models cannot be served")
    print(
        f"cpu             {report.cpu_physical or 'unknown'} cores "
        f"({report.cpu_logical or 'unknown'} threads)"
    )
    print(
        f"memory          {fmt_bytes(report.ram_available_bytes)} available of "
        f"{fmt_bytes(report.ram_total_bytes)}"
    )
    for d in report.devices:
        print(
            f"gpu {d.index}           {d.name} ({d.vendor}): {fmt_bytes(d.free_bytes)} free of "
            f"{fmt_bytes(d.total_bytes)}"
        )
    if not report.devices:
        print("gpu             none found")
    print(f"store           {paths.store_dir}")
    catalog_ok, lines = _catalog_lines(settings, load_catalog)
    ok = ok and catalog_ok
    print("\n".join(lines))
    print(f"api             {settings.base_url}/v1")
    print(f"daemon          {_daemon_line(daemon_url)}")
    for problem in report.problems:
        print(f"problem         {problem}")

    async def selftest() -> tuple[str, int, float]:
        with tempfile.TemporaryDirectory() as tmp:
            path = write_tiny_gguf(Path(tmp) / "selftest.gguf")
            worker = WorkerProcess(WorkerSpec("selftest", str(path), n_ctx=256, n_threads=1))
            await worker.start(60)
            started = time.monotonic()
            text, count = "", 0
            try:
                async for frame in worker.request(
                    {
                        "type": "generate",
                        "mode": "chat",
                        "messages": [{"role": "user", "content": "hello"}],
                        "params": {"max_tokens": 16, "temperature": 0, "ignore_eos": True},
                    }
                ):
                    if frame["type"] == "token":
                        text += frame["text"]
                    elif frame["type"] == "done":
                        count = int(frame["completion_tokens"])
                    elif frame["type"] == "error":
                        raise RuntimeError(frame["message"])
            finally:
                await worker.stop()
            return text, count, time.monotonic() - started

    try:
        _, count, seconds = asyncio.run(selftest())
        print(f"self-test       generated {count} tokens with a tiny model in {seconds:.2f} s: ok")
    except Exception as exc:
        ok = False
        print(f"self-test       FAILED: {exc}")
    return 0 if ok else 1
