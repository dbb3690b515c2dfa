"""systemd's notify protocol (``sd_notify(3)``) without libsystemd.

With ``Type=notify`` systemd hands the service ``$NOTIFY_SOCKET``, a datagram socket
(a path, or an abstract name written with a leading ``@``), and waits for
``READY=1`` before it counts the service as started; ``STATUS=`` lines show in
``systemctl status``. With ``WatchdogSec=`` it also sets ``$WATCHDOG_USEC`` and
restarts the service when no ``WATCHDOG=1`` arrives in that time: the pings come
from the daemon's event loop, so a wedged loop is restarted. Outside systemd (no
``$NOTIFY_SOCKET``) every call does nothing.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Mapping, MutableMapping

__all__ = ["Notifier", "watchdog_interval"]

log = logging.getLogger("appliance.sd_notify")

NOTIFY_VARS = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


def _address(value: str | None) -> str | None:
    if not value:
        return None
    if value.startswith("@"):
        return "\0" + value[1:]  # an abstract socket
    if value.startswith("/"):
        return value
    return None  # vsock: addresses are not supported here


def watchdog_interval(env: Mapping[str, str], pid: int | None = None) -> float | None:
    """Seconds between ``WATCHDOG=1`` pings (half of ``$WATCHDOG_USEC``), or None when
    systemd watches no process or another one (``$WATCHDOG_PID``)."""
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    owner = env.get("WATCHDOG_PID")
    if owner and owner.isdigit() and int(owner) != (pid if pid is not None else os.getpid()):
        return None
    return usec / 2e6


class Notifier:
    """Messages to systemd's notify socket; sends nothing when there is none."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.address = _address(env.get("NOTIFY_SOCKET"))
        self.watchdog_s = watchdog_interval(env) if self.address else None
        self._socket: socket.socket | None = None
        self._status: str | None = None

    @classmethod
    def from_environ(cls, environ: MutableMapping[str, str] = os.environ) -> Notifier:
        """A notifier for this process, taking the variables out of `environ` so that the
        engine workers (children) never talk to systemd as if they were the service."""
        notifier = cls(environ)
        for name in NOTIFY_VARS:
            environ.pop(name, None)
        return notifier

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *fields: str) -> bool:
        """One datagram of ``KEY=value`` lines; False when it could not be sent."""
        if self.address is None:
            return False
        try:
            if self._socket is None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                sock.setblocking(False)
                self._socket = sock
            self._socket.sendto("\n".join(fields).encode(), self.address)
        except OSError as exc:
            log.debug("cannot notify systemd at %r: %s", self.address, exc)
            return False
        return True

    def ready(self, status: str) -> None:
        self._status = status
        self.send("READY=1", f"STATUS={status}", f"MAINPID={os.getpid()}")

    def status(self, status: str) -> None:
        """``STATUS=`` when it differs from the last one sent."""
        if status != self._status:
            self._status = status
            self.send(f"STATUS={status}")

    def stopping(self, status: str) -> None:
        self._status = status
        self.send("STOPPING=1", f"STATUS={status}")

    async def watchdog(self) -> None:
        """Ping every half watchdog period, from the event loop, until cancelled."""
        if self.watchdog_s is None:
            return
        while True:
            self.send("WATCHDOG=1")
            await asyncio.sleep(self.watchdog_s)

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
