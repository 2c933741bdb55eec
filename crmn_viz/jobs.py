"""Bounded, fair heavy work for a server shared by many visitors, and results kept within a byte budget.

A public Space runs every visitor's script in one process on a few cores. Heavy work
(attributions, dataset passes, experiments, export bundles) therefore goes through one
:class:`JobQueue` per process:

* at most ``slots`` jobs run at once (:func:`default_job_slots`: one per two CPU cores, one per
  GPU; ``CRMN_VIZ_MAX_CONCURRENT_JOBS`` overrides it), the others wait in arrival order;
* one owner (a visitor's session) holds at most one job: a new request from an owner whose
  earlier request still *waits* replaces it (the earlier waiter is told it was replaced); a
  request from an owner whose job *runs* waits behind that job;
* a waiter learns how many requests are ahead of it and may cancel; a job that raises fails
  only its own request, and its slot is freed whatever happens (``with queue.slot(...)``).

Light work (cached results, display changes, one traced forward of one image) never enters the
queue, so it never waits behind heavy work. :func:`configure_threads` sets PyTorch's intra-op
threads once per process, so that the running jobs together use the cores and leave one for
light work instead of oversubscribing them.

:class:`ResultCache` keeps results (of heavy and light work) by key within a byte budget: the
size of a result is counted from the arrays and tensors it holds (:func:`size_of`), least
recently used results are dropped to make room, and a result larger than the whole budget is
not kept (:meth:`ResultCache.put` says so, and a front end tells the visitor). Concurrent
requests for the same key compute it once: the later ones wait for the first.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

import numpy as np

__all__ = [
    "JobCancelled",
    "JobQueue",
    "ResultCache",
    "ResultTooLarge",
    "Ticket",
    "configure_threads",
    "default_job_slots",
    "lowered_priority",
    "size_of",
    "threads_per_job",
]


class JobCancelled(RuntimeError):
    """A waiting request was cancelled, or replaced by a newer request of the same owner."""


class ResultTooLarge(MemoryError):
    """A result would not fit in the result cache's whole byte budget."""


