"""Declarative models: a task spec lists allowlisted layers, and this module checks them without torch.

A model is a sequence of layers, each a small JSON object (``{"type": "linear", "out": 64}``). Nothing in it
is code: every type is one of the classes below, and :mod:`cotrain.learning.models` builds each as a fixed
PyTorch module. The built-in models (``logistic``, ``mlp``, ``cnn``) are presets: :data:`PRESETS` expands
each into a layer list. This module needs no torch, so the spec parser (and an auditor without torch) can
check shapes, count parameters and name every tensor (PROTOCOL.md section 6.5) before anything is built.

Shapes are per example, without the batch dimension: ``(features,)`` for a table row, ``(channels, height,
width)`` for an image, ``(steps,)`` token ids and ``(steps, features)`` for a sequence. A layer's own
tensors are named ``"<layer index>.<suffix>"``, the names ``nn.Sequential`` gives them, and listed in the
order their initial values are drawn (:class:`TensorSpec`).

No layer keeps buffers. BatchNorm is refused: its running statistics are state that is not a parameter (and
``num_batches_tracked`` is an int64), so an update (float32 deltas of parameters) cannot carry it, and its
batch statistics mix examples, which Opacus's per-example clipping cannot allow. ``layer_norm`` and
``group_norm`` normalise each example on its own and serve instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from cotrain.errors import ConfigError
from cotrain.learning.rules.params import float_from_text

Shape = tuple[int, ...]

#: At most this many layers in a declarative model.
MAX_LAYERS = 64
#: The parameter bound of a declarative model whose spec sets no ``limits.max_parameters``.
DEFAULT_MAX_PARAMETERS = 10_000_000
#: The largest ``limits.max_parameters``: a model file of more float32 values than this would pass the
#: 512 MiB a node fetches (``MAX_MODEL_BYTES``).
MAX_PARAMETERS = 2**27
#: A bound on every size a layer names, and on the values one example holds after any layer (and in a
#: transformer's attention scores), so a spec cannot make its participants run out of memory.
MAX_VALUES = 2**24
#: The epsilon of every normalisation layer (PyTorch's default).
NORM_EPS = 1e-5

Size = Annotated[int, Field(ge=1, le=MAX_VALUES)]
Padding = Annotated[int, Field(ge=0, le=MAX_VALUES)]


@dataclass(frozen=True)
class TensorSpec:
    """One parameter tensor of a layer and how its initial values are drawn.

    Attributes
    ----------
    name : str
        The name within the layer (``"weight"``, ``"ih.bias"``); the model's name is ``"<index>.<name>"``.
    shape : tuple[int, ...]
        Its shape.
    init : "uniform", "normal", "ones" or "zeros"
        ``uniform``: U(-1/sqrt(fan_in), 1/sqrt(fan_in)); ``normal``: N(0, 1); the others are constants.
    fan_in : int
        The ``fan_in`` of ``uniform`` (0 otherwise).
    """

    name: str
    shape: Shape
    init: Literal["uniform", "normal", "ones", "zeros"]
    fan_in: int = 0

    @property
    def size(self) -> int:
        """The number of values."""
        return math.prod(self.shape)


class Misfit(ValueError):
    """A layer cannot take the shape it receives; the message says why, without naming the layer."""


def _uniform(name: str, shape: Shape, fan_in: int) -> TensorSpec:
    return TensorSpec(name, shape, "uniform", fan_in)


def _rank(layer: LayerBase, shape: Shape, ranks: Sequence[int], takes: str) -> None:
    if len(shape) not in ranks:
        raise Misfit(f"receives shape {shape}; {layer.type} takes {takes}")


def _window(shape: Shape, kernel: int, stride: int, padding: int) -> Shape:
    """``(channels, *lengths)`` -> each length after sliding a window over it (PyTorch, ``ceil_mode`` off)."""
    lengths = shape[1:]
    if any(length + 2 * padding < kernel for length in lengths):
        extent = "x".join(map(str, lengths))
        padded = f" (padded by {padding})" if padding else ""
        raise Misfit(f"receives shape {shape}: its {extent}{padded} is smaller than kernel {kernel}")
    return tuple((length + 2 * padding - kernel) // stride + 1 for length in lengths)


class LayerBase(BaseModel):
    """A layer's fields; subclasses say what shapes it takes and what tensors it holds."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    type: str

    def output_shape(self, shape: Shape) -> Shape:
        """The shape one example has after this layer; :class:`Misfit` if the layer cannot take ``shape``."""
        return shape

    def tensors(self, shape: Shape) -> list[TensorSpec]:
        """The layer's parameter tensors for input ``shape``, in the order their values are drawn."""
        return []

    def describe(self) -> str:
        """The layer in a few words for messages: its type and fields but ``bias``, e.g. ``linear out 64``."""
        fields = self.model_dump(exclude={"type", "bias"})
        words = [
            f"{key} {str(value).lower() if isinstance(value, bool) else value}"
            for key, value in fields.items()
        ]
        return " ".join([self.type, *words])


