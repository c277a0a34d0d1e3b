"""Several requests decoded in one batch: a thread that runs the generation `Engine` for whoever asks.

`serve --parallel N` needs this: llama-cpp-python's server runs one request at a time and queues
the rest, while one llama.cpp context can hold N sequences and decode a token of each in one
``llama_decode``, at little more cost than one on a GPU (decoding is bound by reading weights).
Each sequence has its own sampler chain on the device, so requests stay independent: a greedy
reply is the same with or without company.

The thread owns the context (llama.cpp contexts are not thread-safe). Callers hand in a `Job`
and read its ticks from any thread or an asyncio loop; a job's ticks pile up in a deque while its
reader is busy, so a slow reader gets several tokens per wake-up instead of one wake-up each.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable

from qwenctl.backends.generation import Engine, Request, Slot, Tick
from qwenctl.errors import QwenctlError

log = logging.getLogger("qwenctl.serve")


class Job:
    """One request's reply as it is generated: ticks in order, then `done` (or `error`)."""

    def __init__(self, request: Request):
        self.request = request
        self.ticks: collections.deque[Tick] = collections.deque()
        self.done = False
        self.error: Exception | None = None
        self.cancelled = False
        self._wake: Callable[[], None] | None = None
        self._lock = threading.Lock()

    def cancel(self) -> None:
        """Stop generating (the client went away); the slot is freed at the next step."""
        self.cancelled = True

    def on_ready(self, wake: Callable[[], None]) -> bool:
        """Call `wake` once when something new arrives; False (and no call) if something is already there."""
        with self._lock:
            if self.ticks or self.done:
                return False
            self._wake = wake
            return True

    def _post(self, tick: Tick | None = None, error: Exception | None = None) -> None:
        with self._lock:
            if tick is not None:
                self.ticks.append(tick)
                self.done = tick.finish_reason is not None
            if error is not None:
                self.error, self.done = error, True
            wake, self._wake = self._wake, None
        if wake:
            wake()


class Scheduler:
    """Runs `engine` in a thread of its own; `submit` jobs, `stop` when serving ends."""

    def __init__(self, engine: Engine, on_first_token: Callable[[Engine, Slot], None] | None = None):
        self.engine = engine
        self._queue: collections.deque[Job] = collections.deque()
        self._jobs: dict[int, Job] = {}  # seq_id -> the job its slot is generating
        self._cond = threading.Condition()
        self._stopping = False
        self._first = on_first_token
        self.failed: Exception | None = None  # set by `fail`: the engine can no longer answer
        self._thread = threading.Thread(target=self._run, name="qwenctl-decode", daemon=True)

    def start(self) -> Scheduler:
        self._thread.start()
        return self

    def submit(self, job: Job) -> Job:
        with self._cond:
            if self.failed is None:
                self._queue.append(job)
                self._cond.notify()
                return job
        job._post(error=self.failed)
        return job

    def fail(self, error: Exception) -> None:
        """The engine can no longer answer (a lost RPC worker parks the decode thread for good, inside llama.cpp):
        every job now and later ends with `error`; `stop` then leaves the thread and the engine alone."""
        with self._cond:
            self.failed = error
            jobs = [*self._jobs.values(), *self._queue]
            self._queue.clear()
        for job in jobs:
            job._post(error=error)

    def stop(self) -> None:
        """Finish nothing more: pending jobs end with an error, the thread exits and frees the engine."""
        if self.failed is not None:
            return  # its thread is parked inside llama.cpp: joining would wait forever, freeing would crash
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join()

    # --- the thread ---------------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while self._admit():
                self._drop_cancelled()
                for slot, tick in self.engine.step():
                    self._deliver(slot, tick)
        except Exception as e:
            log.error("generation failed", exc_info=e)
            for job in [*self._jobs.values(), *self._queue]:
                job._post(error=e)
        finally:
            self.engine.close()

    def _admit(self) -> bool:
        """Start queued jobs in free slots; wait while there is nothing to do. False once stopping."""
        while True:
            with self._cond:
                while not self._stopping and not self._queue and not self._jobs:
                    self._cond.wait()
                if self._stopping:
                    for job in self._queue:
                        job._post(error=QwenctlError("the server is stopping"))
                    self._queue.clear()
                    return False
                if not self._queue:
                    return True
                job = self._queue[0]
                slot = self.engine.free_slot(job.request.prompt)
                if slot is None:
                    return True
                self._queue.popleft()
            if job.cancelled:
                job._post(error=QwenctlError("cancelled"))
                continue
            try:
                tick = self.engine.start(slot, job.request)
            except QwenctlError as e:
                job._post(error=e)
                continue
            if self._first:
                self._first(self.engine, slot)
                self._first = None
            self._jobs[slot.seq_id] = job
            self._deliver(slot, tick)

    def _deliver(self, slot: Slot, tick: Tick) -> None:
        job = self._jobs[slot.seq_id]
        if tick.finish_reason is not None:
            del self._jobs[slot.seq_id]
        job._post(tick)

    def _drop_cancelled(self) -> None:
        for seq_id, job in list(self._jobs.items()):
            if job.cancelled:
                self._deliver(self.engine.slots[seq_id], self.engine.finish(self.engine.slots[seq_id], "interrupted"))
