"""Heavy work through the server's job queue: waiting, cancelling, refusing what does not fit."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest

from crmn_viz.frontends.streamlit import compute
from crmn_viz.jobs import ResultCache
from tests.app.test_app import open_app, texts


def heavy_script() -> None:
    import streamlit as st

    from crmn_viz.frontends.streamlit import compute

    if st.session_state.get("arm_cancel"):
        st.session_state[compute.cancel_flag("request")] = True
    result = compute.run_heavy("Computing the answer…", lambda: 6 * 7, "request")
    st.markdown(f"result {result}")


def test_a_heavy_request_waits_for_the_slot_and_then_runs():
    holder = compute.JOBS.enqueue("another visitor")
    assert compute.JOBS.wait(holder, timeout=5)
    at = AppTest.from_function(heavy_script, default_timeout=60)
    done = threading.Event()

    def release_once_waiting() -> None:
        deadline = time.monotonic() + 30
        while compute.JOBS.counts()[1] == 0 and time.monotonic() < deadline:
            time.sleep(0.02)  # the page's request has joined the queue behind the holder
        done.set()
        holder.cancel()

    threading.Thread(target=release_once_waiting, daemon=True).start()
    at.run()
    assert done.is_set(), "the request never waited"
    assert not at.exception and "result 42" in texts(at.markdown)
    assert compute.JOBS.counts() == (0, 0)


def test_a_cancelled_request_stops_with_a_message_and_runs_again_when_asked():
    at = AppTest.from_function(heavy_script, default_timeout=30)
    at.session_state["arm_cancel"] = True
    at.run()
    assert not at.exception
    assert "Cancelled" in texts(at.warning) and "result" not in texts(at.markdown)
    at.session_state["arm_cancel"] = False
    at.run()
    assert "result 42" in texts(at.markdown) and compute.JOBS.counts() == (0, 0)


def test_a_result_larger_than_the_budget_is_refused_and_the_app_runs_on(zoo: Path, monkeypatch):
    monkeypatch.setattr(compute, "RESULTS", ResultCache(100))  # smaller than any trace
    at = open_app("lstm_memory", "tiny-crmn")
    assert not at.exception, at.exception
    assert "The result is refused" in texts(at.error) and "CRMN_VIZ_MAX_RESULT_CACHE_BYTES" in texts(at.error)
    monkeypatch.setattr(compute, "RESULTS", ResultCache(1 << 28))
    at.run()
    assert not at.exception and not at.error, texts(at.error)