class _Pointwise(LayerBase):
    """A layer that keeps the shape and holds no tensors."""


class Linear(LayerBase):
    """``y = x W^T + b`` on the last axis: ``(..., n) -> (..., out)``."""

    type: Literal["linear"]
    out: Size
    bias: bool = True

    def output_shape(self, shape: Shape) -> Shape:
        return (*shape[:-1], self.out)

    def tensors(self, shape: Shape) -> list[TensorSpec]:
        n = shape[-1]
        found = [_uniform("weight", (self.out, n), n)]
        return [*found, _uniform("bias", (self.out,), n)] if self.bias else found


class _Conv(LayerBase):
    dims: ClassVar[int]
    takes: ClassVar[str]

    out: Size
    kernel: Size
    stride: Size = 1
    padding: Padding = 0
    bias: bool = True

    def output_shape(self, shape: Shape) -> Shape:
        _rank(self, shape, [self.dims + 1], self.takes)
        return (self.out, *_window(shape, self.kernel, self.stride, self.padding))

    def tensors(self, shape: Shape) -> list[TensorSpec]:
        fan_in = shape[0] * self.kernel**self.dims
        found = [_uniform("weight", (self.out, shape[0], *[self.kernel] * self.dims), fan_in)]
        return [*found, _uniform("bias", (self.out,), fan_in)] if self.bias else found


class Conv1d(_Conv):
    """A 1-d convolution: ``(channels, length) -> (out, length')``."""

    dims = 1
    takes = "(channels, length)"
    type: Literal["conv1d"]


class Conv2d(_Conv):
    """A 2-d convolution with a square kernel: ``(channels, height, width) -> (out, height', width')``."""

    dims = 2
    takes = "(channels, height, width)"
    type: Literal["conv2d"]


class _Pool(LayerBase):
    dims: ClassVar[int]
    takes: ClassVar[str]

    kernel: Size
    stride: Size

    def output_shape(self, shape: Shape) -> Shape:
        _rank(self, shape, [self.dims + 1], self.takes)
        return (shape[0], *_window(shape, self.kernel, self.stride, 0))


def _stride_is_kernel(data: Any) -> Any:
    # PyTorch's default stride; written into the canonical spec, so the digest pins it.
    if isinstance(data, Mapping) and "stride" not in data and "kernel" in data:
        return {**data, "stride": data["kernel"]}
    return data


class MaxPool1d(_Pool):
    """The maximum over windows of ``kernel`` steps, every ``stride`` (default ``kernel``)."""

    dims = 1
    takes = "(channels, length)"
    type: Literal["max_pool1d"]


class MaxPool2d(_Pool):
    """The maximum over ``kernel x kernel`` windows, every ``stride`` (default ``kernel``)."""

    dims = 2
    takes = "(channels, height, width)"
    type: Literal["max_pool2d"]


class AvgPool1d(_Pool):
    """The mean over windows of ``kernel`` steps, every ``stride`` (default ``kernel``)."""

    dims = 1
    takes = "(channels, length)"
    type: Literal["avg_pool1d"]


class AvgPool2d(_Pool):
    """The mean over ``kernel x kernel`` windows, every ``stride`` (default ``kernel``)."""

    dims = 2
    takes = "(channels, height, width)"
    type: Literal["avg_pool2d"]


