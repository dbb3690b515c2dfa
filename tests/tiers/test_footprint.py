"""What a hot model holds, on its device and on the host (appliance/tiers/footprint.py), and
the measurements that carry it across restarts."""

from __future__ import annotations

import json
from pathlib import Path

from appliance.tiers import footprint
from appliance.tiers.estimate import estimate_memory
from appliance.tiers.footprint import GPU_RUNTIME_BYTES, WORKER_OVERHEAD_BYTES, Footprint
from appliance.tiers.measurements import Measurement, Measurements
from tests.tiers.test_estimate import Shape

GiB = 1 << 30
MiB = 1 << 20
SHAPE = Shape()  # 4 GiB of weights, 3 GiB of them in 32 blocks
CTX = 8192  # 1 GiB of f16 KV cache over the 32 layers


def test_a_cpu_model_holds_everything_in_host_ram() -> None:
    est = estimate_memory(SHAPE, CTX)
    fp = footprint.expected(SHAPE, CTX, "cpu", 0, None)
    assert fp == Footprint("cpu", est.total_bytes + WORKER_OVERHEAD_BYTES, 0, measured=False)
    # Its saved prompt states are host RAM too: on the CPU that is its device.
    assert fp.plus_host(512 * MiB).device_bytes == fp.device_bytes + 512 * MiB
    assert fp.plus_host(512 * MiB).host_bytes == 0
    earlier = Measurement(hot_bytes=5 * GiB, load_s=2.0, measured_at=0.0)
    assert footprint.expected(SHAPE, CTX, "cpu", 0, earlier) == Footprint(
        "cpu", 5 * GiB, measured=True
    )


def test_a_fully_offloaded_model_holds_its_runtime_and_prompt_states_in_host_ram() -> None:
    fp = footprint.expected(SHAPE, CTX, "cuda:0", -1, None)
    # Its VRAM: the model, its KV cache and compute buffers, and the GPU runtime's share.
    assert fp.device_bytes == estimate_memory(SHAPE, CTX).total_bytes + GPU_RUNTIME_BYTES
    assert fp.host_bytes == WORKER_OVERHEAD_BYTES and not fp.measured
    with_states = fp.plus_host(512 * MiB)
    assert with_states.device_bytes == fp.device_bytes
    assert with_states.host_bytes == WORKER_OVERHEAD_BYTES + 512 * MiB


def test_a_partly_offloaded_model_holds_the_layers_left_on_the_cpu_in_host_ram() -> None:
    fp = footprint.expected(SHAPE, CTX, "cuda:0", 16, None)
    on_gpu = estimate_memory(SHAPE, CTX, n_gpu_layers=16)
    assert fp.device_bytes == on_gpu.total_bytes + GPU_RUNTIME_BYTES
    # 16 of 32 blocks stay on the CPU: half the block weights, the non-block tensors (the
    # output layer stays on the CPU below n_layer + 1 layers) and half the KV cache.
    cpu_weights = GiB + GiB + GiB // 2
    assert fp.host_bytes == cpu_weights + GiB // 2 + WORKER_OVERHEAD_BYTES
    full = estimate_memory(SHAPE, CTX)
    assert on_gpu.weights_bytes + cpu_weights == full.weights_bytes
    # The CPU layers' weights are mapped from the GGUF file: not in anonymous memory.
    assert footprint.mapped_weights(SHAPE, CTX, "cuda:0", 16, 4 * GiB) == cpu_weights
    assert footprint.mapped_weights(SHAPE, CTX, "cuda:0", -1, 4 * GiB) == 0
    assert footprint.mapped_weights(SHAPE, CTX, "cpu", 0, 4 * GiB) == 4 * GiB
    assert footprint.mapped_weights(SHAPE, CTX, "cpu", 0, None) == 0  # a folder model


def test_a_load_measures_host_ram_and_vram_where_nvml_lists_it() -> None:
    cpu = footprint.loaded(footprint.expected(SHAPE, CTX, "cpu", 0, None), GiB, 4 * GiB)
    assert cpu == Footprint("cpu", 5 * GiB, 0, measured=True)
    assert footprint.record_of(cpu) == (5 * GiB, 0)
    before = footprint.expected(SHAPE, CTX, "cuda:0", -1, None)
    gpu = footprint.loaded(before, 700 * MiB, 0)
    # The worker's host memory is its host share; unread, its VRAM stays the estimate,
    # and is recorded as unknown (0) so that the next load estimates it afresh.
    assert gpu == Footprint("cuda:0", before.device_bytes, 700 * MiB, measured=False)
    assert footprint.record_of(gpu) == (0, 700 * MiB)
    read = footprint.loaded(before, 700 * MiB, 0, vram_bytes=6 * GiB)
    assert read == Footprint("cuda:0", 6 * GiB, 700 * MiB, measured=True)
    assert footprint.record_of(read) == (6 * GiB, 700 * MiB)


def test_what_an_earlier_gpu_load_recorded_is_used_as_it_was_measured() -> None:
    estimate = estimate_memory(SHAPE, CTX).total_bytes + GPU_RUNTIME_BYTES
    # Before host bytes were kept apart, a GPU load recorded the worker's host memory as
    # its hot bytes: such a record must not shrink the model's VRAM to its host RAM.
    old = Measurement(hot_bytes=700 * MiB, load_s=3.0, measured_at=0.0)
    assert footprint.expected(SHAPE, CTX, "cuda:0", -1, old) == Footprint(
        "cuda:0", estimate, WORKER_OVERHEAD_BYTES
    )
    unread = Measurement(hot_bytes=0, load_s=3.0, measured_at=0.0, host_bytes=900 * MiB)
    assert footprint.expected(SHAPE, CTX, "cuda:0", -1, unread) == Footprint(
        "cuda:0", estimate, 900 * MiB
    )
    read = Measurement(hot_bytes=6 * GiB, load_s=3.0, measured_at=0.0, host_bytes=900 * MiB)
    assert footprint.expected(SHAPE, CTX, "cuda:0", -1, read) == Footprint(
        "cuda:0", 6 * GiB, 900 * MiB, measured=True
    )


def test_measurements_keep_host_bytes_and_read_older_files(tmp_path: Path) -> None:
    path = tmp_path / "measurements.json"
    m = Measurements(path)
    m.record("gpu-key", 6 * GiB, 2.5, host_bytes=900 * MiB)
    m.record("cpu-key", 5 * GiB, 1.5)
    again = Measurements(path)
    gpu, cpu = again.get("gpu-key"), again.get("cpu-key")
    assert gpu is not None and (gpu.hot_bytes, gpu.host_bytes) == (6 * GiB, 900 * MiB)
    assert cpu is not None and cpu.host_bytes == 0
    # A file written before host bytes existed.
    path.write_text(json.dumps({"k": {"hot_bytes": 1, "load_s": 0.5, "measured_at": 2.0}}))
    old = Measurements(path).get("k")
    assert old == Measurement(1, 0.5, 2.0, 0)
