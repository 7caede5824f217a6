"""Weights for use: ``safetensors`` tensors plus a JSON model config, loaded without unpickling.

:func:`save_weights` writes two files side by side:

* ``X.safetensors``: the model's full state dict (parameters and BatchNorm buffers), with the
  config (as JSON) and a format tag in the file's metadata, so the file alone is enough;
* ``X.json``: the same config, readable and editable: model name, the ``create_model`` keyword
  arguments (preset, ``in_channels``, ``num_classes``, ...), the preprocessing the model was
  trained with (``size``, ``channels``, ``normalization``), the mask ``threshold``, the focusnet
  version and the creation time.

Both are written atomically (a temporary file in the same folder, then ``os.replace``), so a
crash never leaves a half-written file under the final name.

:func:`load_model` accepts the ``.safetensors`` file, its ``.json``, or a run folder (then
``<run>/weights/best.safetensors``). The config comes from the ``.json`` beside the weights when
there is one (so an edited ``threshold`` takes effect), else from the copy inside the weights file.
Nothing is ever read with ``torch.load`` or ``pickle``; a ``.ckpt``/``.pt`` file is refused.

Example:
    >>> import focusnet
    >>> from focusnet.weights import save_weights
    >>> model = focusnet.create_model("focusnetpp", preset="lite")
    >>> path = save_weights(model, "runs/demo/weights/best", "focusnetpp", {"preset": "lite"},
    ...                     {"size": 256, "channels": 3, "normalization": "minmax"})  # doctest: +SKIP
    >>> model = focusnet.load_model("runs/demo")  # doctest: +SKIP
    >>> model.focusnet_config.threshold  # doctest: +SKIP
    0.5
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from torch.overrides import TorchFunctionMode

import focusnet
from focusnet.atomic import atomic_write
from focusnet.data.preprocess import NORMALIZATIONS
from focusnet.engine.rundir import RunDir
from focusnet.errors import FocusNetError
from focusnet.models import create_model, list_presets, registry

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "SavedModelConfig",
    "load_model",
    "load_model_config",
    "resolve_weights",
    "save_weights",
]

FORMAT = "focusnet.weights"
FORMAT_VERSION = 1
WEIGHTS_SUFFIX = ".safetensors"
CONFIG_SUFFIX = ".json"

_META_FORMAT = "format"
_META_CONFIG = "focusnet_config"
_PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".pkl", ".pickle", ".tar")
_FIX_PICKLE = "focusnet loads only safetensors weights; use the run's weights/*.safetensors"


def _tuples(value: Any) -> Any:
    """JSON lists back to tuples (model constructors take tuples of widths)."""
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    if isinstance(value, dict):
        return {k: _tuples(v) for k, v in value.items()}
    return value


def _jsonable(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    return value


# --------------------------------------------------------------------------------------- config
@dataclass
class SavedModelConfig:
    """What a weights file needs to be rebuilt and used: the model and how its inputs were prepared.

    Attributes:
        model: registered model name (``focusnet models``).
        kwargs: keyword arguments of ``create_model`` (always holds ``in_channels`` and
            ``num_classes``; ``preset`` for models that have presets).
        preprocessing: ``{"size": S or [H, W], "channels": 1 or 3, "normalization": "minmax"|"unit"}``.
        threshold: probability above which a pixel is foreground.
        focusnet_version: version that wrote the file.
        created: UTC time the file was written (ISO 8601).
        extra: anything else the writer recorded (epoch, metric, run id, ...).
        format, format_version: the file format tag.
    """

    model: str
    kwargs: dict[str, Any]
    preprocessing: dict[str, Any]
    threshold: float = 0.5
    focusnet_version: str = ""
    created: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    # ------------------------------------------------------------------ convenient views
    @property
    def preset(self) -> str | None:
        return self.kwargs.get("preset")

    @property
    def in_channels(self) -> int:
        return int(self.kwargs.get("in_channels", 3))

    @property
    def num_classes(self) -> int:
        return int(self.kwargs.get("num_classes", 1))

    @property
    def size(self) -> tuple[int, int]:
        """Model input ``(height, width)``."""
        s = self.preprocessing["size"]
        return (int(s[0]), int(s[1])) if isinstance(s, (list, tuple)) else (int(s), int(s))

    @property
    def channels(self) -> int:
        return int(self.preprocessing["channels"])

    @property
    def normalization(self) -> str:
        return str(self.preprocessing["normalization"])

    def describe(self) -> str:
        """``name(key=value, ...)``, e.g. ``focusnetpp(preset='lite', in_channels=3, num_classes=1)``."""
        args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
        return f"{self.model}({args})"

    def model_args(self) -> dict[str, Any]:
        """``create_model`` keyword arguments (JSON lists turned back into tuples)."""
        return {k: _tuples(v) for k, v in self.kwargs.items()}

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        order = ["format", "format_version", "model", "kwargs", "preprocessing", "threshold",
                 "focusnet_version", "created", "extra"]
        return _jsonable({k: d[k] for k in order})

    @classmethod
    def from_dict(cls, data: Any, source: str | Path) -> "SavedModelConfig":
        """Validate a parsed config; every problem is a :class:`FocusNetError` naming ``source``."""
        fix = "re-save the weights with focusnet.weights.save_weights"
        if not isinstance(data, dict):
            raise FocusNetError(f"{source}: model config must be a JSON object, got {type(data).__name__}; {fix}")
        if data.get("format") != FORMAT:
            raise FocusNetError(
                f"{source}: not a focusnet model config (format {data.get('format')!r}, expected {FORMAT!r}); {fix}"
            )
        version = data.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION or version < 1:
            raise FocusNetError(
                f"{source}: unsupported format_version {version!r} (this focusnet reads 1..{FORMAT_VERSION}); "
                "upgrade focusnet"
            )
        for key, typ in (("model", str), ("kwargs", dict), ("preprocessing", dict)):
            if not isinstance(data.get(key), typ):
                raise FocusNetError(f"{source}: '{key}' is missing or not a {typ.__name__}; {fix}")
        extra = data.get("extra") or {}
        if not isinstance(extra, dict):
            raise FocusNetError(f"{source}: 'extra' must be an object; {fix}")
        cfg = cls(
            model=data["model"],
            kwargs=dict(data["kwargs"]),
            preprocessing=dict(data["preprocessing"]),
            threshold=data.get("threshold", 0.5),
            focusnet_version=str(data.get("focusnet_version", "")),
            created=str(data.get("created", "")),
            extra=extra,
            format=FORMAT,
            format_version=version,
        )
        cfg.validate(source)
        return cfg

    def validate(self, source: str | Path = "model config") -> "SavedModelConfig":
        p = self.preprocessing
        size = p.get("size")
        sides = size if isinstance(size, (list, tuple)) else [size]
        if len(sides) not in (1, 2) or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in sides):
            raise FocusNetError(f"{source}: preprocessing.size must be an integer >= 1 or [height, width]; got {size!r}")
        if p.get("channels") not in (1, 3) or isinstance(p.get("channels"), bool):
            raise FocusNetError(f"{source}: preprocessing.channels must be 1 or 3; got {p.get('channels')!r}")
        if p.get("normalization") not in NORMALIZATIONS:
            raise FocusNetError(
                f"{source}: preprocessing.normalization must be one of {', '.join(NORMALIZATIONS)}; "
                f"got {p.get('normalization')!r}"
            )
        t = self.threshold
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or not 0.0 < t < 1.0:
            raise FocusNetError(f"{source}: threshold must be a number in (0, 1); got {t!r}")
        self.threshold = float(t)
        for key in ("in_channels", "num_classes"):
            v = self.kwargs.get(key)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise FocusNetError(f"{source}: kwargs.{key} must be an integer >= 1; got {v!r}")
        if self.in_channels != self.channels:
            raise FocusNetError(
                f"{source}: the model takes {self.in_channels} input channel(s) but preprocessing.channels is "
                f"{self.channels}; make them agree"
            )
        return self


# ----------------------------------------------------------------------------------------- save
def _unwrap(model: nn.Module) -> nn.Module:
    """The plain module inside ``torch.compile`` / ``DataParallel`` wrappers (so keys carry no prefix)."""
    while True:
        if hasattr(model, "_orig_mod") and isinstance(model._orig_mod, nn.Module):
            model = model._orig_mod
        elif isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            model = model.module
        else:
            return model


def _constructor_default(name: str, key: str, fallback: int) -> int:
    import inspect

    registry._import_all()
    fn = registry._MODELS.get(name)
    if fn is None:
        return fallback
    param = inspect.signature(fn).parameters.get(key)
    if param is None or param.default is inspect.Parameter.empty or not isinstance(param.default, int):
        return fallback
    return param.default


def _split_path(path: str | Path) -> tuple[Path, Path]:
    """``(X.safetensors, X.json)`` for ``X``, ``X.safetensors`` or ``X.json``."""
    path = Path(path)
    name = path.name
    for suffix in (WEIGHTS_SUFFIX, CONFIG_SUFFIX):
        if name.endswith(suffix) and len(name) > len(suffix):
            name = name[: -len(suffix)]
            break
    stem = path.with_name(name)
    return stem.with_name(name + WEIGHTS_SUFFIX), stem.with_name(name + CONFIG_SUFFIX)


def _pretty_json(value: Any, indent: int = 0) -> str:
    """``json.dumps(indent=2)``, but lists of plain values stay on one line (``"widths": [8, 16, 32]``)."""
    pad, inner = " " * indent, " " * (indent + 2)
    if isinstance(value, dict) and value:
        items = [f"{inner}{json.dumps(str(k))}: {_pretty_json(v, indent + 2)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
        items = [f"{inner}{_pretty_json(v, indent + 2)}" for v in value]
        return "[\n" + ",\n".join(items) + f"\n{pad}]"
    return json.dumps(value, allow_nan=False)


def _state_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    # clone: safetensors refuses tensors that share storage (views in a state dict)
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}


def _mismatch(
    expected: dict[str, torch.Tensor],
    got: dict[str, torch.Tensor],
    got_label: str = "file",
    expected_label: str = "model",
    limit: int = 3,
) -> str:
    """'' when the key sets and shapes agree; else a short description of the first differences."""

    def first(keys: list[str]) -> str:
        return ", ".join(keys[:limit]) + (f" (+{len(keys) - limit} more)" if len(keys) > limit else "")

    missing = sorted(set(expected) - set(got))
    unexpected = sorted(set(got) - set(expected))
    shapes = [
        f"{k}: {got_label} {tuple(got[k].shape)} vs {expected_label} {tuple(expected[k].shape)}"
        for k in expected
        if k in got and tuple(got[k].shape) != tuple(expected[k].shape)
    ]
    parts = []
    if missing:
        parts.append(f"missing keys {first(missing)}")
    if unexpected:
        parts.append(f"unexpected keys {first(unexpected)}")
    if shapes:
        parts.append(f"shape mismatch {first(shapes)}")
    return "; ".join(parts)


class _SkipMetaInit(TorchFunctionMode):
    """Skip value-only in-place ops (weight initialisers, ``t[i] = v``) on meta tensors.

    They compute nothing on the meta device, but several of them (Keras-style truncated normals,
    indexed assignment) go through PyTorch's Python decompositions, whose first use in a process costs
    seconds. Shape- or flag-changing in-place ops still run.
    """

    _KEEP = frozenset({
        "resize_", "resize_as_", "set_", "as_strided_", "squeeze_", "unsqueeze_", "transpose_", "t_",
        "swapdims_", "swapaxes_", "requires_grad_", "share_memory_", "detach_", "retain_grad",
    })

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        skip = name == "__setitem__" or (name.endswith("_") and not name.endswith("__") and name not in self._KEEP)
        if skip and args and isinstance(args[0], torch.Tensor) and args[0].is_meta:
            return None if name == "__setitem__" else args[0]
        return func(*args, **(kwargs or {}))


def _build_meta(cfg: SavedModelConfig) -> nn.Module:
    """The config's model on the meta device (no memory, no weight initialisation)."""
    try:
        with torch.device("meta"), _SkipMetaInit():
            return create_model(cfg.model, **cfg.model_args())
    except FocusNetError:
        raise
    except Exception:  # a constructor that needs real values: build it on the CPU
        return create_model(cfg.model, **cfg.model_args())