class GlobalAvgPool(LayerBase):
    """The mean of each channel over all other axes: ``(channels, ...) -> (channels,)``."""

    type: Literal["global_avg_pool"]

    def output_shape(self, shape: Shape) -> Shape:
        _rank(self, shape, [2, 3], "(channels, length) or (channels, height, width)")
        return shape[:1]


class Flatten(LayerBase):
    """All axes of an example in one: ``(...) -> (prod,)``, row-major."""

    type: Literal["flatten"]

    def output_shape(self, shape: Shape) -> Shape:
        return (math.prod(shape),)


class LayerNorm(LayerBase):
    """Normalise the last axis of each example to mean 0 and variance 1 (eps ``1e-5``), then scale and shift
    it by learned ``weight`` and ``bias`` (initially 1 and 0)."""

    type: Literal["layer_norm"]

    def tensors(self, shape: Shape) -> list[TensorSpec]:
        return [TensorSpec("weight", shape[-1:], "ones"), TensorSpec("bias", shape[-1:], "zeros")]


class GroupNorm(LayerBase):
    """Normalise each of ``groups`` groups of channels of each example (eps ``1e-5``), then scale and shift
    each channel (``weight`` 1, ``bias`` 0 initially): ``(channels, ...)``, ``groups`` dividing
    ``channels``."""

    type: Literal["group_norm"]
    groups: Size

    def output_shape(self, shape: Shape) -> Shape:
        _rank(self, shape, [2, 3], "(channels, length) or (channels, height, width)")
        if shape[0] % self.groups:
            raise Misfit(f"receives {shape[0]} channels, which {self.groups} groups do not divide")
        return shape

    def tensors(self, shape: Shape) -> list[TensorSpec]:
        return [TensorSpec("weight", shape[:1], "ones"), TensorSpec("bias", shape[:1], "zeros")]


class Embedding(LayerBase):
    """A learned vector per token id: ``(...) -> (..., dim)``. Only the first layer: the input's features are
    token ids, held as float32 numbers that must be integers in ``[0, vocab)`` (checked on every batch)."""

    type: Literal["embedding"]
    vocab: Size
    dim: Size

    def output_shape(self, shape: Shape) -> Shape:
        return (*shape, self.dim)

    def tensors(self, shape: Shape) -> list[TensorSpec]:
        return [TensorSpec("weight", (self.vocab, self.dim), "normal")]


class Position(LayerBase):
    """A learned vector per sequence position, added to the input: ``(steps, features)``, same shape out."""

    type: Literal["position"]

    def output_shape(self, shape: Shape) -> Shape:
        _rank(self, shape, [2], "a sequence (steps, features)")
        return shape

    def tensors(self, shape: Shape) -> list[TensorSpec]:
        return [TensorSpec("weight", shape, "normal")]


class _Recurrent(LayerBase):
    gates: ClassVar[int]

    hidden: Size

    def output_shape(self, shape: Shape) -> Shape:
        _rank(self, shape, [2], "a sequence (steps, features)")
        return (shape[0], self.hidden)

    def tensors(self, shape: Shape) -> list[TensorSpec]:
        rows, h = self.gates * self.hidden, self.hidden
        return [
            _uniform("ih.weight", (rows, shape[1]), h),
            _uniform("ih.bias", (rows,), h),
            _uniform("hh.weight", (rows, h), h),
            _uniform("hh.bias", (rows,), h),
        ]


class LSTM(_Recurrent):
    """One LSTM layer over the steps, from zero state: ``(steps, features) -> (steps, hidden)``, every step's
    hidden state. Gates in PyTorch's order (input, forget, cell, output)."""

    gates = 4
    type: Literal["lstm"]


class GRU(_Recurrent):
    """One GRU layer over the steps, from zero state: ``(steps, features) -> (steps, hidden)``. Gates in
    PyTorch's order (reset, update, new)."""

    gates = 3
    type: Literal["gru"]


