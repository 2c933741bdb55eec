"""The interface every crmn-viz model shares: config, named probes, ``run_with_trace``."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import numbers
from collections.abc import Callable, Iterable, Iterator
from typing import Any, ClassVar

import torch
from torch import nn

from crmn_viz.interventions import Intervention, applying, compile_interventions
from crmn_viz.tracing import Probe, Trace, assign_probe_names, probe_names, recording

__all__ = ["InputShapeError", "ModelConfig", "TracedModel", "one_intra_op_thread"]


@dataclasses.dataclass
class ModelConfig:
    """Base of the per-architecture config dataclasses (one field, one comment)."""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict (tuples become lists)."""
        return json_ready(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ModelConfig:
        """Build from a dict, rejecting unknown keys with the list of valid ones."""
        valid = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - valid)
        if unknown:
            raise ValueError(f"unknown config option(s) {unknown} for {cls.__name__}; valid: {sorted(valid)}")
        return cls(**values)


def json_ready(value: Any) -> Any:
    """Recursively convert tuples to lists so configs compare equal after a JSON trip."""
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    return value


class InputShapeError(ValueError, RuntimeError):
    """A model was given something other than a float batch [N, C, H, W] of its input shape.

    A ``ValueError``; also a ``RuntimeError``, which is what PyTorch raised from inside a layer
    before this check existed, so code that caught that keeps working.
    """


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _input_shape_message(arch: str, expected: tuple[int, int, int], x: object) -> str:
    """Why ``x`` is not an input batch of shape [N, *expected], in words, with what to do."""
    channels, height, width = expected
    pixels = f"{height} x {width} pixels" + ("" if height == width else " (height x width)")
    wanted = (
        f"{arch} expects input of shape [N, {channels}, {height}, {width}] "
        f"(N images, {_plural(channels, 'channel')}, {pixels})"
    )
    if not isinstance(x, torch.Tensor):
        return f"{wanted}; got a {type(x).__name__}, not a torch.Tensor"
    got = f"{wanted}; got [{', '.join(str(int(n)) for n in x.shape)}]"
    make_batch = "crmn_viz.analysis.prepare_batch(model, images) makes such a batch from PIL images"
    if x.dim() == 3 and tuple(x.shape) == expected:
        return f"{got}, a single image without the batch dimension: use x.unsqueeze(0)"
    if x.dim() == 3:
        return (
            f"{got}, a single image without the batch dimension (x.unsqueeze(0) adds it) and of "
            f"the wrong shape too; {make_batch}"
        )
    if x.dim() == 4 and tuple(x.shape[1:]) == expected:
        return f"{got} of dtype {x.dtype}, not floating point; {make_batch}"
    return f"{got}; {make_batch}"


