"""How ``medloop serve`` runs the app: uvicorn's httptools protocol, with the writes of one
event-loop turn sent together, in a process whose start-up heap is kept out of the cyclic
garbage collector (``settle_heap``).

uvicorn writes a response's status line and headers, then its body, as two ``write`` calls; on
uvloop each is a ``send`` system call of its own, so a small JSON answer costs two TCP segments
and wakes the client twice. ``CoalescingTransport`` gathers what is written during one turn of
the event loop and sends it once at the end of the turn (before closing, when the connection
closes): the bytes and their order are unchanged.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from medloop.ops.logs import lean_records

if TYPE_CHECKING:
    from fastapi import FastAPI

    from medloop.settings import Settings


class CoalescingTransport:
    """A transport whose ``write``s of one event-loop turn become one write of the real one."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(data)

    def _flush(self) -> None:
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            if not self._transport.is_closing():
                self._transport.write(data)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class HttpProtocol(HttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]


def settle_heap() -> None:
    """Freeze what the process holds once the app is built (modules, routes, schemas, the
    engine): it lives as long as the process, and a full pass of the cyclic collector stops
    every thread while it walks it. Measured under bench/api.py: a full pass took 100-150 ms
    over the start-up heap, 30-40 ms without it. From then on what survives a full pass is
    frozen too (``_freeze_survivors``). Frozen objects are still freed by reference counting;
    only the serving processes call this (tests build many short-lived apps)."""
    gc.collect()
    gc.freeze()
    if _freeze_survivors not in gc.callbacks:
        gc.callbacks.append(_freeze_survivors)


THAW_SECONDS = 600.0
"""At most this long between two full passes over the whole heap (see ``_freeze_survivors``)."""

_last_thaw = time.monotonic()


def _freeze_survivors(phase: str, info: dict[str, Any]) -> None:
    """After a full pass of the cyclic collector, freeze what survived it: what a serving
    process keeps growing is long-lived (the catalogue knowledge built at the first command,
    the patients' cached states), and without this every full pass walks all of it with every
    thread stopped, longer the more patients are cached. Frozen objects are still freed by
    reference counting when dropped (a cached state's values hold no cycles); so that cyclic
    garbage among them cannot pile up, the first full pass after ``THAW_SECONDS`` unfreezes
    first and so walks the whole heap once."""
    global _last_thaw
    if info.get("generation") != 2:
        return
    if phase == "start":
        if time.monotonic() - _last_thaw >= THAW_SECONDS:
            _last_thaw = time.monotonic()
            gc.unfreeze()
    elif phase == "stop":
        gc.freeze()


class SettingsConfig(uvicorn.Config):
    """uvicorn's configuration with medloop's settings on board, for ``medloop serve --workers
    N``: uvicorn's process supervisor pickles its configuration into every worker it starts (and
    restarts), so each worker builds its app from the very settings the parent read (``--db``
    included) instead of reading the environment again, and the parent's environment is not
    written to pass them on."""

    def __init__(self, settings: Settings, **options: Any) -> None:
        super().__init__("medloop.api.app:create_app", factory=True, **options)
        self.medloop_settings = settings

    def load_app(self) -> Callable[[], FastAPI]:
        settings = self.medloop_settings

        def factory() -> FastAPI:
            from medloop.api.app import create_app
            from medloop.settings import install

            install(settings)  # the worker's subsystems read the parent's settings
            app = create_app(settings)
            settle_heap()
            lean_records()
            return app

        return factory