class Transformer(LayerBase):
    """A pre-norm transformer block: ``x + attention(layer_norm(x))``, then ``x + mlp(layer_norm(x))`` with
    ``mlp = linear(ff), gelu, linear(features)``; ``(steps, features)``, same shape out. ``heads`` divides
    ``features``; ``causal`` lets each step attend only to itself and earlier steps."""

    type: Literal["transformer"]
    heads: Size
    ff: Size
    causal: bool = False

    def output_shape(self, shape: Shape) -> Shape:
        _rank(self, shape, [2], "a sequence (steps, features)")
        steps, features = shape
        if features % self.heads:
            raise Misfit(f"receives {features} features, which {self.heads} heads do not divide")
        if self.heads * steps * steps > MAX_VALUES:
            raise Misfit(
                f"receives {steps} steps: {self.heads} heads of {steps}x{steps} attention scores are more "
                f"than {MAX_VALUES} values"
            )
        return shape

    def tensors(self, shape: Shape) -> list[TensorSpec]:
        d = shape[1]
        return [
            TensorSpec("ln1.weight", (d,), "ones"),
            TensorSpec("ln1.bias", (d,), "zeros"),
            _uniform("qkv.weight", (3 * d, d), d),
            _uniform("qkv.bias", (3 * d,), d),
            _uniform("proj.weight", (d, d), d),
            _uniform("proj.bias", (d,), d),
            TensorSpec("ln2.weight", (d,), "ones"),
            TensorSpec("ln2.bias", (d,), "zeros"),
            _uniform("fc1.weight", (self.ff, d), d),
            _uniform("fc1.bias", (self.ff,), d),
            _uniform("fc2.weight", (d, self.ff), self.ff),
            _uniform("fc2.bias", (d,), self.ff),
        ]


class SequencePool(LayerBase):
    """One vector per sequence: the last step's (``mode: last``) or the mean over steps (``mode: mean``):
    ``(steps, features) -> (features,)``."""

    type: Literal["sequence_pool"]
    mode: Literal["last", "mean"]

    def output_shape(self, shape: Shape) -> Shape:
        _rank(self, shape, [2], "a sequence (steps, features)")
        return shape[1:]


Probability = Annotated[float, BeforeValidator(float_from_text), Field(ge=0, lt=1, allow_inf_nan=False)]


class Dropout(LayerBase):
    """While training, zero each value with probability ``p`` and scale the rest by ``1 / (1 - p)``."""

    type: Literal["dropout"]
    p: Probability


class ReLU(_Pointwise):
    """``max(x, 0)``."""

    type: Literal["relu"]


class GELU(_Pointwise):
    """``x * Phi(x)`` (the exact, erf-based form)."""

    type: Literal["gelu"]


class Tanh(_Pointwise):
    """``tanh(x)``."""

    type: Literal["tanh"]


class Sigmoid(_Pointwise):
    """``1 / (1 + exp(-x))``."""

    type: Literal["sigmoid"]


class SiLU(_Pointwise):
    """``x * sigmoid(x)``."""

    type: Literal["silu"]


class LeakyReLU(_Pointwise):
    """``x`` if ``x >= 0``, else ``slope * x``."""

    type: Literal["leaky_relu"]
    slope: Annotated[float, BeforeValidator(float_from_text), Field(ge=0, le=1, allow_inf_nan=False)] = 0.01


#: Layer types a spec may not use, with the reason and what to use instead.
REFUSED = {
    name: "BatchNorm keeps running statistics, which are not parameters: updates (float32 deltas of "
    "parameters) cannot carry them, and its batch statistics defeat DP-SGD's per-example clipping; use "
    "layer_norm or group_norm"
    for name in ("batch_norm", "batch_norm1d", "batch_norm2d")
}


def _prepare(data: Any) -> Any:
    """Refuse a layer type with a reason (:data:`REFUSED`); give a pooling layer its default stride."""
    if isinstance(data, Mapping) and data.get("type") in REFUSED:
        raise ValueError(f"{data['type']} is not allowed: {REFUSED[data['type']]}")
    if isinstance(data, Mapping) and str(data.get("type")).endswith(("_pool1d", "_pool2d")):
        return _stride_is_kernel(data)
    return data


#: One layer of a spec's ``model.layers``, told apart by its ``type``.
Layer = Annotated[
    Linear
    | Conv1d
    | Conv2d
    | MaxPool1d
    | MaxPool2d
    | AvgPool1d
    | AvgPool2d
    | GlobalAvgPool
    | Flatten
    | LayerNorm
    | GroupNorm
    | Embedding
    | Position
    | LSTM
    | GRU
    | Transformer
    | SequencePool
    | Dropout
    | ReLU
    | GELU
    | Tanh
    | Sigmoid
    | SiLU
    | LeakyReLU,
    Field(discriminator="type"),
    BeforeValidator(_prepare),
]

