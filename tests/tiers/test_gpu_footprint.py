"""A model the manager places on a GPU: its VRAM is the estimate, the host RAM its worker
and its saved prompt states hold is counted on the CPU's hot budget.

The box's GPU is described to the manager (a `HardwareReport` with one 24 GiB device and a
CUDA engine build), so placement puts the model on cuda:0. Where llama.cpp has no GPU
backend, as in CI, the worker still runs (on the CPU), which is all this accounting needs.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from appliance.cli import _ps_memory
from appliance.hardware import EngineBuild, GPUDevice
from appliance.telemetry.gpu import nvml_process_vram
from appliance.tiers import views
from appliance.tiers.estimate import estimate_memory
from appliance.tiers.footprint import GPU_RUNTIME_BYTES, WORKER_OVERHEAD_BYTES
from appliance.tiers.manager import ModelManager
from appliance.tiers.policy import fmt_bytes
from tests.tiers.managers import make_manager

GiB = 1 << 30


def gpu_manager(tmp_path: Path) -> ModelManager:
    gpu = GPUDevice(0, "described GPU", "nvidia", 24 * GiB, 24 * GiB)
    return make_manager(tmp_path, [gpu], EngineBuild("test", "cuda", True, "CUDA = 1"))


def test_a_gpu_models_host_ram_is_measured_and_budgeted(tmp_path: Path, tiny_gguf: Path) -> None:
    manager = gpu_manager(tmp_path)
    manager.store.import_file(tiny_gguf, "tiny")

    async def scenario() -> None:
        try:
            await manager.load("tiny")
            slot = manager.slot("tiny")
            assert slot.device == "cuda:0"
            # VRAM: what NVML says the worker holds where it lists it (a real NVIDIA GPU),
            # else the estimate for the whole model, its slots' KV and the GPU runtime; never
            # the worker's host memory (which used to replace it after the first load).
            worker, path = slot.worker, manager.local_file("tiny")
            assert worker is not None and worker.pid is not None and path is not None
            info = manager.gguf_info(path)
            slot_ctx = worker.spec.n_ctx * worker.spec.slots
            vram = nvml_process_vram(worker.pid)
            if vram is None:
                estimate = estimate_memory(info, slot_ctx).total_bytes + GPU_RUNTIME_BYTES
                assert (slot.hot_bytes, slot.hot_bytes_measured) == (estimate, False)
            else:
                assert slot.hot_bytes_measured and slot.hot_bytes > 0
            # Host RAM: what the worker was measured to hold, plus its prompt-state cap
            # (prompt_cache_ram, or twice the slots' KV for a model this small), which
            # the worker is given too.
            kv = estimate_memory(info, slot_ctx).kv_cache_bytes
            states_cap = min(manager.settings.prompt_cache_ram_bytes, 2 * kv)
            assert worker.spec.state_ram_bytes == states_cap
            measured = slot.host_bytes - states_cap
            assert measured > WORKER_OVERHEAD_BYTES // 4  # an interpreter and llama.cpp
            records = json.loads((tmp_path / "data" / "measurements.json").read_text())
            [record] = records.values()
            recorded_vram = slot.hot_bytes if slot.hot_bytes_measured else 0  # 0: unknown
            assert (record["hot_bytes"], record["host_bytes"]) == (recorded_vram, measured)
            # Both are counted: VRAM on cuda:0, host RAM on the CPU's hot budget.
            hot = views.budgets_view(manager)["hot"]
            assert hot["cuda:0"]["used"] == slot.hot_bytes
            assert hot["cpu"]["used"] == slot.host_bytes
            described = views.describe(manager, "tiny")
            assert described["host_bytes"] == slot.host_bytes
            assert (
                _ps_memory(described)
                == f"{fmt_bytes(slot.hot_bytes)} + {fmt_bytes(slot.host_bytes)} host"
            )
            move = [e for e in manager.events if e.model == "tiny" and e.kind == "move"][-1]
            assert move.data["host_bytes"] == slot.host_bytes
            assert "of host RAM" in move.message
        finally:
            await manager.shutdown()

    asyncio.run(scenario())
