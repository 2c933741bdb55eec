"""Named recording of model internals, safe for concurrent use.

Every internal quantity worth drawing passes through a :class:`Probe`, an identity
module. A probe's name is its module path (``blocks.3.out``, ``lstm.forget_gate``),
discovered by walking ``named_modules()``, never kept by hand.

Recording does not use PyTorch hooks. :func:`recording` opens a per-thread (per
``contextvars`` context) recorder; a probe that runs while a recorder is open stores a
detached copy of its input under its name. Because the recorder lives in a context
variable and not on the module, two threads can trace the same (shared, cached) model
at once without seeing each other's tensors, and nothing is left attached to the model
after the call, even when the forward pass raises.

Derived tensors that exist only to be looked at (the CRMN's zero-padded LSTM input, stacked
per-step gate histories) are recorded through :meth:`Probe.record_lazily`. Under
:meth:`~crmn_viz.models.base.TracedModel.run_with_trace` they are *deferred*: the trace keeps
the (detached) ingredients and builds the tensor on first access, once. A trace whose
``lstm.input`` is never read therefore never pays for the padding copy. Eager recording
(``recording(defer=False)``, the default, and always with ``keep_graph``) builds them at once.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from crmn_viz.interventions import active_interventions

__all__ = ["DeferredTensor", "Probe", "Trace", "probe_names", "recording"]


@dataclass
class _Recorder:
    """Collects tensors for one traced call. ``names`` restricts what is stored."""

    names: frozenset[str] | None
    store_device: torch.device | None
    keep_graph: bool = False
    defer: bool = False
    tensors: dict[str, torch.Tensor | DeferredTensor] = field(default_factory=dict)

    def wants(self, name: str) -> bool:
        return self.names is None or name in self.names


LazyArgument = torch.Tensor | Sequence[torch.Tensor]


def _detached(argument: LazyArgument) -> LazyArgument:
    if isinstance(argument, torch.Tensor):
        return argument.detach()
    return [tensor.detach() for tensor in argument]


class DeferredTensor:
    """A recorded tensor built on first use: ``build(*arguments)`` (detached), moved to ``device``.

    Holds only detached ingredients, so a kept trace never keeps an autograd graph alive.
    :meth:`get` is thread safe and builds at most once.
    """

    def __init__(
        self,
        build: Callable[..., torch.Tensor],
        arguments: Sequence[LazyArgument],
        device: torch.device | None,
    ) -> None:
        self._build = build
        self._arguments: Sequence[LazyArgument] | None = [_detached(a) for a in arguments]
        self._device = device
        self._value: torch.Tensor | None = None
        self._lock = threading.Lock()

    @property
    def built(self) -> bool:
        """True once :meth:`get` has run."""
        return self._value is not None

    def get(self) -> torch.Tensor:
        """The built tensor (detached, on the recorder's store device)."""
        with self._lock:
            if self._value is None:
                assert self._arguments is not None
                with torch.no_grad():
                    value = self._build(*self._arguments)
                self._value = value if self._device is None else value.to(self._device)
                self._arguments = None  # release the ingredients
            return self._value


_ACTIVE_RECORDER: contextvars.ContextVar[_Recorder | None] = contextvars.ContextVar(
    "crmn_viz_active_recorder", default=None
)


class Probe(nn.Module):
    """Identity module that records its input under its module path while tracing.

    The module path is assigned by :func:`assign_probe_names` when the owning model
    is built, so the recorded name always equals the name in ``named_modules()``.

    While interventions are active (:mod:`crmn_viz.interventions`, a context variable like the
    recorder) a probe returns its input with the edits of its name applied, and records that.

    Args:
        intervenable: False for a probe that only records a view of values already computed
            (e.g. ReNet's stacked gates): editing it could change nothing downstream.

    Shape:
        Any tensor; returned unchanged (the very same object) when no intervention names it.
    """

    def __init__(self, intervenable: bool = True) -> None:
        super().__init__()
        self.trace_name: str = ""
        self.intervenable = intervenable

    def is_recording(self) -> bool:
        """True when a recorder is open in this context and wants this probe.

        Use it to skip building a tensor that exists only to be recorded (for example
        the zero-padded LSTM input, which the fast path never materialises).
        """
        recorder = _ACTIVE_RECORDER.get()
        return recorder is not None and recorder.wants(self.trace_name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        edits = active_interventions()
        if edits is not None and self.intervenable:
            x = edits.apply(self.trace_name, x)
        return self.record(x)

    def record(self, x: torch.Tensor) -> torch.Tensor:
        """Record ``x`` (no intervention applied) and return it: for a value whose
        interventions were already applied where it was computed (the CRMN's per-step LSTM)."""
        recorder = _ACTIVE_RECORDER.get()
        if recorder is not None and recorder.wants(self.trace_name):
            stored = x if recorder.keep_graph else x.detach()
            if recorder.store_device is not None:
                stored = stored.to(recorder.store_device)
            recorder.tensors[self.trace_name] = stored
        return x

    def record_lazily(self, build: Callable[..., torch.Tensor], *arguments: LazyArgument) -> None:
        """Record ``build(*arguments)`` only if this probe is being recorded (else do nothing).

        ``arguments`` are tensors or sequences of tensors. When the recorder defers (see the
        module docstring), detached ``arguments`` are kept and ``build`` runs on first access.
        """
        recorder = _ACTIVE_RECORDER.get()
        if recorder is None or not recorder.wants(self.trace_name):
            return
        if recorder.defer and not recorder.keep_graph:
            recorder.tensors[self.trace_name] = DeferredTensor(build, arguments, recorder.store_device)
        else:
            self.record(build(*arguments))

    def extra_repr(self) -> str:
        return f"name={self.trace_name!r}"


def assign_probe_names(model: nn.Module) -> None:
    """Set every probe's ``trace_name`` to its path in ``model.named_modules()``."""
    for name, module in model.named_modules():
        if isinstance(module, Probe):
            module.trace_name = name


def probe_names(model: nn.Module) -> list[str]:
    """All trace names a model can record, in module order."""
    return [name for name, module in model.named_modules() if isinstance(module, Probe)]


@contextlib.contextmanager
def recording(
    names: Iterator[str] | list[str] | set[str] | None = None,
    store_device: torch.device | str | None = None,
    keep_graph: bool = False,
    defer: bool = False,
) -> Iterator[dict[str, torch.Tensor]]:
    """Open a recorder for the current thread/context; yields the dict it fills.

    Args:
        names: only record these trace names (``None``: all probes).
        store_device: move recorded tensors there (``None``: keep the model's device).
        keep_graph: store the tensors themselves, still attached to the autograd graph
            (for gradients with respect to an internal activation, e.g. Grad-CAM),
            instead of detached copies.
        defer: keep :meth:`Probe.record_lazily` entries as :class:`DeferredTensor` (built on
            first access; wrap the dict in :class:`Trace` to read it) instead of building them
            during the forward pass. Ignored with ``keep_graph``.
    """
    recorder = _Recorder(
        names=None if names is None else frozenset(names),
        store_device=None if store_device is None else torch.device(store_device),
        keep_graph=keep_graph,
        defer=defer,
    )
    token = _ACTIVE_RECORDER.set(recorder)
    try:
        yield recorder.tensors  # type: ignore[misc]
    finally:
        _ACTIVE_RECORDER.reset(token)


class Trace(Mapping[str, torch.Tensor]):
    """Read-only mapping ``name -> tensor`` of the internals recorded in one call.

    Names are module paths of :class:`Probe` modules; see each model's docstring for
    its names and shapes. Tensors are detached. The mapping cannot be modified. Entries
    recorded as :class:`DeferredTensor` are built on first access (see the module docstring).
    """

    def __init__(self, tensors: Mapping[str, torch.Tensor | DeferredTensor]) -> None:
        self._tensors = dict(tensors)

    def __getitem__(self, name: str) -> torch.Tensor:
        try:
            value = self._tensors[name]
        except KeyError:
            close = [n for n in self._tensors if name.split(".")[0] in n][:8]
            raise KeyError(f"{name!r} is not in this trace; some recorded names: {close}") from None
        return value.get() if isinstance(value, DeferredTensor) else value

    def __getstate__(self) -> dict[str, dict[str, torch.Tensor]]:
        """Pickling (e.g. Streamlit's ``st.cache_data``) builds every deferred entry first."""
        return {"_tensors": {name: self[name] for name in self._tensors}}

    def __setstate__(self, state: dict[str, dict[str, torch.Tensor]]) -> None:
        self._tensors = dict(state["_tensors"])

    def is_built(self, name: str) -> bool:
        """False while ``name`` is a deferred entry that nobody has read yet."""
        value = self._tensors[name]
        return not isinstance(value, DeferredTensor) or value.built

    def __iter__(self) -> Iterator[str]:
        return iter(self._tensors)

    def __len__(self) -> int:
        return len(self._tensors)

    def names(self) -> list[str]:
        """Recorded names in recording order."""
        return list(self._tensors)

    def to(self, device: torch.device | str) -> Trace:
        """A copy with every tensor on ``device``."""
        return Trace({k: self[k].to(device) for k in self._tensors})

    def cpu(self) -> Trace:
        """A copy with every tensor on the CPU."""
        return self.to("cpu")

    def stack(self, pattern: str, count: int) -> torch.Tensor:
        """Stack ``pattern.format(k)`` for ``k < count`` along a new dim 1.

        Example: ``trace.stack("blocks.{}.out", 9)`` for equally shaped block outputs.
        """
        return torch.stack([self[pattern.format(k)] for k in range(count)], dim=1)

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k}: {tuple(self[k].shape)}" for k in list(self._tensors)[:6])
        more = "" if len(self) <= 6 else f", ... ({len(self)} tensors)"
        return f"Trace({shapes}{more})"
