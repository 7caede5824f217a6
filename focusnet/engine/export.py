"""Inference export: eval-mode BatchNorm folding, and ONNX and TorchScript files checked against PyTorch.

The ONNX file is written by PyTorch's TorchScript-based exporter (``dynamo=False``) at opset 17,
with dynamic batch, height and width axes and every weight inside the one ``.onnx`` file. After
writing, the file is run in ONNX Runtime and compared with the PyTorch model (sigmoid
probabilities within :data:`PROB_TOL`, or within :data:`NOISE_FACTOR` times PyTorch's own float32
error); a TorchScript file is reloaded and compared the same way.
An existing output file is never replaced unless ``overwrite=True``, and a file that fails its
check is never left behind. An ONNX file of a model with a saved config carries that config in its
metadata; :mod:`focusnet.engine.onnx_file` reads it and runs the file (:class:`OnnxPredictor`).

Example:
    >>> from focusnet.models import create_model
    >>> model = create_model("focusnetpp", preset="lite")
    >>> path = export_model(model, "lite.onnx", format="onnx", example_size=64)  # doctest: +SKIP
    >>> OnnxPredictor(path)(np.zeros((1, 3, 96, 128), np.float32)).shape  # doctest: +SKIP
    (1, 1, 96, 128)
"""
from __future__ import annotations

import copy
import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast

import numpy as np
import torch
from torch import nn

from focusnet.atomic import replace_into, temp_path
from focusnet.engine.onnx_file import OnnxPredictor, embed_config
from focusnet.errors import FocusNetError
from focusnet.models.resganet import bn_affine
from focusnet.weights.config import SavedModelConfig

__all__ = [
    "FORMATS",
    "INPUT_NAME",
    "OUTPUT_NAME",
    "NOISE_FACTOR",
    "PROB_TOL",
    "ExportCheckError",
    "ExportResult",
    "OnnxPredictor",
    "export",
    "export_model",
    "fold_batchnorm",
    "format_from_path",
]

log = logging.getLogger(__name__)

FORMATS: tuple[str, ...] = ("onnx", "torchscript")
INPUT_NAME = "image"
OUTPUT_NAME = "logits"
PROB_TOL = 1e-4
"""Accepted absolute difference of sigmoid probabilities, exported file vs PyTorch, for any model."""
NOISE_FACTOR = 8.0
"""A larger difference is still accepted up to this multiple of PyTorch's own float32 rounding error.

The file and PyTorch are two float32 computations of one function, each off the exact (float64)
result by rounding that grows with the model's depth and the scale of its activations (folded
BatchNorms with small variances enlarge weights); each is allowed four times PyTorch's own error,
since their summation orders and algorithms differ. Measured ratios: 1.5 to 2.4 (FocusNet++ ``lite``
and ``paper`` with random BatchNorm statistics, ONNX and TorchScript, AVX-512 and AVX2); a wrong
export differs by orders of magnitude more."""

ExportFormat = Literal["onnx", "torchscript"]

SUFFIX_FORMATS: dict[str, ExportFormat] = {
    ".onnx": "onnx",
    ".pt": "torchscript",
    ".pth": "torchscript",
    ".ts": "torchscript",
    ".torchscript": "torchscript",
}
"""The export format a file name implies (``focusnet export --out`` without ``--format``)."""


def format_from_path(path: str | Path) -> ExportFormat:
    """The export format a file name implies by its suffix (:data:`SUFFIX_FORMATS`).

    Example:
        >>> format_from_path("runs/first/model.onnx"), format_from_path("model.pt")
        ('onnx', 'torchscript')
    """
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIX_FORMATS:
        raise FocusNetError(
            f"{path}: cannot tell the export format from the file name; name it "
            f"{' or '.join(sorted(SUFFIX_FORMATS))} or add --format {' or --format '.join(FORMATS)}"
        )
    return SUFFIX_FORMATS[suffix]


