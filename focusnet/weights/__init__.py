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

The package: :mod:`focusnet.weights.config` (:class:`SavedModelConfig`, the format tag),
:mod:`focusnet.weights.files` (which files a path names, their JSON and safetensors header),
:mod:`focusnet.weights.compat` (whether tensors fit a config's model, checked on the meta device)
and :mod:`focusnet.weights.store` (:func:`save_weights`, :func:`load_model`).

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

from focusnet.weights.config import FORMAT, FORMAT_VERSION, SavedModelConfig
from focusnet.weights.files import load_model_config, resolve_weights
from focusnet.weights.store import load_model, save_weights

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "SavedModelConfig",
    "load_model",
    "load_model_config",
    "resolve_weights",
    "save_weights",
]
