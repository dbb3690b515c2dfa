"""GPU paths: partial offload decided by the estimate, and VRAM -> host RAM -> back.

They need llama-cpp-python built with a GPU backend and a GPU; elsewhere they skip.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from appliance.hardware import detect
from appliance.store.gguf_meta import read_gguf_info
from appliance.tiers.estimate import estimate_memory
from appliance.tiers.policy import PlacementInput
from tests.daemon import Daemon, start_daemon

HARDWARE = detect()
GPU_READY = bool(HARDWARE.engine and HARDWARE.engine.gpu_offload and HARDWARE.devices)
pytestmark = pytest.mark.skipif(
    not GPU_READY,
    reason="needs llama-cpp-python built for CUDA/ROCm and a GPU with known memory (this box: "
    f"backend {HARDWARE.engine.backend if HARDWARE.engine else 'none'}, "
    f"{len(HARDWARE.devices)} GPU(s))",
)
USER = [{"role": "user", "content": "hello"}]


@pytest.fixture(scope="module")
def gpu_daemon(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[Daemon]:
    home = tmp_path_factory.mktemp("gpu")
    catalog = home / "models.toml"
    catalog.write_text(
        f'[models.slow]\nsource = "{models_dir / "slow.gguf"}"\ncontext = 4096\n'
        'keep_alive = "forever"\nparallel = 1\n'
    )
    d = start_daemon(home, catalog)
    yield d
    d.stop()


def test_partial_offload_when_the_gpu_budget_is_short(gpu_daemon: Daemon, models_dir: Path) -> None:
    d = gpu_daemon
    est = estimate_memory(read_gguf_info(models_dir / "slow.gguf"), 4096)
    device = next(iter(k for k in d.get("/admin/budgets").json()["hot"] if k != "cpu"))
    # Room for the compute buffer and about half the layers, beside the placement's margin:
    # the estimate must choose a partial offload.
    room = PlacementInput.margin_bytes + est.compute_bytes
    room += (est.weights_bytes + est.kv_cache_bytes) // 2
    d.post("/admin/budgets", json={"hot": {device: room}})
    r = httpx.post(
        d.v1 + "/chat/completions",
        timeout=120,
        json={"model": "slow", "messages": USER, "max_tokens": 4},
    )
    assert r.status_code == 200, r.text
    m = d.model("slow")
    assert m["device"] == device
    assert 0 < m["n_gpu_layers"] < 4, m["placement"]
    assert "partial offload" in m["placement"]


def test_vram_to_host_ram_and_back(gpu_daemon: Daemon) -> None:
    d = gpu_daemon
    d.post(
        "/admin/budgets", json={"hot": {k: 1 << 40 for k in d.get("/admin/budgets").json()["hot"]}}
    )
    assert d.post("/admin/models/slow/tier", json={"tier": "hot"}).json()["tier"] == "hot"
    assert d.post("/admin/models/slow/tier", json={"tier": "warm"}).json()["tier"] == "warm"
    r = httpx.post(
        d.v1 + "/chat/completions",
        timeout=120,
        json={"model": "slow", "messages": USER, "max_tokens": 4},
    )
    assert r.status_code == 200
    moves = [
        e
        for e in d.get("/admin/events").json()["events"]
        if e["kind"] == "move" and e["model"] == "slow"
    ]
    assert [m["data"]["dst"] for m in moves[-2:]] == ["warm", "hot"]
    assert moves[-1]["data"]["src"] == "warm"