class ExportCheckError(RuntimeError):
    """The exported file does not reproduce the PyTorch model (a bug, not a user error)."""


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export` wrote and how closely it matches PyTorch.

    Attributes:
        path: the written file.
        format: ``"onnx"`` or ``"torchscript"``.
        max_prob_diff: largest absolute difference of sigmoid probabilities between the file and
            the (unfolded) PyTorch model over the check inputs.
        float32_error: largest absolute difference of the PyTorch model's float32 probabilities from
            its float64 ones over the check inputs, measured only when ``max_prob_diff`` exceeds the
            tolerance (else NaN); the check accepts up to :data:`NOISE_FACTOR` times it.
        check_shapes: the ``(N, C, H, W)`` input shapes that were checked.
        folded_batchnorms: how many BatchNorm2d layers were folded into their convolutions.
        config_embedded: whether the ONNX file carries the model's
            :class:`~focusnet.weights.SavedModelConfig` in its metadata (:mod:`focusnet.engine.onnx_file`).
    """

    path: Path
    format: str
    max_prob_diff: float
    check_shapes: tuple[tuple[int, int, int, int], ...]
    folded_batchnorms: int
    float32_error: float = float("nan")
    config_embedded: bool = False


# ------------------------------------------------------------------------------ BatchNorm folding
def _fuse_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A copy of ``conv`` that computes ``bn(conv(x))`` with ``bn`` in eval mode (float64 maths)."""
    weight = conv.weight.detach()
    dtype = weight.dtype
    w = weight.double()
    if conv.bias is not None:
        b = conv.bias.detach().double()
    else:
        b = torch.zeros(w.shape[0], dtype=torch.float64, device=w.device)
    with torch.no_grad():
        scale, shift = bn_affine(bn, torch.float64)
    fused = copy.deepcopy(conv)
    fused.weight = nn.Parameter(
        (w * scale.reshape(-1, *([1] * (w.dim() - 1)))).to(dtype), requires_grad=conv.weight.requires_grad
    )
    fused.bias = nn.Parameter((b * scale + shift).to(dtype), requires_grad=conv.weight.requires_grad)
    return fused


def _foldable(conv: nn.Module, bn: nn.Module, shared: set[int]) -> bool:
    return (
        type(conv) is nn.Conv2d
        and type(bn) is nn.BatchNorm2d
        and id(conv) not in shared
        and id(bn) not in shared
        and not bn.training
        and bn.track_running_stats
        and bn.running_mean is not None
        and bn.running_var is not None
        and bn.num_features == conv.out_channels
        and not hasattr(conv, "parametrizations")
        and not conv._forward_hooks
        and not conv._forward_pre_hooks
        and not bn._forward_hooks
        and not bn._forward_pre_hooks
    )


def _fold_in_place(model: nn.Module) -> int:
    counts: dict[int, int] = {}
    for _, m in model.named_modules(remove_duplicate=False):
        counts[id(m)] = counts.get(id(m), 0) + 1
    shared = {key for key, n in counts.items() if n > 1}
    folded = 0
    conv: nn.Module | None
    bn: nn.Module | None
    for seq in list(model.modules()):
        # Only a plain Sequential forward guarantees that module i's output feeds module i + 1 alone.
        if not isinstance(seq, nn.Sequential) or type(seq).forward is not nn.Sequential.forward:
            continue
        keys = list(seq._modules)
        for a, b in zip(keys, keys[1:]):
            conv, bn = seq._modules[a], seq._modules[b]
            if conv is not None and bn is not None and _foldable(conv, bn, shared):
                seq._modules[a] = _fuse_conv_bn(cast(nn.Conv2d, conv), cast(nn.BatchNorm2d, bn))  # _foldable checked
                seq._modules[b] = nn.Identity()
                folded += 1
    # Pairs wired in a custom forward, declared by the module itself as ``foldable_pairs``
    # (attribute names of a conv whose output feeds only the named BatchNorm).
    for module in list(model.modules()):
        for a, b in getattr(module, "foldable_pairs", ()):
            conv, bn = module._modules.get(a), module._modules.get(b)
            if conv is not None and bn is not None and _foldable(conv, bn, shared):
                module._modules[a] = _fuse_conv_bn(cast(nn.Conv2d, conv), cast(nn.BatchNorm2d, bn))  # _foldable checked
                module._modules[b] = nn.Identity()
                folded += 1
    return folded


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` in eval mode with each Conv2d -> BatchNorm2d pair folded into one Conv2d.

    A pair is folded where the two are consecutive children of a plain :class:`torch.nn.Sequential`
    (so the convolution's output feeds the BatchNorm only); the BatchNorm becomes
    :class:`torch.nn.Identity`. Pairs wired in a custom ``forward`` are folded when their module
    declares them in a ``foldable_pairs`` attribute (ResGANet's ``conv_out``/``bn_out``); modules
    registered twice, hooked modules and BatchNorms without running statistics are left as they are.
    The fused weights are computed in float64, so the copy matches the original in eval mode to about
    1e-6. The argument is not modified.

    Args:
        model: any module; its BatchNorms are folded with their running statistics (eval mode).

    Returns:
        A new model in eval mode, on the same device and dtype as ``model``.

    Example:
        >>> seq = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU()).eval()
        >>> fold_batchnorm(seq)
        Sequential(
          (0): Conv2d(3, 8, kernel_size=(3, 3), stride=(1, 1))
          (1): Identity()
          (2): ReLU()
        )
    """
    folded = copy.deepcopy(model).eval()
    with torch.no_grad():
        _fold_in_place(folded)
    return folded


def _n_batchnorm(model: nn.Module) -> int:
    return sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


# ----------------------------------------------------------------------------------------- export
def _in_channels(model: nn.Module) -> int:
    cfg = getattr(model, "focusnet_config", None)
    if cfg is not None and hasattr(cfg, "in_channels"):
        return int(cfg.in_channels)
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            return int(m.in_channels)
    return 3


def _check_inputs(channels: int, height: int, width: int, seed: int = 0) -> list[torch.Tensor]:
    """The example input (batch 1) plus a batch of 2 at twice the height, to exercise dynamic axes."""
    g = torch.Generator().manual_seed(seed)
    return [
        torch.rand(1, channels, height, width, generator=g),
        torch.rand(2, channels, 2 * height, width, generator=g),
    ]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x.astype(np.float64)))


def _max_prob_diff(reference: nn.Module, run, inputs: Sequence[torch.Tensor]) -> float:
    worst = 0.0
    for x in inputs:
        with torch.no_grad():
            expected = torch.sigmoid(reference(x).double()).numpy()
        got = np.asarray(run(x))
        if got.shape != expected.shape:
            raise ExportCheckError(
                f"exported model gave shape {got.shape} for input {tuple(x.shape)}, PyTorch {expected.shape}"
            )
        worst = max(worst, float(np.abs(_sigmoid(got) - expected).max()))
    return worst


def _float32_error(reference: nn.Module, inputs: Sequence[torch.Tensor]) -> float:
    """Largest probability difference of the float32 ``reference`` from a float64 copy of it (its
    rounding error; focusnet's fused kernels serve float32 only, so the copy runs plain PyTorch)."""
    exact = copy.deepcopy(reference).double()
    with torch.no_grad():
        return _max_prob_diff(exact, lambda x: reference(x.float()).numpy(), [x.double() for x in inputs])


def _write_onnx(model: nn.Module, example: torch.Tensor, path: Path, opset: int) -> None:
    dynamic = {0: "batch", 2: "height", 3: "width"}
    with torch.no_grad(), warnings.catch_warnings():
        # Tracing reports shape-to-Python conversions; the check at a second input shape is what counts.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        # An InstanceNorm without running statistics normalises by the image's own statistics in
        # evaluation too; the exporter warns that it exports it "with train=True", which is that.
        warnings.filterwarnings("ignore", message=r".*operator 'instance_norm' is set to train=True")
        torch.onnx.export(
            model,
            (example,),
            str(path),
            dynamo=False,
            export_params=True,
            opset_version=opset,
            do_constant_folding=True,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: dynamic, OUTPUT_NAME: dynamic},
        )


def _write_torchscript(model: nn.Module, example: torch.Tensor, path: Path) -> None:
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(model, example, check_trace=False)
    traced.save(str(path))


def export(
    model: nn.Module,
    path: str | Path,
    format: ExportFormat = "onnx",
    *,
    example_size: int | tuple[int, int] = 256,
    in_channels: int | None = None,
    opset: int = 17,
    fold_bn: bool = True,
    overwrite: bool = False,
    check: bool = True,
    tolerance: float = PROB_TOL,
    config: SavedModelConfig | None = None,
) -> ExportResult:
    """Write ``model`` as an ONNX or TorchScript file and check it against PyTorch.

    Same as :func:`export_model`, but returns an :class:`ExportResult` with the measured
    difference. An ONNX file carries ``config`` (default: the model's ``focusnet_config``, which
    :func:`focusnet.load_model` sets) in its metadata, so ``focusnet predict`` needs only the file.

    Example:
        >>> from focusnet.models import create_model
        >>> result = export(create_model("focusnetpp", preset="lite"), "lite.onnx", example_size=64)  # doctest: +SKIP
        >>> result.max_prob_diff < PROB_TOL  # doctest: +SKIP
        True
    """
    if format not in FORMATS:
        raise FocusNetError(f"unknown export format {format!r}; choose one of: {', '.join(FORMATS)}")
    path = Path(path)
    if path.is_dir():
        suggestion = path / ("model.onnx" if format == "onnx" else "model.pt")
        raise FocusNetError(f"{path}: is a folder; give an output file name such as {suggestion}")
    if path.exists() and not overwrite:
        raise FocusNetError(f"{path}: already exists; pass --overwrite (overwrite=True) or choose another --out")
    if not path.parent.is_dir():
        raise FocusNetError(f"{path.parent}: output folder does not exist; create it or choose another --out")
    if isinstance(example_size, int):
        height, width = example_size, example_size
    else:
        height, width = int(example_size[0]), int(example_size[1])
    channels = int(in_channels) if in_channels is not None else _in_channels(model)

    # Export a float32 CPU copy; the caller's model (device, mode, weights) is left untouched.
    reference = copy.deepcopy(model).float().cpu().eval()
    exported = fold_batchnorm(reference) if fold_bn else reference
    n_folded = _n_batchnorm(reference) - _n_batchnorm(exported)
    example = _check_inputs(channels, height, width)[0]

    saved = config if config is not None else getattr(model, "focusnet_config", None)
    embedded = saved if format == "onnx" and isinstance(saved, SavedModelConfig) else None
    tmp = temp_path(path)
    try:
        if format == "onnx":
            _write_onnx(exported, example, tmp, opset)
            if embedded is not None:
                embed_config(tmp, embedded)
        else:
            _write_torchscript(exported, example, tmp)
        diff = float32_error = float("nan")
        inputs = _check_inputs(channels, height, width, seed=1)
        if check:
            if format == "onnx":
                predictor = OnnxPredictor(tmp)
                read_back = predictor.config.to_dict() if predictor.config is not None else None
                if embedded is not None and read_back != embedded.to_dict():
                    raise ExportCheckError(f"{path}: the config read back from the file differs; nothing was written")
                diff = _max_prob_diff(reference, lambda x: predictor(x.numpy()), inputs)
            else:
                loaded = torch.jit.load(str(tmp))
                diff = _max_prob_diff(reference, lambda x: loaded(x).detach().numpy(), inputs)
            if not diff <= tolerance:
                float32_error = _float32_error(reference, inputs)
                if not diff <= NOISE_FACTOR * float32_error:
                    raise ExportCheckError(
                        f"{path}: the exported {format} model differs from PyTorch by {diff:.3g} in probability "
                        f"(tolerance {tolerance:g}, or {NOISE_FACTOR:g} x PyTorch's own float32 error "
                        f"{float32_error:.3g}); nothing was written"
                    )
        replace_into(tmp, path)  # the umask's mode, not mkstemp's 0600
    finally:
        tmp.unlink(missing_ok=True)
    shapes = tuple(tuple(int(s) for s in x.shape) for x in inputs) if check else ()
    log.info("exported %s to %s (max probability difference %.3g, %d BatchNorms folded)", format, path, diff, n_folded)
    return ExportResult(path=path, format=format, max_prob_diff=diff, check_shapes=shapes,  # type: ignore[arg-type]
                        folded_batchnorms=n_folded, float32_error=float32_error,
                        config_embedded=embedded is not None)


def export_model(
    model: nn.Module,
    path: str | Path,
    format: ExportFormat = "onnx",
    *,
    example_size: int | tuple[int, int] = 256,
    in_channels: int | None = None,
    opset: int = 17,
    fold_bn: bool = True,
    overwrite: bool = False,
    check: bool = True,
    tolerance: float = PROB_TOL,
    config: SavedModelConfig | None = None,
) -> Path:
    """Write ``model`` as an ONNX or TorchScript file for inference and check it against PyTorch.

    The model is exported from a float32 CPU copy in eval mode, with its BatchNorms folded
    (:func:`fold_batchnorm`) unless ``fold_bn=False``. ONNX uses the TorchScript-based exporter
    (``dynamo=False``), input ``image`` and output ``logits`` with dynamic batch, height and width,
    and keeps every weight inside the file. TorchScript is traced with ``torch.jit.trace``. With
    ``check`` (the default) the written file is run on a batch of 1 at ``example_size`` and a
    batch of 2 at twice its height, and its sigmoid probabilities must match the unfolded PyTorch
    model within ``tolerance``, or within :data:`NOISE_FACTOR` times PyTorch's own float32 error
    (measured against a float64 copy) for a model whose rounding is larger; otherwise
    :class:`ExportCheckError` is raised and nothing is written. The file is written atomically.
    An ONNX file carries the model's config (preprocessing, threshold) in its metadata when there
    is one (``config``, or the ``focusnet_config`` that :func:`focusnet.load_model` sets).

    Args:
        model: the network (any device or mode; it is not modified).
        path: output file, e.g. ``model.onnx`` or ``model.pt``.
        format: ``"onnx"`` or ``"torchscript"``.
        example_size: side (or ``(height, width)``) of the example input used for tracing.
        in_channels: input channels (default: the model's saved config, else its first Conv2d).
        opset: ONNX opset version (default 17).
        fold_bn: fold Conv2d -> BatchNorm2d pairs before exporting.
        overwrite: replace an existing ``path``; otherwise an existing file is an error.
        check: compare the written file with PyTorch.
        tolerance: absolute difference of probabilities accepted for any model.
        config: the :class:`~focusnet.weights.SavedModelConfig` to write into an ONNX file
            (default: ``model.focusnet_config``; none for a bare model).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        FocusNetError: ``path`` exists (without ``overwrite``), is a folder, or its folder is missing,
            or ``format`` is unknown.
        ExportCheckError: the exported file does not reproduce the model.

    Example:
        >>> from focusnet.models import create_model
        >>> model = create_model("focusnetpp", preset="lite")
        >>> export_model(model, "lite.onnx", format="onnx", example_size=64)  # doctest: +SKIP
        PosixPath('lite.onnx')
        >>> export_model(model, "lite.pt", format="torchscript", example_size=64)  # doctest: +SKIP
        PosixPath('lite.pt')
    """
    return export(
        model,
        path,
        format,
        example_size=example_size,
        in_channels=in_channels,
        opset=opset,
        fold_bn=fold_bn,
        overwrite=overwrite,
        check=check,
        tolerance=tolerance,
        config=config,
    ).path
