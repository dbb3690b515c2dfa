"""The engine worker process: one loaded model, its request queue, its scheduler.

Started by the supervisor as `python -m appliance.engines.worker --fd N --config JSON`
with one end of a Unix socket pair. A reader thread takes frames off the socket
(requests join the queue, cancels mark a request), a heartbeat thread proves the
process is alive and dies with its parent, and the main thread serves the queue.
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
from typing import Any

from appliance.engines.protocol import BlockingChannel, Frame, ProtocolError

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
        self.requests: queue.Queue[Frame | None] = queue.Queue()
        self.cancelled: set[str] = set()
        self.lock = threading.Lock()
        self.engine: Any = None

    # -- threads ----------------------------------------------------------------------------

    def heartbeat_loop(self) -> None:
        while True:
            time.sleep(HEARTBEAT_INTERVAL_S)
            if os.getppid() != self.parent_pid:
                os._exit(3)
            try:
                self.channel.send({"type": "heartbeat", "queue": self.requests.qsize()})
            except OSError:
                os._exit(3)

    def reader_loop(self) -> None:
        while True:
            try:
                frame = self.channel.recv()
            except (ProtocolError, OSError):
                os._exit(0)  # the daemon closed our channel: nothing left to serve
            kind = frame["type"]
            if kind in ("generate", "embed"):
                self.requests.put(frame)
            elif kind == "cancel":
                with self.lock:
                    self.cancelled.add(str(frame.get("id")))
            elif kind == "shutdown":
                os._exit(0)

    def is_cancelled(self, request_id: str) -> bool:
        with self.lock:
            return request_id in self.cancelled

    # -- serving ----------------------------------------------------------------------------

    def load(self) -> bool:
        from appliance.engines.llamacpp import EngineConfig, LlamaEngine

        cfg = EngineConfig(
            model_path=self.config["model_path"],
            n_ctx=int(self.config.get("n_ctx", 4096)),
            n_gpu_layers=int(self.config.get("n_gpu_layers", 0)),
            n_threads=self.config.get("n_threads"),
            embedding=bool(self.config.get("embedding", False)),
            chat_template=self.config.get("chat_template"),
        )
        try:
            self.engine = LlamaEngine(cfg)
        except Exception as exc:
            self.channel.send({"type": "load_failed", "message": f"{type(exc).__name__}: {exc}"})
            return False
        self.channel.send({"type": "ready", "info": self.engine.info(), "pid": os.getpid()})
        return True

    def serve(self) -> None:
        while True:
            frame = self.requests.get()
            if frame is None:
                return
            request_id = str(frame.get("id"))
            if self.is_cancelled(request_id):
                self._forget(request_id)
                self.channel.send(
                    {
                        "type": "done",
                        "id": request_id,
                        "finish_reason": "cancelled",
                        "prompt_tokens": 0,
                        "completion_tokens": 0,
                    }
                )
                continue
            try:
                if frame["type"] == "embed":
                    self._embed(request_id, frame)
                else:
                    self._generate(request_id, frame)
            except Exception as exc:
                from appliance.engines.llamacpp import EngineRequestError

                if isinstance(exc, EngineRequestError):
                    self.channel.send(
                        {
                            "type": "error",
                            "id": request_id,
                            "code": exc.code,
                            "status": exc.status,
                            "message": exc.message,
                            "param": exc.param,
                        }
                    )
                else:
                    traceback.print_exc(file=sys.stderr)
                    self.channel.send(
                        {
                            "type": "error",
                            "id": request_id,
                            "code": "engine_error",
                            "status": 500,
                            "message": f"engine failed: {type(exc).__name__}: {exc}",
                        }
                    )
            finally:
                self._forget(request_id)

    def _forget(self, request_id: str) -> None:
        with self.lock:
            self.cancelled.discard(request_id)

    def _generate(self, request_id: str, frame: Frame) -> None:
        from appliance.engines.llamacpp import GenerationResult

        engine = self.engine
        params = dict(frame.get("params") or {})
        reasoning_started = False
        if frame.get("mode") == "chat":
            text, reasoning_started = engine.render_chat(frame.get("messages") or [])
            tokens = engine.prompt_tokens(text, templated=True)
            param = "messages"
        else:
            text = str(frame.get("prompt", ""))
            tokens = engine.prompt_tokens(text, templated=False)
            param = "prompt"
        if not tokens:
            tokens = [engine.bos_token_id]
        engine.check_context(len(tokens), param)
        self.channel.send(
            {
                "type": "started",
                "id": request_id,
                "prompt_tokens": len(tokens),
                "reasoning_started": reasoning_started,
            }
        )
        result = GenerationResult()
        for piece in engine.generate(tokens, params, lambda: self.is_cancelled(request_id), result):
            self.channel.send({"type": "token", "id": request_id, "text": piece})
        self.channel.send(
            {
                "type": "done",
                "id": request_id,
                "finish_reason": result.finish_reason,
                "prompt_tokens": result.prompt_tokens,
                "completion_tokens": result.completion_tokens,
                "cached_tokens": result.cached_tokens,
                "prompt_s": round(result.prompt_s, 6),
                "decode_s": round(result.decode_s, 6),
            }
        )

    def _embed(self, request_id: str, frame: Frame) -> None:
        vectors, n_tokens = self.engine.embed([str(x) for x in frame.get("inputs") or []])
        self.channel.send(
            {"type": "embeddings", "id": request_id, "data": vectors, "prompt_tokens": n_tokens}
        )


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
    sys.exit(main())