#: Every allowlisted layer class, in the order of :data:`Layer`.
LAYER_TYPES: tuple[type[LayerBase], ...] = get_args(get_args(Layer)[0])
#: Their ``type`` names.
LAYER_NAMES: tuple[str, ...] = tuple(get_args(cls.model_fields["type"].annotation)[0] for cls in LAYER_TYPES)


@dataclass(frozen=True)
class LayerPlan:
    """A layer checked against the shape it receives: its output shape and its tensors."""

    layer: LayerBase
    input_shape: Shape
    output_shape: Shape
    tensors: tuple[TensorSpec, ...]


def plan_layers(
    layers: Sequence[LayerBase], input_shape: Sequence[int], num_classes: int, *, where: str = "model.layers"
) -> list[LayerPlan]:
    """Check that ``layers`` take examples of ``input_shape`` and end with ``num_classes`` values.

    Parameters
    ----------
    layers : Sequence[LayerBase]
        The model's layers in order.
    input_shape : Sequence[int]
        The shape of one example.
    num_classes : int
        The number of values the last layer must output, shape ``(num_classes,)``.
    where : str
        How messages name the layer list (``"model.layers"`` for a spec, ``"model 'cnn' layers"`` for a
        preset).

    Returns
    -------
    list[LayerPlan]
        One per layer.

    Raises
    ------
    ConfigError
        In one line naming the first layer that does not fit, by index, and the shape it receives.
    """
    if not layers:
        raise ConfigError(f"{where} is empty; a model needs at least one layer")
    if len(layers) > MAX_LAYERS:
        raise ConfigError(f"{where} has {len(layers)} layers; at most {MAX_LAYERS} are allowed")
    shape = tuple(input_shape)
    plans = []
    for index, layer in enumerate(layers):
        at = f"{where}[{index}] ({layer.describe()})"
        if isinstance(layer, Embedding) and index:
            raise ConfigError(f"{at} must be the first layer: it reads token ids, which only the input holds")
        try:
            out = layer.output_shape(shape)
        except Misfit as misfit:
            raise ConfigError(f"{at} {misfit}") from None
        if math.prod(out) > MAX_VALUES:
            raise ConfigError(
                f"{at} outputs shape {out}, {math.prod(out)} values per example, more than {MAX_VALUES}"
            )
        plans.append(LayerPlan(layer, shape, out, tuple(layer.tensors(shape))))
        shape = out
    if shape != (num_classes,):
        raise ConfigError(
            f"{where}[{len(layers) - 1}] ({layers[-1].describe()}) outputs shape {shape}, but the model must "
            f"output one value per class, shape ({num_classes},) for data.num_classes {num_classes}"
        )
    return plans


def parameter_count(plans: Sequence[LayerPlan]) -> int:
    """The number of parameters (float32 values) of a planned model."""
    return sum(tensor.size for plan in plans for tensor in plan.tensors)


def tensor_layout(plans: Sequence[LayerPlan]) -> list[tuple[str, Shape]]:
    """Every tensor's ``nn.Sequential`` name and shape, in sorted name order (the files' order)."""
    named = [(f"{index}.{t.name}", t.shape) for index, plan in enumerate(plans) for t in plan.tensors]
    return sorted(named)


# ---------------------------------------------------------------- presets


def _positive_ints(model: str, key: str, value: Any, *, allow_empty: bool) -> tuple[int, ...]:
    # bool is an int subclass; `true` in a JSON spec must not become a layer of width 1.
    if (
        not isinstance(value, (list, tuple))
        or not all(isinstance(v, int) and not isinstance(v, bool) and 0 < v <= MAX_VALUES for v in value)
        or (not value and not allow_empty)
    ):
        kind = "a list" if allow_empty else "a non-empty list"
        raise ConfigError(
            f"model {model!r}: parameter {key!r} must be {kind} of positive integers, got {value!r}"
        )
    return tuple(value)


def _logistic(params: Mapping[str, Any], input_shape: Shape, num_classes: int) -> list[LayerBase]:
    return [Flatten(type="flatten"), Linear(type="linear", out=num_classes)]


