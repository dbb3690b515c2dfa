"""Daemon side of one engine worker: start it, route its frames, watch it, end it.

A worker that exits, is killed or stops sending heartbeats fails only the
requests it holds, each with a clear error; the model manager decides when to
start it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import math
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

from appliance.engines.protocol import AsyncChannel, Frame, ProtocolError

log = logging.getLogger("appliance.supervisor")

TERMINAL_FRAMES = frozenset({"done", "error", "embeddings", "tokens", "text", "count"})
_ids = itertools.count(1)


class WorkerStartError(RuntimeError):
    """The worker could not load its model (bad file, no memory, timeout)."""


class WorkerGone(RuntimeError):
    """The worker died or was killed while it held requests."""


HOLD_S = 30.0  # how long the room held for a request's later choices stays held


class QueueFull(RuntimeError):
    """Every slot is busy and the waiting line is at its bound: come back later."""

    def __init__(self, model: str, slots: int, max_queue: int, retry_after_s: int) -> None:
        super().__init__(
            f"model '{model}' is busy: {slots} sequences running and {max_queue} waiting "
            f"(each choice of a request with n is one), the most it queues; retry in about "
            f"{retry_after_s} s"
        )
        self.retry_after_s = retry_after_s


def retry_after_s(request_s: float | None, slots: int) -> int:
    """Seconds a client turned away should wait: about until one of the `slots` running
    requests ends (a request lasts `request_s` on average here), so that a client's retry
    (the openai SDK's honours this header up to 60 s) finds room. 1 before any finished."""
    if request_s is None:
        return 1
    return max(1, min(60, math.ceil(request_s / max(slots, 1))))


@dataclass(frozen=True)
class WorkerSpec:
    model: str
    model_path: str
    n_ctx: int
    n_gpu_layers: int = 0
    n_threads: int | None = None
    embedding: bool = False
    chat_template: str | None = None
    slots: int = 1  # sequences decoded together
    max_queue: int = 8  # requests waiting past the slots before a 429
    flash_attn: str = "auto"
    deterministic: bool = False  # every request computed as if alone
    kv_unified: bool = False  # one KV pool shared by the slots, not a stream per slot
    n_batch: int = 512
    state_key: str | None = None  # what saved prompt states are valid for
    state_dir: str | None = None
    state_ram_bytes: int = 0
    state_disk_bytes: int = 0
    state_min_save_s: float = 0.05
    weight_repack: bool = True
    format: str = "gguf"  # "onnx" (onnxruntime-genai) or "onnx-encoder" for model folders
    tool_parser: str | None = None  # models.toml `tool_parser`: the output family to parse

    def config_json(self) -> str:
        return json.dumps(
            {
                "format": self.format,
                "tool_parser": self.tool_parser,
                "model_path": self.model_path,
                "n_ctx": self.n_ctx,
                "n_gpu_layers": self.n_gpu_layers,
                "n_threads": self.n_threads,
                "embedding": self.embedding,
                "chat_template": self.chat_template,
                "slots": self.slots,
                "cache_seqs": max(8, 2 * self.slots),
                "n_batch": self.n_batch,
                "flash_attn": self.flash_attn,
                "kv_unified": self.kv_unified,
                "state_key": self.state_key,
                "state_dir": self.state_dir,
                "state_ram_bytes": self.state_ram_bytes,
                "state_disk_bytes": self.state_disk_bytes,
                "state_min_save_s": self.state_min_save_s,
                "weight_repack": self.weight_repack,
            }
        )


def _describe_exit(returncode: int | None) -> str:
    if returncode is None:
        return "stopped answering"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        hint = (
            " (killed: out of memory, or by an operator)" if -returncode == signal.SIGKILL else ""
        )
        return f"was killed by {name}{hint}"
    return f"exited with status {returncode}"


class WorkerProcess:
    def __init__(
        self, spec: WorkerSpec, *, heartbeat_timeout_s: float = 15.0, stop_grace_s: float = 20.0
    ) -> None:
        self.spec = spec
        self.heartbeat_timeout_s = heartbeat_timeout_s
        # How long a stopping worker gets to write its prompt cache to disk and exit.
        self.stop_grace_s = stop_grace_s
        self.info: dict[str, Any] = {}
        self.pid: int | None = None
        self.started_at = 0.0
        self.exit_reason: str | None = None
        self.on_exit: list[Any] = []  # callables(worker) run once when the worker is gone
        self._proc: asyncio.subprocess.Process | None = None
        self._channel: AsyncChannel | None = None
        self._streams: dict[str, asyncio.Queue[Frame]] = {}
        # Room held for the choices still to come of a request admitted with n of them:
        # group id -> (choices left, when held). Held room lapses after HOLD_S.
        self._held: dict[str, tuple[int, float]] = {}
        self._last_beat = 0.0
        self._tasks: list[asyncio.Task[None]] = []
        self._ready: asyncio.Future[Frame] | None = None
        self._closing = False
        self.reported_queue = 0  # waiting requests, as the last heartbeat said
        self.request_s: float | None = None  # how long a request takes here, on average
        self.scheduler_stats: dict[str, Any] = {}

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.returncode is None and self.exit_reason is None

    @property
    def in_flight(self) -> int:
        return len(self._streams)

    @property
    def slots(self) -> int:
        return int(self.info.get("slots") or self.spec.slots)

    @property
    def queue_depth(self) -> int:
        """Requests waiting for a slot: those sent past the slots, known here at once, or
        what the worker last said waits (a deterministic request waits with slots free),
        never more than are in flight now."""
        return max(self.in_flight - self.slots, min(self.reported_queue, self.in_flight), 0)

    @property
    def slots_busy(self) -> int:
        return min(self.in_flight, self.slots)

    def cache_stats(self) -> dict[str, Any]:
        """The worker's last reported prompt-cache and batching counters."""
        return dict(self.scheduler_stats)

    async def start(self, load_timeout_s: float) -> dict[str, Any]:
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        cmd = [
            sys.executable,
            "-m",
            "appliance.engines.worker",
            "--fd",
            str(child.fileno()),
            "--config",
            self.spec.config_json(),
            "--parent-pid",
            str(os.getpid()),
        ]
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *cmd,
                pass_fds=(child.fileno(),),
                stdin=asyncio.subprocess.DEVNULL,
            )
        finally:
            child.close()
        self.pid = self._proc.pid
        self.started_at = time.monotonic()
        self._last_beat = time.monotonic()
        self._channel = await AsyncChannel.from_socket(parent)
        loop = asyncio.get_running_loop()
        self._ready = loop.create_future()
        self._tasks = [
            asyncio.create_task(self._read_loop(), name=f"worker-read-{self.spec.model}"),
            asyncio.create_task(self._watch_loop(), name=f"worker-watch-{self.spec.model}"),
        ]
        try:
            return await self._await_ready(load_timeout_s)
        except BaseException:
            for task in self._tasks:  # a failed start leaves no watchdog behind
                task.cancel()
            raise

    async def _await_ready(self, load_timeout_s: float) -> dict[str, Any]:
        assert self._ready is not None
        try:
            frame = await asyncio.wait_for(asyncio.shield(self._ready), load_timeout_s)
        except TimeoutError:
            await self.kill(f"did not finish loading within {load_timeout_s:.0f} s")
            raise WorkerStartError(
                f"model '{self.spec.model}' did not load within {load_timeout_s:.0f} s"
            ) from None
        except WorkerGone as exc:
            raise WorkerStartError(f"model '{self.spec.model}' failed to load: {exc}") from None
        if frame["type"] == "load_failed":
            await self.kill("load failed")
            raise WorkerStartError(
                f"model '{self.spec.model}' failed to load: {frame.get('message', 'unknown error')}"
            )
        self.info = dict(frame.get("info") or {})
        log.info(
            "worker for %s ready (pid %s, %.2f s)",
            self.spec.model,
            self.pid,
            time.monotonic() - self.started_at,
        )
        return self.info

    async def _read_loop(self) -> None:
        assert self._channel is not None
        reason = "closed its channel"
        try:
            while True:
                frame = await self._channel.recv()
                self._last_beat = time.monotonic()
                kind = frame["type"]
                if kind == "heartbeat":
                    self.reported_queue = int(frame.get("queue", 0))
                    stats = frame.get("scheduler")
                    if isinstance(stats, dict):
                        self.scheduler_stats = stats
                elif kind in ("ready", "load_failed"):
                    if self._ready is not None and not self._ready.done():
                        self._ready.set_result(frame)
                else:
                    stream = self._streams.get(str(frame.get("id")))
                    if stream is not None:
                        stream.put_nowait(frame)
                        if kind in TERMINAL_FRAMES:
                            self._streams.pop(str(frame.get("id")), None)
        except ProtocolError:
            pass
        except asyncio.CancelledError:
            return
        if self._proc is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._proc.wait(), 5)
            reason = _describe_exit(self._proc.returncode)
        await self._gone(self.exit_reason or reason)

    async def _watch_loop(self) -> None:
        try:
            while True:
                await asyncio.sleep(1.0)
                if self._proc is not None and self._proc.returncode is not None:
                    return  # gone already: the read loop reports it
                if self._ready is not None and not self._ready.done():
                    # Loading: the load timeout is the bound. A runtime may hold the GIL
                    # for the whole load (onnxruntime-genai does), so no beats come.
                    self._last_beat = time.monotonic()
                    continue
                if time.monotonic() - self._last_beat > self.heartbeat_timeout_s:
                    log.warning(
                        "worker for %s sent no heartbeat for %.0f s: killing it",
                        self.spec.model,
                        self.heartbeat_timeout_s,
                    )
                    await self.kill(
                        f"stopped answering for {self.heartbeat_timeout_s:.0f} s and was killed"
                    )
                    return
        except asyncio.CancelledError:
            return

    async def _gone(self, reason: str) -> None:
        if self.exit_reason is None:
            self.exit_reason = reason
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(WorkerGone(reason))
            self._ready.exception()  # mark retrieved
        streams, self._streams = self._streams, {}
        for request_id, stream in streams.items():
            stream.put_nowait(
                {
                    "type": "error",
                    "id": request_id,
                    "code": "engine_crashed",
                    "status": 500,
                    "message": (
                        f"the engine worker for model '{self.spec.model}' {self.exit_reason} "
                        "while serving this request; it will be restarted on the next request"
                    ),
                }
            )
        callbacks, self.on_exit = self.on_exit, []
        for callback in callbacks:
            callback(self)

    async def kill(self, reason: str) -> None:
        if self.exit_reason is None:
            self.exit_reason = reason
        if self._proc is not None and self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._proc.wait(), 10)

    async def stop(self) -> None:
        """End the worker on purpose: its memory comes back to the box."""
        self._closing = True
        if self._channel is not None and self.alive:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._channel.send({"type": "shutdown"}), 2)
        if self._proc is not None and self._proc.returncode is None:
            try:
                await asyncio.wait_for(self._proc.wait(), self.stop_grace_s)
            except TimeoutError:
                await self.kill("unloaded")
        if self.exit_reason is None:
            self.exit_reason = "unloaded"
        await self._gone(self.exit_reason)
        for task in self._tasks:
            task.cancel()
        if self._channel is not None:
            self._channel.close()

    def _admit(self, group: Any) -> None:
        """Room for one more sequence, or QueueFull. The first choice of a request with n
        (`group`: {"id", "size"}) is admitted only if all n fit, and holds the room of the
        others: they came one at a time, and three requests of n=8 on 20 places got
        one answer and two 429s after their first choices had run."""
        now = time.monotonic()
        self._held = {g: h for g, h in self._held.items() if now - h[1] < HOLD_S}
        gid = str(group["id"]) if isinstance(group, dict) else None
        if gid is not None and gid in self._held:
            left, since = self._held.pop(gid)
            if left > 1:
                self._held[gid] = (left - 1, since)
            return
        need = int(group.get("size", 1)) if isinstance(group, dict) else 1
        held = sum(left for left, _ in self._held.values())
        if self.in_flight + held + need > self.slots + self.spec.max_queue:
            wait = retry_after_s(self.request_s, self.slots)
            raise QueueFull(self.spec.model, self.slots, self.spec.max_queue, wait)
        if gid is not None and need > 1:
            self._held[gid] = (need - 1, now)

    async def request(self, frame: Frame, ping_s: float = 0.0) -> AsyncGenerator[Frame, None]:
        """Send one request and yield its frames until a terminal one; a generation gets a
        `ping` frame after each `ping_s` (when above 0) without one, so that a stream can
        show its client it is alive through a long queue wait or prompt.

        Leaving the iteration early (client gone) cancels the request in the worker.
        """
        if not self.alive or self._channel is None:
            raise WorkerGone(self.exit_reason or "not running")
        if frame.get("type") == "generate":
            self._admit(frame.get("group"))
        request_id = f"r{next(_ids)}"
        started = time.monotonic()
        stream: asyncio.Queue[Frame] = asyncio.Queue()
        self._streams[request_id] = stream
        finished = False
        try:
            await self._channel.send({**frame, "id": request_id})
            pings = ping_s if ping_s > 0 and frame.get("type") == "generate" else None
            while True:
                try:
                    # asyncio.timeout, not wait_for: wait_for swallows a cancellation (a
                    # client gone) that lands as a frame arrives, and the request then runs
                    # on to its end. A get the timeout cancels loses no frame.
                    async with asyncio.timeout(pings):
                        item = await stream.get()
                except TimeoutError:
                    yield {"type": "ping", "id": request_id}
                    continue
                if item["type"] in TERMINAL_FRAMES:
                    finished = True
                    if item["type"] == "done" and frame.get("type") == "generate":
                        took = time.monotonic() - started  # a moving average of the last ~5
                        self.request_s = (
                            took if self.request_s is None else (0.8 * self.request_s + 0.2 * took)
                        )
                    yield item
                    return
                yield item
        finally:
            if not finished:
                self._streams.pop(request_id, None)
                if self.alive and self._channel is not None:
                    with contextlib.suppress(Exception):
                        await self._channel.send({"type": "cancel", "id": request_id})
