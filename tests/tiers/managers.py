"""A `ModelManager` over a temporary store, on this box's RAM and the GPUs a test describes."""

from __future__ import annotations

from pathlib import Path

import psutil

from appliance.catalog import Catalog
from appliance.hardware import EngineBuild, GPUDevice, HardwareReport
from appliance.settings import Settings
from appliance.store import Store
from appliance.tiers.manager import ModelManager


def make_manager(
    tmp_path: Path, gpus: list[GPUDevice] | None = None, engine: EngineBuild | None = None
) -> ModelManager:
    vm = psutil.virtual_memory()
    hardware = HardwareReport(
        engine=engine,
        devices=gpus or [],
        ram_total_bytes=int(vm.total),
        ram_available_bytes=int(vm.available),
        cpu_physical=1,
        cpu_logical=1,
    )
    store = Store(tmp_path / "store", disk_margin=0)
    return ModelManager(Settings(), Catalog(()), store, hardware, tmp_path / "data")