def save_weights(
    model: nn.Module,
    path_stem_or_file: str | Path,
    model_name: str,
    model_kwargs: dict[str, Any],
    preprocessing: dict[str, Any],
    threshold: float = 0.5,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``X.safetensors`` (state dict + config in the metadata) and ``X.json`` (the config).

    Args:
        model: the trained model (``torch.compile`` / ``DataParallel`` wrappers are unwrapped).
        path_stem_or_file: ``X``, ``X.safetensors`` or ``X.json``; the folder is created.
        model_name: registry name, e.g. ``"focusnetpp"``.
        model_kwargs: the ``create_model`` keyword arguments the model was built with. The model's
            default ``preset``, ``in_channels`` and ``num_classes`` are filled in when absent.
        preprocessing: ``{"size": ..., "channels": ..., "normalization": ...}`` of training.
        threshold: probability threshold of the masks.
        extra: JSON-serialisable notes (epoch, val metric, ...), stored under ``"extra"``.

    Returns:
        The ``.safetensors`` path.

    Raises:
        FocusNetError: a bad config, or ``model_kwargs`` that do not rebuild ``model`` (its keys or
            shapes differ), so a file that could never be loaded is never written.
    """
    from safetensors.torch import save as st_save

    weights_path, config_path = _split_path(path_stem_or_file)
    kwargs = dict(model_kwargs or {})
    presets = list_presets(model_name)  # FocusNetError for an unknown model
    if presets and kwargs.get("preset") is None:
        kwargs["preset"] = presets[0]
    kwargs.setdefault("in_channels", _constructor_default(model_name, "in_channels", int(preprocessing.get("channels", 3))))
    kwargs.setdefault("num_classes", _constructor_default(model_name, "num_classes", 1))
    ordered = {k: kwargs.pop(k) for k in ("preset", "in_channels", "num_classes") if k in kwargs}
    ordered.update(kwargs)
    cfg = SavedModelConfig(
        model=model_name,
        kwargs=_jsonable(ordered),
        preprocessing=_jsonable(dict(preprocessing)),
        threshold=threshold,
        focusnet_version=focusnet.__version__,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        extra=_jsonable(dict(extra or {})),
    )
    cfg.validate(weights_path)
    config_dict = cfg.to_dict()
    try:
        json.dumps(config_dict, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise FocusNetError(f"{config_path}: config is not JSON-serialisable ({exc}); pass plain values in extra/kwargs") from None

    tensors = _state_tensors(_unwrap(model))
    problem = _mismatch(_build_meta(cfg).state_dict(), tensors, got_label="model", expected_label="config")
    if problem:
        raise FocusNetError(
            f"{weights_path}: the model does not match the config's {cfg.describe()} ({problem}); "
            "pass the model_name and model_kwargs it was built with"
        )
    blob = st_save(tensors, metadata={_META_FORMAT: FORMAT, _META_CONFIG: json.dumps(config_dict)})
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    sidecar = dict(config_dict, weights=weights_path.name)
    atomic_write(weights_path, blob)
    atomic_write(config_path, (_pretty_json(sidecar) + "\n").encode())
    return weights_path


# ----------------------------------------------------------------------------------------- load
def _looks_like_pickle(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError:
        return False
    return head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"  # torch zip archive / raw pickle


def _pickle_error(path: Path) -> FocusNetError:
    hint = ""
    for folder in (path.parent, path.parent.parent):
        candidate = RunDir(folder).best_weights
        if candidate.is_file():
            hint = f" (here: {candidate})"
            break
    return FocusNetError(f"{path}: is a PyTorch pickle checkpoint; {_FIX_PICKLE}{hint}")


def resolve_weights(path: str | Path) -> tuple[Path, Path | None]:
    """``(weights file, JSON config or None)`` for a ``.safetensors`` file, its ``.json`` or a run folder.

    Raises:
        FocusNetError: the path does not exist, is a pickle checkpoint or an ONNX model, or a folder
            without ``weights/best.safetensors``.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        run = RunDir(path)
        for candidate in (run.best_weights, path / run.best_weights.name):
            if candidate.is_file():
                return resolve_weights(candidate)
        note = run.interrupted_note()
        if note is not None and run.file(RunDir.BEST_CKPT).is_file():
            raise FocusNetError(
                f"{note}, or keep it as it is with `focusnet train --resume {path} epochs=N` (N: the epochs finished), "
                "which writes the weights of its best epoch so far"
            )
        found = sorted(p.relative_to(path).as_posix() for p in list(path.glob("*.safetensors")) + list(path.glob("weights/*.safetensors")))
        hint = f"; found {', '.join(found[:4])}: pass one of them" if found else "; pass a .safetensors file or a run folder"
        raise FocusNetError(f"{path}: no {RunDir.BEST_WEIGHTS} in this folder{hint}")
    if not path.exists():
        raise FocusNetError(
            f"{path}: file not found; pass a .safetensors weights file, its .json config, or a run folder "
            "(with weights/best.safetensors)"
        )
    suffix = path.suffix.lower()
    if suffix in _PICKLE_SUFFIXES:
        raise _pickle_error(path)
    if suffix == ".onnx":
        raise FocusNetError(
            f"{path}: is an ONNX model, which holds no preprocessing config; pass the .safetensors weights "
            "(or run folder) as the model and this file with --onnx / onnx_path (backend onnxruntime)"
        )
    if suffix == CONFIG_SUFFIX:
        data = _read_json(path)
        name = data.get("weights") if isinstance(data, dict) and isinstance(data.get("weights"), str) else None
        candidates = [_split_path(path)[0]] + ([path.with_name(Path(name).name)] if name else [])
        weights = next((c for c in candidates if c.is_file()), None)
        if weights is None:
            raise FocusNetError(
                f"{path}: its weights file {candidates[0]} is missing; put the .safetensors beside the .json"
            )
        return weights, path
    if _looks_like_pickle(path):
        raise _pickle_error(path)
    config = _split_path(path)[1] if suffix == WEIGHTS_SUFFIX else None
    return path, config if config is not None and config.is_file() else None


def _read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FocusNetError(f"{path}: cannot read the model config ({exc}); check the file") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise FocusNetError(
            f"{path}: invalid JSON in the model config (line {exc.lineno}, column {exc.colno}: {exc.msg}); "
            "fix it, or delete it to use the copy inside the .safetensors file"
        ) from None


def _read_header(path: Path) -> tuple[dict[str, str], list[str]]:
    """Metadata and tensor names of a safetensors file (checks the file is complete)."""
    from safetensors import safe_open

    fix = "re-save or re-download it"
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(8)
        n = int.from_bytes(head, "little") if len(head) == 8 else -1
        first = fh.read(1) if n > 0 else b""
    if size < 8:
        raise FocusNetError(f"{path}: truncated or empty safetensors file ({size} bytes); {fix}")
    if n <= 0 or first != b"{":
        raise FocusNetError(f"{path}: not a safetensors file; focusnet loads weights saved by focusnet (X.safetensors)")
    if 8 + n > size:
        raise FocusNetError(f"{path}: truncated safetensors file ({size} bytes, its header alone needs {8 + n}); {fix}")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            return dict(fh.metadata() or {}), list(fh.keys())
    except Exception as exc:  # safetensors raises its own error type for bad headers/sizes
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise FocusNetError(f"{path}: not a valid safetensors file or truncated ({msg}); {fix}") from None


def _embedded_config(path: Path, metadata: dict[str, str]) -> SavedModelConfig | None:
    text = metadata.get(_META_CONFIG)
    if text is None:
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FocusNetError(f"{path}: the config inside the file is not valid JSON ({exc.msg}); re-save the weights") from None
    return SavedModelConfig.from_dict(data, f"{path} (embedded config)")


def _load_config(weights: Path, config: Path | None, metadata: dict[str, str]) -> tuple[SavedModelConfig, str]:
    if config is not None:
        return SavedModelConfig.from_dict(_read_json(config), config), str(config)
    embedded = _embedded_config(weights, metadata)
    if embedded is None:
        json_path = _split_path(weights)[1]
        raise FocusNetError(
            f"{weights}: no model config: {json_path.name} is missing beside it and the file holds none; "
            "put the .json saved with it beside it (focusnet.weights.save_weights writes both)"
        )
    return embedded, f"{weights} (embedded config)"


def load_model_config(path: str | Path) -> SavedModelConfig:
    """The :class:`SavedModelConfig` of a weights file, its ``.json`` or a run folder (no model is built)."""
    weights, config = resolve_weights(path)
    metadata, _ = _read_header(weights)
    return _load_config(weights, config, metadata)[0]


def load_model(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a saved model with its weights, in eval mode, without unpickling anything.

    Args:
        path: ``X.safetensors``, ``X.json``, or a run folder (``<run>/weights/best.safetensors``).
        device: where to put the model.

    Returns:
        The model in eval mode, with its :class:`SavedModelConfig` as ``model.focusnet_config``.
        Floating-point weights are loaded as float32.

    Raises:
        FocusNetError: missing file, pickle checkpoint, not a safetensors file or truncated, missing
            or invalid config, or weights that do not fit the config's model (the first differing keys
            and both model descriptions are named).

    Example:
        >>> model = load_model("runs/focusnetpp-lite")  # doctest: +SKIP
        >>> probs = torch.sigmoid(model(x))  # doctest: +SKIP
    """
    from safetensors.torch import load_file

    weights, config_path = resolve_weights(path)
    metadata, _ = _read_header(weights)
    cfg, cfg_source = _load_config(weights, config_path, metadata)
    try:
        model = _build_meta(cfg)
    except FocusNetError as exc:
        raise FocusNetError(f"{cfg_source}: {exc}") from None
    try:
        state = load_file(str(weights), device="cpu")
    except Exception as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise FocusNetError(f"{weights}: cannot read the tensors ({msg}); re-save or re-download it") from None
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    problem = _mismatch(model.state_dict(), state)
    if problem:
        embedded = _embedded_config(weights, metadata) if config_path is not None else None
        if config_path is None:
            fix = "the file's own config does not describe its tensors; re-save the weights"
        elif embedded is None:
            fix = "the file holds no config of its own; use the .json saved with these weights"
        elif embedded.describe() != cfg.describe():
            fix = (
                f"the weights were saved for {embedded.describe()}; use the .json saved with them "
                f"(or delete {config_path.name} to use the copy inside the weights file)"
            )
        else:
            fix = "the .json agrees with the config inside the weights file, so the tensors were changed; re-save them"
        raise FocusNetError(
            f"{weights}: weights do not fit the config's model {cfg.describe()} (from {cfg_source}): {problem}; {fix}"
        )
    model.load_state_dict(state, strict=True, assign=True)
    if _has_meta_tensors(model):  # a model keeping tensors outside its state dict: build it for real
        model = create_model(cfg.model, **cfg.model_args())
        model.load_state_dict(state, strict=True)
    model = model.to(device).eval()
    model.focusnet_config = cfg
    return model


def _has_meta_tensors(model: nn.Module) -> bool:
    for module in model.modules():
        for t in (*module.parameters(recurse=False), *module.buffers(recurse=False)):
            if t.is_meta:
                return True
        for value in vars(module).values():
            if isinstance(value, torch.Tensor) and value.is_meta:
                return True
    return False
