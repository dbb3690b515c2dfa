"""What both of the worker's serving loops (the llama.cpp `Scheduler` and the ONNX
`Runner`) do with frames: the reader thread queues them, and the loop takes them in
order between steps — a generate becomes a waiting sequence (or its error now), a
cancel ends one, a shutdown ends the loop."""

from __future__ import annotations

import queue
import time
from collections import deque

from appliance.engines.protocol import Frame
from appliance.engines.sequence import Sequence


class RequestInbox:
    def __init__(self) -> None:
        self.inbox: queue.Queue[Frame] = queue.Queue()
        self.waiting: deque[Sequence] = deque()
        self.stopping = False

    def submit(self, frame: Frame) -> None:
        """A generate, cancel or shutdown frame (from the reader thread)."""
        self.inbox.put(frame)

    def _intake(self, request_id: str, frame: Frame) -> Sequence | None:
        raise NotImplementedError

    def _cancel(self, request_id: str) -> None:
        raise NotImplementedError

    def _drain(self, block: bool) -> None:
        try:
            frame = self.inbox.get() if block else self.inbox.get_nowait()
        except queue.Empty:
            return
        while True:
            self._take(frame)
            try:
                frame = self.inbox.get_nowait()
            except queue.Empty:
                return

    def _gather(self, seconds: float, until_waiting: int) -> None:
        """Take the frames that arrive within `seconds`, or until `until_waiting` wait."""
        deadline = time.monotonic() + seconds
        while len(self.waiting) < until_waiting and not self.stopping:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                frame = self.inbox.get(timeout=left)
            except queue.Empty:
                return
            self._take(frame)

    def _take(self, frame: Frame) -> None:
        kind = frame.get("type")
        request_id = str(frame.get("id"))
        if kind == "generate":
            seq = self._intake(request_id, frame)
            if seq is not None:
                self.waiting.append(seq)
        elif kind == "cancel":
            self._cancel(request_id)
        elif kind == "shutdown":
            self.stopping = True
