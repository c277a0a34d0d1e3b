"""How `qwenctl serve` stops: a drain with a hard end.

On Ctrl-C or SIGTERM the server stops accepting and lets requests in flight finish, for at most
`drain_s` seconds (``--drain``). What is still running then is abandoned:

- llama.cpp (uvicorn): uvicorn cancels the request tasks at the drain's end. ``InFlight`` ends each
  cancelled response itself (a 503 body if nothing was sent yet, else the end of the stream), so the
  log gets one warning line instead of a ``CancelledError`` traceback per stream (uvicorn logs
  "Exception in ASGI application" for a task that ends in CancelledError).
- The engine call behind a request runs in a worker thread that nothing can cancel (a model stuck in
  a C call, or emitting partial UTF-8 forever, was seen to keep the process alive at 100 % CPU for
  more than 10 minutes, the interpreter joining that thread at exit). So once work was abandoned the
  process leaves with ``os._exit``, and a watchdog started with the signal does the same if the
  drain itself does not return (``drain_s`` + ``HARD_END_GRACE_S``).

Exit status: 0 after a clean drain, 12 (``ExitCode.ABANDONED``) when work was abandoned.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable

from qwenctl.errors import ExitCode

log = logging.getLogger("qwenctl.serve")

# After the drain: uvicorn's own shutdown steps (a 0.1 s pause, cancelling tasks, closing sockets)
HARD_END_GRACE_S = 2.0


def hard_exit(code: ExitCode) -> None:
    """Leave now, without joining threads (an engine call may never return) or running C++ destructors."""
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(int(code))


def start_watchdog(drain_s: float) -> threading.Timer:
    """The hard end: exit 12 if the process is still here `drain_s` + grace seconds from now."""

    def abandon() -> None:
        log.warning("requests were still running %.0f s after the stop signal; abandoned them", drain_s)
        hard_exit(ExitCode.ABANDONED)

    timer = threading.Timer(drain_s + HARD_END_GRACE_S, abandon)
    timer.daemon = True
    timer.start()
    return timer


class InFlight:
    """ASGI layer counting HTTP requests in flight, ending those cancelled at the drain's end quietly."""

    def __init__(self, app) -> None:
        self.app = app
        self.active = 0
        self.abandoned = 0

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def tracked_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        self.active += 1
        try:
            await self.app(scope, receive, tracked_send)
        except asyncio.CancelledError:
            self.abandoned += 1
            log.warning("stopped %s %s: still running when the drain ended", scope.get("method"), scope.get("path"))
            with contextlib.suppress(Exception):
                if not started:
                    body = json.dumps({"error": {"message": "the server is shutting down", "type": "server_error",
                                                 "param": None, "code": "shutting_down"}}).encode()
                    await send({"type": "http.response.start", "status": 503,
                                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
                    await send({"type": "http.response.body", "body": body, "more_body": False})
                else:
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            self.active -= 1


def uvicorn_server_class(drain_s: float, on_ready: Callable[[], None] = lambda: None):
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, except that a stop signal ends `run()` normally and starts the hard end.

        uvicorn re-raises a captured SIGINT/SIGTERM once it has drained, which would turn a clean
        stop into "killed by signal"; here the drain is the whole answer to the signal.
        """

        watchdog: threading.Timer | None = None

        async def startup(self, sockets=None) -> None:
            await super().startup(sockets=sockets)
            if not self.should_exit:
                on_ready()  # serving, with the stop signals captured: a SIGTERM from now on drains

        def handle_exit(self, sig, frame) -> None:
            if self.watchdog is None:
                self.watchdog = start_watchdog(drain_s)
            super().handle_exit(sig, frame)

        @contextlib.contextmanager
        def capture_signals(self):
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    return Server


def run_uvicorn(app, config_kwargs: dict, sock, drain_s: float, on_ready: Callable[[], None]) -> None:
    """Serve `app` on `sock` (calling `on_ready` once serving) until a stop signal and the drain; return only
    after a clean drain."""
    import uvicorn

    in_flight = InFlight(app)
    server_class = uvicorn_server_class(drain_s, on_ready)
    server = server_class(uvicorn.Config(in_flight, timeout_graceful_shutdown=drain_s, **config_kwargs))
    server.run(sockets=[sock])
    if in_flight.abandoned or in_flight.active:
        log.warning("stopped with %d request(s) abandoned", max(in_flight.abandoned, in_flight.active))
        hard_exit(ExitCode.ABANDONED)
    if server.watchdog is not None:
        server.watchdog.cancel()
