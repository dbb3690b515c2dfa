"""The uvicorn server the daemon runs: signals drain it, systemd hears how it is doing.

uvicorn on its own stops listening at once on SIGTERM, gives requests a few seconds,
cancels the rest mid-answer and then re-raises the signal, so the process dies of
it. Here the first SIGTERM or SIGINT starts a drain (`appliance.api.drain`): the
socket stays open and answers 503, streams get `drain_timeout` to finish, and
the rest end with an error event; then uvicorn shuts down and the process exits 0.
A second signal ends the remaining requests at once, a third stops without waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from types import FrameType

import uvicorn

from appliance.api.drain import Drain
from appliance.sd_notify import Notifier
from appliance.tiers.manager import ModelManager

__all__ = ["DaemonServer", "listening_sockets", "serving_status"]

log = logging.getLogger("appliance")

STATUS_REFRESH_S = 30.0


def serving_status(manager: ModelManager) -> str:
    """The one line systemd shows: ``serving N models, M hot``."""
    try:
        known = len(manager.known_names())
    except Exception:  # the store unreadable for a moment: the count of runtime records
        known = len(manager.slots)
    hot = sum(1 for s in manager.slots.values() if s.worker is not None and s.worker.alive)
    return f"serving {known} model{'s' if known != 1 else ''}, {hot} hot"


def listening_sockets(config: uvicorn.Config, ollama_port: int) -> list[socket.socket] | None:
    """The sockets to serve on when the same API is also served on Ollama's port (tools
    that assume localhost:11434); None for the configured one alone (uvicorn binds it).
    A port already taken (Ollama itself running) is a warning: the daemon serves on."""
    if not ollama_port or ollama_port == config.port:
        return None
    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    extra = socket.socket(family, socket.SOCK_STREAM)
    extra.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        extra.bind((config.host, ollama_port))
    except OSError as exc:
        extra.close()
        log.warning(
            "not serving on Ollama's port %s too: %s (is Ollama running?)", ollama_port, exc
        )
        return None
    host = f"[{config.host}]" if family == socket.AF_INET6 else config.host
    log.info("serving the same API on Ollama's port too: http://%s:%s", host, ollama_port)
    return [config.bind_socket(), extra]


class DaemonServer(uvicorn.Server):
    def __init__(
        self,
        config: uvicorn.Config,
        *,
        drain: Drain,
        drain_timeout_s: float,
        notifier: Notifier,
        manager: ModelManager,
    ) -> None:
        super().__init__(config)
        self.drain = drain
        self.drain_timeout_s = drain_timeout_s
        self.notifier = notifier
        self.manager = manager
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drain_task: asyncio.Task[None] | None = None
        self._background: list[asyncio.Task[None]] = []
        self._signals = 0

    # -- lifecycle ----------------------------------------------------------------------------

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        try:
            await super().serve(sockets)
        finally:
            for task in self._background:
                task.cancel()
            for task in self._background:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            self.notifier.close()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if not self.started:
            return
        # The socket listens and the models are known: the API serves.
        self.notifier.ready(serving_status(self.manager))
        self._background.append(asyncio.ensure_future(self.notifier.watchdog()))
        self._background.append(asyncio.ensure_future(self._follow_status()))

    async def _follow_status(self) -> None:
        """A ``STATUS=`` line whenever an event changes what is served."""
        if not self.notifier.enabled:
            return
        with self.manager.subscribe() as events:
            while True:
                # An event, or now and then anyway (a model dropped into the store by hand).
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(events.get(), STATUS_REFRESH_S)
                    await asyncio.sleep(0.2)  # one line for a burst of events
                while not events.empty():
                    events.get_nowait()
                if self._drain_task is None:
                    self.notifier.status(serving_status(self.manager))

    # -- signals ------------------------------------------------------------------------------

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """Runs as the signal handler: hand the signal to the event loop."""
        loop = self._loop
        if loop is None or loop.is_closed():
            self.should_exit = True
            return
        loop.call_soon_threadsafe(self._on_signal, sig)

    def _on_signal(self, sig: int) -> None:
        self._signals += 1
        name = signal.Signals(sig).name
        if not self.started or self.should_exit:
            if self.should_exit and self._signals > 1:
                self.force_exit = True
            self.should_exit = True
            return
        if self._drain_task is None:
            self._drain_task = asyncio.ensure_future(self._drain_then_exit(name))
        elif self._signals == 2:
            log.info("%s again: ending the remaining requests now", name)
            self.drain.hurry()
        else:
            self.force_exit = self.should_exit = True

    async def _drain_then_exit(self, name: str) -> None:
        busy = self.drain.in_flight
        log.info(
            "%s: draining (no new requests; %d in flight get up to %gs to finish)",
            name,
            busy,
            self.drain_timeout_s,
        )
        self.notifier.stopping(f"draining: {busy} request{'s' if busy != 1 else ''} in flight")
        try:
            cut = await self.drain.run(self.drain_timeout_s)
        except Exception:  # never keep the daemon up because the drain failed
            log.exception("the drain failed; shutting down")
            cut = 0
        if cut:
            log.info("drain timeout: ended %d request(s) with a shutting_down error", cut)
        else:
            log.info("drained: every request finished")
        self.notifier.status("shutting down: unloading models")
        self.should_exit = True