def default_job_slots(cpu_count: int | None = None, gpu_count: int | None = None) -> int:
    """Heavy jobs that may run at once: one per GPU, else one per two CPU cores (at least one).

    ``CRMN_VIZ_MAX_CONCURRENT_JOBS`` (a positive integer; see :mod:`crmn_viz.limits`) overrides it.
    Two cores give one slot: one job computes while the other core answers light requests.
    """
    from crmn_viz.limits import LIMITS

    if LIMITS.max_concurrent_jobs:
        return int(LIMITS.max_concurrent_jobs)
    if gpu_count is None:
        import torch

        gpu_count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpu_count:
        return int(gpu_count)
    cores = cpu_count if cpu_count is not None else (os.cpu_count() or 1)
    return max(1, cores // 2)


def threads_per_job(slots: int, cpu_count: int) -> int:
    """Intra-op threads of each of ``slots`` concurrent jobs on ``cpu_count`` cores:
    ``cores // (slots + 1)``, at least one, so the jobs together leave cores for light work."""
    return max(1, cpu_count // (slots + 1))


_THREADS_SET: list[int] = []


def configure_threads(slots: int, cpu_count: int | None = None) -> int:
    """Set PyTorch's intra-op threads once per process so ``slots`` jobs do not oversubscribe.

    Each of the ``slots`` concurrent jobs gets :func:`threads_per_job` threads: the jobs together
    leave room for the light work of every other visitor. Later calls keep the first setting (it
    is per process). Returns the thread count in force.
    """
    if _THREADS_SET:
        return _THREADS_SET[0]
    import torch

    threads = threads_per_job(slots, cpu_count if cpu_count is not None else (os.cpu_count() or 1))
    torch.set_num_threads(threads)
    _THREADS_SET.append(threads)
    return threads


@dataclasses.dataclass(eq=False)
class Ticket:
    """One request's place in a :class:`JobQueue` (see :meth:`JobQueue.slot`)."""

    owner: Hashable
    number: int
    state: str = "waiting"  # waiting -> running -> done, or waiting -> cancelled / replaced
    queue: JobQueue | None = dataclasses.field(default=None, repr=False)

    def ahead(self) -> int:
        """Requests ahead of this one: every job running now and every earlier waiting request."""
        assert self.queue is not None
        return self.queue.ahead(self)

    def cancel(self) -> None:
        """Leave the queue (a waiting request) or give the slot back (a running one)."""
        assert self.queue is not None
        self.queue.release(self)


class JobQueue:
    """A fair, bounded queue of heavy jobs shared by every session of a process.

    Args:
        slots: jobs that may run at once (:func:`default_job_slots`).
    """

    def __init__(self, slots: int) -> None:
        if not isinstance(slots, int) or slots < 1:
            raise ValueError(f"a job queue needs at least one slot, got {slots!r}")
        self.slots = slots
        self._lock = threading.Condition()
        self._waiting: list[Ticket] = []
        self._running: list[Ticket] = []
        self._numbers = itertools.count()

    # ------------------------------------------------------------------ state
    def ahead(self, ticket: Ticket) -> int:
        """See :meth:`Ticket.ahead` (0 once it runs)."""
        with self._lock:
            if ticket.state != "waiting":
                return 0
            return len(self._running) + self._waiting.index(ticket)

    def counts(self) -> tuple[int, int]:
        """``(running, waiting)`` now."""
        with self._lock:
            return len(self._running), len(self._waiting)

    # ------------------------------------------------------------------ protocol
    def enqueue(self, owner: Hashable) -> Ticket:
        """Join the queue; an earlier *waiting* request of ``owner`` is replaced (cancelled)."""
        with self._lock:
            for old in [t for t in self._waiting if t.owner == owner]:
                self._waiting.remove(old)
                old.state = "replaced"
            ticket = Ticket(owner, next(self._numbers), queue=self)
            self._waiting.append(ticket)
            self._lock.notify_all()
            return ticket

    def _startable(self, ticket: Ticket) -> bool:
        if len(self._running) >= self.slots:
            return False
        busy = {t.owner for t in self._running}
        for waiting in self._waiting:  # the first waiter whose owner runs nothing goes first
            if waiting.owner not in busy:
                return waiting is ticket
        return False

    def wait(self, ticket: Ticket, timeout: float | None = None) -> bool:
        """Block until ``ticket`` runs (True) or ``timeout`` seconds pass (False).

        Raises:
            JobCancelled: the ticket was cancelled or replaced while it waited.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while True:
                if ticket.state in ("cancelled", "replaced"):
                    why = "replaced by a newer request" if ticket.state == "replaced" else "cancelled"
                    raise JobCancelled(f"the request was {why}")
                if ticket.state == "running":
                    return True
                if self._startable(ticket):
                    self._waiting.remove(ticket)
                    self._running.append(ticket)
                    ticket.state = "running"
                    return True
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._lock.wait(remaining)

    def release(self, ticket: Ticket) -> None:
        """Free ``ticket``'s slot (or its place in the queue); safe to call more than once."""
        with self._lock:
            if ticket in self._running:
                self._running.remove(ticket)
                ticket.state = "done"
            elif ticket in self._waiting:
                self._waiting.remove(ticket)
                ticket.state = "cancelled"
            self._lock.notify_all()

    @contextmanager
    def slot(
        self, owner: Hashable, on_wait: Callable[[int], None] | None = None, poll_s: float = 0.25
    ) -> Iterator[Ticket]:
        """Hold a slot for the block: wait in turn, then run; the slot is freed on any exit.

        Args:
            owner: who asks (a session id); one job per owner at a time.
            on_wait: called with the number of requests ahead every ``poll_s`` seconds while
                it waits; an exception it raises (a front end's "stop this script") cancels the
                request.

        Raises:
            JobCancelled: cancelled or replaced while waiting.
        """
        ticket = self.enqueue(owner)
        try:
            while not self.wait(ticket, timeout=poll_s):
                if on_wait is not None:
                    on_wait(self.ahead(ticket))
            yield ticket
        finally:
            self.release(ticket)


HEAVY_NICENESS = 10
"""How much lower the operating system's priority of a thread running a heavy job is (Unix
``nice``), so the scheduler serves light requests first when the cores are busy."""


@contextmanager
def lowered_priority(step: int = HEAVY_NICENESS) -> Iterator[None]:
    """Run the block with this thread's scheduling priority lowered by ``step`` (Linux: a thread's
    own nice value; elsewhere, or when not allowed, nothing changes).

    Afterwards the old priority is restored where the process may raise priority again (root, or
    ``CAP_SYS_NICE``); otherwise the thread stays lowered, which only ever makes it yield more.
    A single-threaded PyTorch job computes in this thread, so the whole job yields.
    """
    tid = threading.get_native_id()
    try:
        before = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, min(19, before + step))
    except (AttributeError, OSError):  # not Unix, or not allowed
        yield
        return
    try:
        yield
    finally:
        with suppress(OSError):  # an unprivileged process may not raise its priority again
            os.setpriority(os.PRIO_PROCESS, tid, before)


# --------------------------------------------------------------------------- results


def size_of(value: Any, _seen: set[int] | None = None, _depth: int = 0) -> int:
    """Bytes a result holds: the buffers of its tensors and arrays, its bytes and strings, plus
    the containers and fields around them (dataclasses, mappings, sequences, ``__dict__``).

    A tensor or array counts its elements times their size once, however often it is referenced;
    a memory-mapped array (a population pass kept on disk) counts as one page.
    """
    seen = set() if _seen is None else _seen
    if id(value) in seen or _depth > 12:
        return 0
    seen.add(id(value))
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        return int(value.nelement() * value.element_size())
    if isinstance(value, np.memmap):  # its elements live in a file on disk, not in the process
        return 4096
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    if isinstance(value, (bytes, bytearray, memoryview, str)):
        return sys.getsizeof(value)
    if isinstance(value, (int, float, complex, bool)) or value is None:
        return 32
    deeper = _depth + 1
    if isinstance(value, dict):
        return 64 + sum(size_of(k, seen, deeper) + size_of(v, seen, deeper) for k, v in value.items())
    if isinstance(value, (list, tuple, set, frozenset)):
        return 56 + sum(size_of(item, seen, deeper) for item in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return 64 + sum(size_of(getattr(value, f.name), seen, deeper) for f in dataclasses.fields(value))
    items = getattr(value, "items", None)
    if callable(items):  # a Mapping such as a Trace
        try:
            return 64 + sum(size_of(k, seen, deeper) + size_of(v, seen, deeper) for k, v in items())
        except Exception:  # a mapping that cannot be walked counts as its shell
            return sys.getsizeof(value)
    if hasattr(value, "__dict__"):
        return 64 + size_of(vars(value), seen, deeper)
    return sys.getsizeof(value)


class ResultCache:
    """Results by key, least recently used dropped first, within ``max_bytes`` in total.

    Thread safe; :meth:`get_or_compute` computes a missing key once however many threads ask.
    """

    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 1:
            raise ValueError(f"a result cache needs a positive byte budget, got {max_bytes!r}")
        self.max_bytes = int(max_bytes)
        self._entries: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._computing: dict[Hashable, threading.Event] = {}

    @property
    def bytes_used(self) -> int:
        """Bytes of every kept result (:func:`size_of`)."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._entries

    def get(self, key: Hashable, default: Any = None) -> Any:
        """The result for ``key`` (now the most recently used), or ``default``."""
        with self._lock:
            if key not in self._entries:
                return default
            self._entries.move_to_end(key)
            return self._entries[key][0]

    def put(self, key: Hashable, value: Any) -> bool:
        """Keep ``value``; drop the least recently used results to make room.

        Returns:
            False (nothing is kept) when the value alone is larger than the whole budget.
        """
        size = size_of(value)
        if size > self.max_bytes:
            return False
        with self._lock:
            if key in self._entries:
                self._bytes -= self._entries.pop(key)[1]
            while self._entries and self._bytes + size > self.max_bytes:
                self._bytes -= self._entries.popitem(last=False)[1][1]
            self._entries[key] = (value, size)
            self._bytes += size
        return True

    def clear(self) -> None:
        """Drop every result."""
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def get_or_compute(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """The kept result, or ``compute()`` once (concurrent askers of the key wait for it).

        Raises:
            ResultTooLarge: the result is larger than the whole budget (it is not kept; a
                front end should refuse it with this message).
            Exception: whatever ``compute`` raises (for this asker; waiting askers compute again).
        """
        while True:
            with self._lock:
                if key in self._entries:
                    self._entries.move_to_end(key)
                    return self._entries[key][0]
                event = self._computing.get(key)
                if event is None:
                    event = self._computing[key] = threading.Event()
                    break
            event.wait()  # another thread computes it; then look again
        try:
            value = compute()
            if not self.put(key, value):
                raise ResultTooLarge(
                    f"this result needs {size_of(value) / 2**20:.0f} MiB, more than the "
                    f"{self.max_bytes / 2**20:.0f} MiB the server keeps for results "
                    "(CRMN_VIZ_MAX_RESULT_CACHE_BYTES): ask for fewer images or a smaller setting"
                )
            return value
        finally:
            with self._lock:
                self._computing.pop(key, None)
            event.set()