def _checks_input(forward: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    """Wrap a subclass's ``forward`` so that its input batch is checked first."""

    @functools.wraps(forward)
    def checked_forward(self: TracedModel, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        self.check_input(x)
        if x.shape[0] > SINGLE_THREAD_MAX_BATCH or x.device.type != "cpu" or torch.compiler.is_compiling():
            return forward(self, x, *args, **kwargs)
        with one_intra_op_thread():
            return forward(self, x, *args, **kwargs)

    return checked_forward


# A CPU batch of at most this many images runs on one intra-op thread. Its operations are too
# small to share: a second thread adds a synchronisation per operation, and on a busy machine
# each can wait for a time slice (BENCHMARKS.md row 12: batch 1 on 2 threads took 9-140 ms
# where one thread took 5-12 ms).
SINGLE_THREAD_MAX_BATCH = 2


@contextlib.contextmanager
def one_intra_op_thread() -> Iterator[None]:
    """One intra-op thread for the calling thread (PyTorch's OpenMP and MKL settings are per
    thread, so concurrent callers keep theirs), restored afterwards."""
    threads = torch.get_num_threads()
    if threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class TracedModel(nn.Module):
    """Base class: a model whose internals pass through named :class:`Probe` modules.

    Subclasses set ``arch`` and ``config`` and call :meth:`finalize` at the end of
    ``__init__``. ``forward(x)`` returns the model output (``logits`` [B, classes] or
    ``keypoints`` [B, K, 2] in [0, 1]); :meth:`run_with_trace` returns it together
    with every recorded internal. Every subclass's ``forward`` first runs
    :meth:`check_input`, so a wrong input fails with a message naming the expected
    shape instead of deep inside a layer.
    """

    arch: ClassVar[str] = ""
    # What the model can show (capabilities, read by crmn_viz.views instead of ``arch`` checks).
    # Class attributes, so that an architecture can be asked before a model is built
    # (``model_class("crmn").has_memory``); a new architecture sets the ones that apply.
    title: ClassVar[str] = ""  # long name with the paper, e.g. "ReNet (Visin et al. 2015)"
    has_memory: ClassVar[bool] = False  # an LSTM that runs over network depth (the CRMN)
    memory_quantities: ClassVar[tuple[str, ...]] = ()  # its per-step quantities, traced as lstm.<name>
    has_stepwise_readout: ClassVar[bool] = False  # the output layer can read the memory after any block
    sweep_names: ClassVar[tuple[str, ...]] = ()  # ReNet's recurrent sweeps of every layer
    stream_names: ClassVar[tuple[str, ...]] = ()  # RiR's streams of every generalized block
    # Trace name of block ``{block}``'s output for Grad-CAM ("{stream}": one of ``stream_names``);
    # "" when the architecture has no blocks to pick (see :meth:`gradcam_layer`).
    gradcam_layer_pattern: ClassVar[str] = ""
    # What the ready-made memory experiments (crmn_viz.analysis.experiments) may edit:
    memory_input_name: ClassVar[str] = ""  # trace name of the memory's per-step input x_l ("lstm.input")
    sweep_trace_pattern: ClassVar[str] = ""  # trace name of one sweep of one layer ("{layer}", "{sweep}")
    removable_streams: ClassVar[tuple[str, ...]] = ()  # streams whose zeroing reduces the model (RiR)
    # Layout the forward pass runs its convolutions in: ``channels_last`` for the convolutional
    # models (faster on CPU, same values; BENCHMARKS.md row 11), contiguous for the others.
    preferred_memory_format: ClassVar[torch.memory_format] = torch.contiguous_format
    config: ModelConfig

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Wrapping the class's forward, not a forward pre-hook: a shared model keeps no hooks.
        if "forward" in cls.__dict__:
            cls.forward = _checks_input(cls.__dict__["forward"])  # type: ignore[method-assign]

    def check_input(self, x: torch.Tensor) -> None:
        """Refuse anything but a floating-point batch [N, C, H, W] with (C, H, W) = ``input_shape``.

        A shape comparison only (no data is read): a few microseconds, on any device
        (``meta`` included). Under ``torch.compile`` a correct input adds no graph break; a
        wrong one raises this error too (with ``fullgraph=True`` Dynamo reports it as an
        unsupported exception instead).

        Raises:
            InputShapeError: the message names the expected and the given shape.
        """
        expected = self.input_shape
        if not (
            isinstance(x, torch.Tensor)
            and x.dim() == 4
            and tuple(x.shape[1:]) == expected
            and x.is_floating_point()
        ):
            raise InputShapeError(_input_shape_message(self.arch, expected, x))

    def use_fast_layout(self) -> TracedModel:
        """Store the weights in :attr:`preferred_memory_format` (in place); returns ``self``.

        Values, shapes and the state dict's contents are unchanged. The forward pass converts
        its input to the same layout either way, so this only saves re-ordering the
        convolution weights on every call; :func:`crmn_viz.load` returns models in this layout.
        """
        return self.to(memory_format=self.preferred_memory_format)

    def finalize(self) -> None:
        """Name all probes after their module paths (call once the tree is built)."""
        assign_probe_names(self)

    @property
    def task(self) -> str:
        """``"classification"`` or ``"keypoints"``."""
        return getattr(self.config, "task", "classification")

    @property
    def output_name(self) -> str:
        """Trace name of the final output: ``"logits"`` or ``"keypoints"``."""
        return "keypoints" if self.task == "keypoints" else "logits"

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(channels, height, width) the model was configured for."""
        size = self.config.input_size  # type: ignore[attr-defined]
        height, width = (size, size) if isinstance(size, int) else tuple(size)
        return (self.config.in_channels, int(height), int(width))  # type: ignore[attr-defined]

    @property
    def block_count(self) -> int:
        """How many blocks a per-block view (Grad-CAM, a block's maps) can pick; 0 when none.

        Residual blocks for ResNet and CRMN, generalized blocks for RiR, layers for ReNet.
        """
        return 0

    def gradcam_layer(self, block: int = -1, stream: str | None = None) -> str:
        """The trace name (module path) whose output Grad-CAM uses for ``block``.

        Args:
            block: block index; negative counts from the end.
            stream: one of :attr:`stream_names` (default: the first) for architectures with
                several streams per block; ignored by the others.

        Returns:
            e.g. ``"blocks.8.out"`` (ResNet, CRMN), ``"blocks.3.transient"`` (RiR) or
            ``"layers.1.out"`` (ReNet).

        Raises:
            ValueError: no blocks are known for this architecture, ``block`` is out of range, or
                ``stream`` is not one of :attr:`stream_names`.
        """
        count = self.block_count
        if not self.gradcam_layer_pattern or not count:
            raise ValueError(
                f"no Grad-CAM blocks known for architecture {self.arch!r}; pass layer=<module path>"
            )
        if self.stream_names:
            stream = self.stream_names[0] if stream is None else stream
            if stream not in self.stream_names:
                choices = " or ".join(repr(name) for name in self.stream_names)
                raise ValueError(f"stream must be {choices}, got {stream!r}")
        if not isinstance(block, numbers.Integral) or isinstance(block, bool) or not -count <= block < count:
            raise ValueError(f"block must be an integer in 0..{count - 1}, got {block!r}")
        return self.gradcam_layer_pattern.format(block=int(block) % count, stream=stream)

    @property
    def gradcam_layers(self) -> tuple[str, ...]:
        """Every block's Grad-CAM layer (first stream), in block order; () when there are none."""
        if not self.gradcam_layer_pattern:
            return ()
        return tuple(self.gradcam_layer(block) for block in range(self.block_count))

    def trace_names(self) -> list[str]:
        """Every name :meth:`run_with_trace` can record, in module order."""
        return probe_names(self)

    def intervention_names(self) -> list[str]:
        """Every trace name an intervention may edit (:mod:`crmn_viz.interventions`), in module order.

        The probes on the forward path; probes that only record a view of values already used
        (ReNet's per-direction gates) are left out.
        """
        return [name for name, probe in self.probes().items() if probe.intervenable]

    def intervention_steps(self, name: str) -> int:
        """How many steps an intervention on ``name`` can select (0: the name has no steps).

        The CRMN's LSTM quantities have one step per residual block; other names have none.
        """
        return 0

    def intervention_units(self, name: str) -> int | None:
        """The unit count of ``name`` when known before a forward pass (None: checked on the way)."""
        return None

    def run_with_trace(
        self,
        x: torch.Tensor,
        names: Iterable[str] | None = None,
        store_device: torch.device | str | None = None,
        interventions: Iterable[Intervention] | None = None,
    ) -> tuple[torch.Tensor, Trace]:
        """Run the model once and return ``(output, trace)``.

        Args:
            x: input batch [B, C, H, W] with (C, H, W) = :attr:`input_shape`, already
                normalised (see ``preprocess``); anything else raises :class:`InputShapeError`.
            names: record only these trace names (default: everything).
            store_device: where recorded tensors go (default: the model's device).
            interventions: :class:`crmn_viz.Clamp`, :class:`crmn_viz.Scale`,
                :class:`crmn_viz.MeanAblate` or :class:`crmn_viz.Patch` edits applied inside
                this forward pass, in order (see :mod:`crmn_viz.interventions`); the trace
                records the edited values. None or empty: exactly the plain forward pass
                (inside :func:`crmn_viz.interventions.applying`, that block's edits).

        Returns:
            The same output as ``model(x)`` (under the interventions) and a read-only
            :class:`Trace` of detached tensors (derived views such as ``lstm.input`` are built
            on first access). Grad mode is the caller's: wrap in ``torch.no_grad()``
            for pure inspection. Thread safe; leaves nothing attached to the model.

        Raises:
            KeyError: an unknown name in ``names``.
            ValueError: an intervention on an unknown name, step or unit (the message lists
                the valid ones).
        """
        wanted = None if names is None else list(names)
        if wanted is not None:
            unknown = sorted(set(wanted) - set(self.trace_names()))
            if unknown:
                raise KeyError(f"unknown trace names {unknown}; see model.trace_names()")
        edits = compile_interventions(self, interventions)
        # no interventions: those of an enclosing ``applying`` block (if any) stay in force
        editing = contextlib.nullcontext() if edits is None else applying(self, edits)
        with recording(wanted, store_device, defer=True) as tensors, editing:
            output = self(x)
        return output, Trace(tensors)

    def probes(self) -> dict[str, Probe]:
        """Name -> probe module."""
        return {n: m for n, m in self.named_modules() if isinstance(m, Probe)}

    def randomisation_groups(self) -> list[tuple[str, tuple[str, ...]]]:
        """The parameter groups a model-randomisation sanity check redraws, output side first.

        Each entry is ``(stage name, module-name prefixes)``; a parameter belongs to a group when
        its name equals a prefix or starts with the prefix and a dot (so ``blocks.1`` does not
        claim ``blocks.10``). A prefix may name a parameter-free module (an identity, an option-A
        shortcut). Every parameter belongs to exactly one group, and the order is the cascading
        order of Adebayo et al. (2018): the output layer first, the input side last. See
        :func:`crmn_viz.analysis.sanity_checks.sanity_check`.

        This default takes the top-level child modules that own parameters, last-defined first;
        the architectures override it with their stages.
        """
        children = [name for name, child in self.named_children() if any(True for _ in child.parameters())]
        return [(name, (name,)) for name in reversed(children)]

    def randomisation_group_parameters(self) -> dict[str, list[str]]:
        """Stage name -> names of the parameters in it (:meth:`randomisation_groups`, same order).

        Raises:
            ValueError: a parameter in no group or in more than one (a wrong group list).
        """
        groups = self.randomisation_groups()
        members: dict[str, list[str]] = {stage: [] for stage, _ in groups}
        for name, _ in self.named_parameters():
            owners = [
                stage
                for stage, prefixes in groups
                if any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)
            ]
            if len(owners) != 1:
                raise ValueError(
                    f"parameter {name!r} is in {len(owners)} randomisation groups of this "
                    f"{self.arch} model ({owners}); each must be in exactly one"
                )
            members[owners[0]].append(name)
        return members

    def num_parameters(self) -> int:
        """Trainable parameter count (BatchNorm running statistics excluded)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)
