"""The engine worker process: one loaded model and its scheduler.

The model's format picks the engine: a GGUF runs on llama.cpp under the batching
`Scheduler`; an ONNX LLM folder on onnxruntime-genai under `genai_runner.Runner`
(the same frames in and out); an ONNX encoder folder serves embeddings.

Started by the supervisor as `python -m appliance.engines.worker --fd N --config JSON`
with one end of a Unix socket pair. A reader thread takes frames off the socket and
hands them to the scheduler (generate, cancel, shutdown) or the embedding queue, a
heartbeat thread proves the process is alive (with the scheduler's counters) and
dies with its parent, and the main thread runs the scheduler's steps.
A crash or hang here costs only this model's requests; the daemon restarts it.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import queue
import signal
import socket
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from appliance.engines.cache_costs import CacheCosts
from appliance.engines.engine import EngineRequestError, error_frame
from appliance.engines.genai_runner import Runner
from appliance.engines.protocol import BlockingChannel, Frame, ProtocolError
from appliance.engines.scheduler import Scheduler
from appliance.engines.state_store import StateStore
from appliance.engines.token_service import QUESTIONS, answer

HEARTBEAT_INTERVAL_S = 1.0
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL us when the daemon goes; the heartbeat thread double-checks."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass


class Worker:
    def __init__(self, channel: BlockingChannel, config: dict[str, Any], parent_pid: int) -> None:
        self.channel = channel
        self.config = config
        self.parent_pid = parent_pid
        self.requests: queue.Queue[Frame | None] = queue.Queue()  # embedding requests
        self.engine: Any = None
        self.scheduler: Scheduler | Runner | None = None

    # -- threads ----------------------------------------------------------------------------

    def heartbeat_loop(self) -> None:
        while True:
            time.sleep(HEARTBEAT_INTERVAL_S)
            if os.getppid() != self.parent_pid:
                os._exit(3)
            beat: Frame = {"type": "heartbeat", "queue": self.requests.qsize()}
            scheduler = self.scheduler
            if scheduler is not None:
                stats = scheduler.stats()
                beat["queue"] = stats["waiting"]
                beat["scheduler"] = stats
            try:
                self.channel.send(beat)
            except OSError:
                os._exit(3)

    def reader_loop(self) -> None:
        while True:
            try:
                frame = self.channel.recv()
            except (ProtocolError, OSError):
                os._exit(0)  # the daemon closed our channel: nothing left to serve
            kind = frame["type"]
            if kind in QUESTIONS:
                self.channel.send(answer(self.engine, frame))
            elif self.scheduler is not None and kind in ("generate", "cancel", "shutdown"):
                self.scheduler.submit(frame)
            elif kind == "embed":
                self.requests.put(frame)
            elif kind == "generate":
                self._send_error(
                    str(frame.get("id")),
                    EngineRequestError("this is an embedding model", "wrong_model_kind", 400),
                )
            elif kind == "shutdown":
                os._exit(0)

    # -- serving ----------------------------------------------------------------------------

    def load(self) -> bool:
        kind = self.config.get("format") or "gguf"
        try:
            if kind == "onnx":
                return self._load_genai()
            if kind == "onnx-encoder":
                from appliance.engines.onnx_encoder import OnnxEncoder

                self.engine = OnnxEncoder(self.config["model_path"], self.config.get("n_threads"))
                return self._ready()
        except Exception as exc:
            self.channel.send({"type": "load_failed", "message": f"{type(exc).__name__}: {exc}"})
            return False
        return self._load_llama()

    def _ready(self) -> bool:
        self.channel.send({"type": "ready", "info": self.engine.info(), "pid": os.getpid()})
        return True

    def _load_genai(self) -> bool:
        from appliance.engines.genai import GenaiConfig, GenaiEngine

        config = self.config
        self.engine = GenaiEngine(
            GenaiConfig(
                model_path=config["model_path"],
                n_ctx=int(config.get("n_ctx", 4096)),
                n_threads=config.get("n_threads"),
                use_gpu=int(config.get("n_gpu_layers", 0)) != 0,
                chat_template=config.get("chat_template"),
                n_slots=int(config.get("slots") or 1),
                tool_parser=config.get("tool_parser"),
            )
        )
        self.scheduler = Runner(self.engine, self.channel.send, n_slots=self.engine.n_slots)
        return self._ready()

    def _load_llama(self) -> bool:
        from appliance.engines.llamacpp import EngineConfig, LlamaEngine

        config = self.config
        embedding = bool(config.get("embedding", False))
        cfg = EngineConfig(
            model_path=config["model_path"],
            n_ctx=int(config.get("n_ctx", 4096)),
            n_gpu_layers=int(config.get("n_gpu_layers", 0)),
            n_threads=config.get("n_threads"),
            embedding=embedding,
            chat_template=config.get("chat_template"),
            n_slots=int(config.get("slots") or 1),
            n_cache_seqs=int(config.get("cache_seqs", 4)),
            kv_unified=bool(config.get("kv_unified", False)),
            n_batch=int(config.get("n_batch") or 512),
            flash_attn=str(config.get("flash_attn") or "auto"),
            weight_repack=bool(config.get("weight_repack", True)),
            tool_parser=config.get("tool_parser"),
        )
        try:
            self.engine = LlamaEngine(cfg)
        except Exception as exc:
            self.channel.send({"type": "load_failed", "message": f"{type(exc).__name__}: {exc}"})
            return False
        if not embedding:
            self.scheduler = Scheduler(
                self.engine,
                self.channel.send,
                n_slots=self.engine.n_slots,
                states=self._state_store(self.engine.kv_layout),
                costs=CacheCosts(min_saved_s=float(self.config.get("state_min_save_s", 0.05))),
            )
        return self._ready()

    def _state_store(self, kv_layout: str) -> StateStore | None:
        """Saved prompt states, for this model file, context settings and KV layout (a state
        holds the layout's stream count: it cannot be restored into another)."""
        config = self.config
        ram = int(config.get("state_ram_bytes") or 0)
        disk = int(config.get("state_disk_bytes") or 0)
        key = config.get("state_key")
        if not key or (ram <= 0 and disk <= 0):
            return None
        folder = config.get("state_dir")
        disk_dir = Path(folder) if folder and disk > 0 else None
        return StateStore(f"{key}|kv={kv_layout}", ram, disk_dir, disk)

    def serve(self) -> None:
        if self.scheduler is not None:
            self.scheduler.run()
            return
        while True:
            frame = self.requests.get()
            if frame is None:
                return
            request_id = str(frame.get("id"))
            try:
                if frame.get("token_inputs"):
                    texts = self.engine.texts_of(frame["token_inputs"])
                else:
                    texts = [str(x) for x in frame.get("inputs") or []]
                vectors, n_tokens = self.engine.embed(texts)
            except Exception as exc:
                self._send_error(request_id, exc)
                continue
            self.channel.send(
                {"type": "embeddings", "id": request_id, "data": vectors, "prompt_tokens": n_tokens}
            )

    def _send_error(self, request_id: str, exc: Exception) -> None:
        if not isinstance(exc, EngineRequestError):
            traceback.print_exc(file=sys.stderr)
        self.channel.send(error_frame(request_id, exc))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="appliance-worker")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--config", required=True)
    parser.add_argument("--parent-pid", type=int, default=os.getppid())
    args = parser.parse_args(argv)
    _die_with_parent()
    if os.getppid() != args.parent_pid:
        return 3
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C on the daemon's terminal is the daemon's
    sock = socket.socket(fileno=args.fd)
    channel = BlockingChannel(sock)
    worker = Worker(channel, json.loads(args.config), args.parent_pid)
    threading.Thread(target=worker.heartbeat_loop, name="heartbeat", daemon=True).start()
    if not worker.load():
        return 2
    threading.Thread(target=worker.reader_loop, name="reader", daemon=True).start()
    worker.serve()
    return 0


if __name__ == "__main__":
    code = main()
    # Out without the interpreter's teardown, as multiprocessing's children leave: the
    # prompt cache is on disk and every frame sent; what is left (llama.cpp's model and
    # context, a GPU runtime, ctypes callbacks, daemon threads) the kernel frees at once,
    # where finalizing it can take seconds or wedge a stopping daemon.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
