"""The bounded job queue and the byte-budgeted result cache a server shares between sessions."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

from crmn_viz import limits
from crmn_viz.jobs import (
    JobCancelled,
    JobQueue,
    ResultCache,
    ResultTooLarge,
    default_job_slots,
    size_of,
    threads_per_job,
)


def test_requests_run_in_arrival_order_and_know_how_many_are_ahead():
    queue = JobQueue(1)
    first, second, third = queue.enqueue("a"), queue.enqueue("b"), queue.enqueue("c")
    assert queue.wait(first, timeout=0) is True
    assert (second.ahead(), third.ahead()) == (1, 2)
    assert queue.wait(third, timeout=0) is False  # not its turn
    first.cancel()
    assert queue.wait(third, timeout=0) is False and queue.wait(second, timeout=0) is True
    assert third.ahead() == 1
    second.cancel()
    assert queue.wait(third, timeout=0) is True and queue.counts() == (1, 0)


def test_a_newer_waiting_request_of_the_same_owner_replaces_the_older():
    queue = JobQueue(1)
    running = queue.enqueue("someone else")
    assert queue.wait(running, timeout=0)
    old = queue.enqueue("visitor")
    new = queue.enqueue("visitor")
    with pytest.raises(JobCancelled, match="replaced by a newer request"):
        queue.wait(old, timeout=0)
    assert new.ahead() == 1 and queue.counts() == (1, 1)


def test_an_owner_with_a_running_job_waits_behind_it_even_with_free_slots():
    queue = JobQueue(2)
    mine = queue.enqueue("visitor")
    assert queue.wait(mine, timeout=0)
    again = queue.enqueue("visitor")
    other = queue.enqueue("other")
    assert queue.wait(again, timeout=0) is False  # one heavy job per session
    assert queue.wait(other, timeout=0) is True  # a free slot goes to the next owner
    mine.cancel()  # its first job done: the second one may start
    assert queue.wait(again, timeout=0) is True and queue.counts() == (2, 0)


def test_a_failing_job_frees_its_slot_and_the_queue_runs_on():
    queue = JobQueue(1)
    with pytest.raises(ZeroDivisionError), queue.slot("visitor"):
        raise ZeroDivisionError("a hostile input found late")
    assert queue.counts() == (0, 0)
    with queue.slot("visitor") as ticket:
        assert ticket.state == "running"
    assert ticket.state == "done"


def test_an_exception_while_waiting_cancels_the_request():
    """A front end stops a waiting script (a rerun, a closed session) from inside on_wait."""
    queue = JobQueue(1)
    holder = queue.enqueue("someone else")
    assert queue.wait(holder, timeout=0)

    class Stopped(Exception):
        pass

    seen = []

    def on_wait(ahead: int) -> None:
        seen.append(ahead)
        raise Stopped

    with pytest.raises(Stopped), queue.slot("visitor", on_wait=on_wait, poll_s=0.01):
        pytest.fail("never runs")
    assert seen == [1] and queue.counts() == (1, 0)


def test_threads_never_run_more_jobs_than_slots():
    queue, running, peak, lock = JobQueue(2), [0], [0], threading.Lock()

    def job(owner: str) -> None:
        with queue.slot(owner, poll_s=0.005):
            with lock:
                running[0] += 1
                peak[0] = max(peak[0], running[0])
            time.sleep(0.01)
            with lock:
                running[0] -= 1

    threads = [threading.Thread(target=job, args=(f"session {k}",)) for k in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert peak[0] <= 2 and queue.counts() == (0, 0)


def test_slots_follow_the_machine_and_the_variable(monkeypatch):
    assert default_job_slots(cpu_count=2, gpu_count=0) == 1
    assert default_job_slots(cpu_count=16, gpu_count=0) == 8
    assert default_job_slots(cpu_count=1, gpu_count=0) == 1
    assert default_job_slots(cpu_count=16, gpu_count=2) == 2
    monkeypatch.setattr(limits, "LIMITS", limits.Limits.from_env({"CRMN_VIZ_MAX_CONCURRENT_JOBS": "3"}))
    assert default_job_slots(cpu_count=2, gpu_count=0) == 3
    assert [threads_per_job(1, 2), threads_per_job(8, 16), threads_per_job(2, 12)] == [1, 1, 4]
    with pytest.raises(ValueError, match="at least one slot"):
        JobQueue(0)


def test_sizes_count_the_buffers_results_hold():
    one = {"lstm.cell": torch.zeros(1, 9, 100), "logits": torch.zeros(1, 10)}
    many = {"lstm.cell": torch.zeros(32, 9, 100), "logits": torch.zeros(32, 10)}
    assert size_of(many) - 32 * size_of(one) == pytest.approx(0, abs=32 * 400)
    shared = np.zeros(1000)
    assert size_of([shared, shared]) < 2 * shared.nbytes  # counted once


def test_the_result_cache_keeps_a_byte_budget():
    cache = ResultCache(10_000)
    for k in range(5):
        assert cache.put(k, np.zeros(400))  # 3200 bytes each
    assert cache.bytes_used <= 10_000 and len(cache) == 3 and 0 not in cache and 4 in cache
    cache.get(2)  # used: kept over 3
    cache.put("new", np.zeros(400))
    assert 2 in cache and 3 not in cache
    assert cache.put("huge", np.zeros(2000)) is False and "huge" not in cache
    with pytest.raises(ResultTooLarge, match="CRMN_VIZ_MAX_RESULT_CACHE_BYTES"):
        cache.get_or_compute("huge", lambda: np.zeros(2000))


def test_concurrent_askers_of_one_key_compute_it_once():
    cache, calls = ResultCache(1 << 20), []

    def compute() -> np.ndarray:
        calls.append(1)
        time.sleep(0.05)
        return np.ones(10)

    results = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.get_or_compute("k", compute))) for _ in range(6)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(calls) == 1 and len(results) == 6 and all(r is results[0] for r in results)


def test_a_heavy_job_runs_at_a_lower_priority_and_gets_it_back():
    import os

    from crmn_viz.jobs import HEAVY_NICENESS, lowered_priority

    seen = {}

    def job() -> None:
        tid = threading.get_native_id()
        seen["before"] = os.getpriority(os.PRIO_PROCESS, tid)
        with lowered_priority():
            seen["during"] = os.getpriority(os.PRIO_PROCESS, tid)
        seen["after"] = os.getpriority(os.PRIO_PROCESS, tid)

    thread = threading.Thread(target=job)
    thread.start()
    thread.join(10)
    assert seen["during"] == min(19, seen["before"] + HEAVY_NICENESS)
    if os.geteuid() == 0:  # only a privileged process may raise a priority again
        assert seen["after"] == seen["before"]
