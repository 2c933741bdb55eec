"""Tracing: same output, pinned names, thread safety, nothing left behind."""

from __future__ import annotations

import pickle
import threading

import pytest
import torch

from crmn_viz import list_architectures
from crmn_viz.tracing import _ACTIVE_RECORDER, Trace, recording
from tests.conftest import random_input, tiny_model

# Pinned trace names of the tiny configs: renaming one is a conscious act.
PINNED_NAMES = {
    "resnet": ["blocks.0.out", "blocks.1.out", "blocks.2.out", "features", "logits"],
    "crmn": [f"blocks.{k}.out" for k in range(6)]
    + [
        f"lstm.{n}"
        for n in ("input", "input_gate", "forget_gate", "output_gate", "cell_candidate", "cell", "hidden")
    ]
    + ["pooled", "features", "logits"],
    "renet": [
        name
        for k in range(2)
        for name in (
            *(
                f"layers.{k}.{d}"
                for d in ("vertical_fwd", "vertical_bwd", "horizontal_fwd", "horizontal_bwd")
            ),
            f"layers.{k}.out",
            *(
                f"layers.{k}.gates.{d}.{g}"
                for d in ("vertical_fwd", "vertical_bwd", "horizontal_fwd", "horizontal_bwd")
                for g in ("update_gate", "reset_gate")
            ),
        )
    ]
    + ["features", "logits"],
    "rir": [f"blocks.{k}.{s}" for k in range(4) for s in ("residual", "transient")] + ["features", "logits"],
}


@pytest.mark.parametrize("arch", list_architectures())
def test_trace_names_are_pinned(arch):
    model = tiny_model(arch)
    assert sorted(model.trace_names()) == sorted(PINNED_NAMES[arch])
    _, trace = model.run_with_trace(random_input(model))
    assert sorted(trace) == sorted(PINNED_NAMES[arch])


@pytest.mark.parametrize("arch", list_architectures())
def test_recording_does_not_change_the_output(arch):
    model = tiny_model(arch)
    x = random_input(model)
    with torch.no_grad():
        plain = model(x)
        traced, trace = model.run_with_trace(x)
    assert torch.equal(plain, traced)
    assert torch.equal(trace[model.output_name], plain)


def test_trace_is_read_only_detached_and_selectable():
    model = tiny_model("crmn")
    x = random_input(model)
    out, trace = model.run_with_trace(x, names=["lstm.cell"])
    assert list(trace) == ["lstm.cell"] and isinstance(trace, Trace)
    assert not trace["lstm.cell"].requires_grad and out.requires_grad
    with pytest.raises(TypeError):
        trace["x"] = torch.zeros(1)  # type: ignore[index]
    with pytest.raises(KeyError, match="unknown trace names"):
        model.run_with_trace(x, names=["lstm.nonsense"])
    with pytest.raises(KeyError, match="not in this trace"):
        trace["lstm.hidden"]
    assert trace.cpu()["lstm.cell"].device.type == "cpu"


def test_two_threads_tracing_one_shared_model_get_their_own_results():
    model = tiny_model("crmn")
    inputs = [random_input(model, 2) for _ in range(8)]
    with torch.no_grad():
        expected = [model.run_with_trace(x)[1] for x in inputs]
    results: dict[int, Trace] = {}
    barrier = threading.Barrier(8)

    def work(index: int) -> None:
        barrier.wait()
        for _ in range(5):
            with torch.no_grad():
                _, trace = model.run_with_trace(inputs[index])
        results[index] = trace

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for index, trace in results.items():
        assert sorted(trace) == sorted(expected[index])
        for name in trace:
            assert torch.equal(trace[name], expected[index][name]), (index, name)


def test_nothing_is_left_attached_after_an_exception():
    model = tiny_model("crmn")
    with pytest.raises(RuntimeError):
        model.run_with_trace(torch.randn(1, 2, 16, 16))  # wrong channel count
    assert _ACTIVE_RECORDER.get() is None
    for module in model.modules():
        assert not module._forward_hooks and not module._forward_pre_hooks
        assert not module._backward_hooks
    # and plain calls afterwards record nothing, tracing still works
    _, trace = model.run_with_trace(random_input(model))
    assert "lstm.hidden" in trace


def test_gradients_flow_through_a_traced_call():
    model = tiny_model("renet")
    x = random_input(model).requires_grad_()
    out, _ = model.run_with_trace(x)
    out[:, 0].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_derived_entries_are_built_on_first_access_only_and_match_eager_recording():
    """``lstm.input`` and the stacked gate histories are deferred under run_with_trace: not built
    until read, then equal to what eager recording stores, detached even in grad mode."""
    model = tiny_model("crmn").eval()
    x = random_input(model, 3)
    out, trace = model.run_with_trace(x)  # grad mode on: deferred ingredients must be detached
    assert out.requires_grad
    assert not trace.is_built("lstm.input") and not trace.is_built("lstm.forget_gate")
    assert trace.is_built("blocks.0.out")
    with recording() as eager:  # eager: the padded input is built during the forward pass
        model(x)
    assert isinstance(eager["lstm.input"], torch.Tensor)
    for name in ("lstm.input", "lstm.forget_gate", "lstm.cell"):
        value = trace[name]
        assert trace.is_built(name)
        assert value.grad_fn is None and not value.requires_grad
        assert torch.equal(value, eager[name].detach())
    assert trace["lstm.input"] is trace["lstm.input"]  # built once


def test_a_trace_with_unread_deferred_entries_pickles_whole():
    """Streamlit's st.cache_data pickles traces: every entry must survive, deferred or not."""
    model = tiny_model("renet")
    with torch.no_grad():
        _, trace = model.run_with_trace(random_input(model, 2))
    copy = pickle.loads(pickle.dumps(trace))
    assert sorted(copy) == sorted(trace)
    for name in trace:
        assert torch.equal(copy[name], trace[name]), name