def _mlp(params: Mapping[str, Any], input_shape: Shape, num_classes: int) -> list[LayerBase]:
    hidden = _positive_ints("mlp", "hidden", params["hidden"], allow_empty=True)
    layers: list[LayerBase] = [Flatten(type="flatten")]
    for size in hidden:
        layers += [Linear(type="linear", out=size), ReLU(type="relu")]
    return [*layers, Linear(type="linear", out=num_classes)]


def _cnn(params: Mapping[str, Any], input_shape: Shape, num_classes: int) -> list[LayerBase]:
    channels = _positive_ints("cnn", "channels", params["channels"], allow_empty=False)
    if len(input_shape) != 3:
        raise ConfigError(
            f"model 'cnn' needs images shaped (channels, height, width), got input shape {input_shape}; "
            "load digits with flat=False"
        )
    _, height, width = input_shape
    if min(height, width) < 2 ** len(channels):
        raise ConfigError(
            f"model 'cnn': {len(channels)} conv blocks halve a {height}x{width} image {len(channels)} times; "
            f"use at most {int(math.log2(min(height, width)))} entries in 'channels'"
        )
    layers: list[LayerBase] = []
    for out in channels:
        # (C, H, W) -> (C', H/2, W/2)
        layers += [
            Conv2d(type="conv2d", out=out, kernel=3, padding=1),
            ReLU(type="relu"),
            MaxPool2d(type="max_pool2d", kernel=2, stride=2),
        ]
    return [*layers, Flatten(type="flatten"), Linear(type="linear", out=num_classes)]


@dataclass(frozen=True)
class Preset:
    """A built-in model: the layers it stands for, given its parameters, and its parameters' defaults."""

    layers: Callable[[Mapping[str, Any], Shape, int], list[LayerBase]]
    defaults: Mapping[str, Any]
    description: str


PRESETS: Mapping[str, Preset] = {
    "logistic": Preset(_logistic, {}, "multinomial logistic regression (one linear layer)"),
    "mlp": Preset(_mlp, {"hidden": [64]}, "fully connected ReLU network; 'hidden' lists layer widths"),
    "cnn": Preset(
        _cnn,
        {"channels": [16, 32]},
        "small conv net (3x3 conv, ReLU, 2x2 max-pool per entry of 'channels', then a linear layer)",
    ),
}


def _describe_presets() -> str:
    return "; ".join(f"{name} {dict(info.defaults)}: {info.description}" for name, info in PRESETS.items())


def preset_layers(
    name: str, params: Mapping[str, Any], input_shape: Sequence[int], num_classes: int
) -> list[LayerBase]:
    """The layers a built-in model stands for.

    Raises
    ------
    ConfigError
        For an unknown name or parameter, a badly typed parameter, or a shape the preset cannot take; the
        message lists the presets and their parameters.
    """
    info = PRESETS.get(name)
    if info is None:
        raise ConfigError(
            f"unknown model {name!r}; the built-in models are: {_describe_presets()}; or name 'layers' and "
            "list them"
        )
    unknown = sorted(set(params) - set(info.defaults))
    if unknown:
        raise ConfigError(
            f"model {name!r} takes no parameter {', '.join(map(repr, unknown))}; "
            f"it takes {sorted(info.defaults) or 'none'} (defaults {dict(info.defaults)})"
        )
    return info.layers({**info.defaults, **params}, tuple(input_shape), num_classes)


def plan_model(
    name: str,
    params: Mapping[str, Any],
    layers: Sequence[LayerBase] | None,
    input_shape: Sequence[int],
    num_classes: int,
) -> list[LayerPlan]:
    """Plan a spec's model: its ``layers`` when ``name`` is ``"layers"``, else the preset ``name``.

    Raises
    ------
    ConfigError
        As :func:`preset_layers` and :func:`plan_layers`.
    """
    if name == "layers":
        if layers is None:
            raise ConfigError("model 'layers' needs model.layers, the list of layers")
        return plan_layers(layers, input_shape, num_classes)
    return plan_layers(
        preset_layers(name, params, input_shape, num_classes),
        input_shape,
        num_classes,
        where=f"model {name!r} layers",
    )
