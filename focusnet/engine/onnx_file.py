"""An exported ``.onnx`` file: the model config it carries, and running it in ONNX Runtime.

``focusnet export`` of trained weights writes the weights' :class:`~focusnet.weights.SavedModelConfig`
(input size, channels, normalisation, threshold, the model and its arguments) into the ONNX file's
metadata, under :data:`~focusnet.weights.config.CONFIG_METADATA_KEY`, as the same JSON the
``.safetensors`` file holds. The ``.onnx`` file alone is then enough to preprocess images and
threshold the output, for ``focusnet predict model.onnx ...`` and for code without focusnet
(``onnxruntime.InferenceSession(path).get_modelmeta().custom_metadata_map``). A file exported from a
model name (untrained weights) or by a focusnet before this change carries no config.

Example:
    >>> predictor = OnnxPredictor("runs/first/model.onnx")  # doctest: +SKIP
    >>> predictor.config.size, predictor.config.threshold  # doctest: +SKIP
    ((256, 256), 0.5)
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from focusnet.errors import FocusNetError
from focusnet.weights.config import CONFIG_METADATA_KEY, SavedModelConfig

__all__ = ["OnnxPredictor", "config_from_metadata", "embed_config"]

_INSTALL = "pip install 'focusnet[onnx]'"


def config_from_metadata(metadata: dict[str, str], source: str | Path) -> SavedModelConfig | None:
    """The :class:`SavedModelConfig` in an ONNX file's metadata map, or None when it holds none.

    Raises:
        FocusNetError: the entry is there but is not a valid config (names ``source``).

    Example:
        >>> config_from_metadata({}, "m.onnx") is None
        True
        >>> cfg = SavedModelConfig("unet", {"in_channels": 3, "num_classes": 1},
        ...                        {"size": 64, "channels": 3, "normalization": "minmax"})
        >>> config_from_metadata({CONFIG_METADATA_KEY: json.dumps(cfg.to_dict())}, "m.onnx").size
        (64, 64)
    """
    text = metadata.get(CONFIG_METADATA_KEY)
    return None if text is None else SavedModelConfig.from_json(text, f"{source} (ONNX metadata)", "export it again")


def embed_config(path: str | Path, config: SavedModelConfig) -> None:
    """Write ``config`` into the metadata of the ONNX file at ``path`` (in place; needs ``onnx``).

    An entry already under :data:`CONFIG_METADATA_KEY` is replaced; other metadata is kept.

    Raises:
        FocusNetError: the ``onnx`` package is not installed.

    Example:
        >>> embed_config("model.onnx", load_model_config("runs/first"))  # doctest: +SKIP
    """
    try:
        import onnx
    except ImportError:
        raise FocusNetError(f"writing the config into an ONNX file needs the onnx package; {_INSTALL}") from None
    path = Path(path)
    proto = onnx.load(str(path))
    kept = [(p.key, p.value) for p in proto.metadata_props if p.key != CONFIG_METADATA_KEY]
    del proto.metadata_props[:]
    for key, value in [*kept, (CONFIG_METADATA_KEY, json.dumps(config.to_dict()))]:
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(path))


class OnnxPredictor:
    """Run an exported ``.onnx`` model in ONNX Runtime on the CPU.

    Uses the CPU execution provider with as many intra-op threads as
    :func:`torch.get_num_threads` (so ``torch.set_num_threads`` governs both backends).

    Args:
        path: a file written by :func:`~focusnet.engine.export.export_model` (input ``image``,
            output ``logits``).

    Attributes:
        config: the :class:`SavedModelConfig` the file carries, or None (see the module docstring).

    Raises:
        FocusNetError: the file is missing, onnxruntime is not installed, or the file's config is invalid.

    Example:
        >>> predictor = OnnxPredictor("lite.onnx")  # doctest: +SKIP
        >>> logits = predictor(np.zeros((2, 3, 64, 48), np.float32))  # doctest: +SKIP
        >>> logits.shape  # doctest: +SKIP
        (2, 1, 64, 48)
    """

    def __init__(self, path: str | Path) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise FocusNetError(f"onnxruntime is not installed; {_INSTALL}") from None
        self.path = Path(path)
        if not self.path.is_file():
            raise FocusNetError(f"{self.path}: ONNX file not found; export one with `focusnet export` or fix the path")
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, torch.get_num_threads())
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own types for unreadable or invalid models
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise FocusNetError(f"{self.path}: not a valid ONNX model ({msg}); export it again") from None
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name
        metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        self.config: SavedModelConfig | None = config_from_metadata(metadata, self.path)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Logits (``N x classes x H x W``, float32) of a float ``N x C x H x W`` batch."""
        batch = np.ascontiguousarray(x, dtype=np.float32)
        return self.session.run([self.output_name], {self.input_name: batch})[0]

    def __repr__(self) -> str:
        return f"OnnxPredictor({str(self.path)!r})"
