"""Compatibility module: the names ``focusnet.models.blocks`` exported before the split (issue 16).

The ResGANet block lives in :mod:`focusnet.models.resganet`, the layers the models share in
:mod:`focusnet.models.layers`. New code imports from there; this module keeps existing imports
(user code, notebooks, the authors' porting notes) working.

Example:
    >>> from focusnet.models.blocks import ResGANet, batch_norm
    >>> ResGANet.__module__
    'focusnet.models.resganet.block'
"""
from __future__ import annotations

from focusnet.models.layers import (
    KERAS_BN_EPS,
    KERAS_BN_MOMENTUM,
    KERAS_LEAKY_SLOPE,
    KerasInit,
    L2Conv2d,
    SqueezeExcite,
    StandardUnit,
    batch_norm,
    check_input_size,
    keras_init_,
    l2_penalty,
)
from focusnet.models.resganet import (
    ResGANet,
    ResGANetReference,
    bn_affine,
    conv1x1_cl,
    conv_act,
    conv_train,
    fast_path,
    fast_path_enabled,
    resganet_from_reference,
    set_fast_path,
    use_fast_path,
    use_fused_inference,
)
from focusnet.models.resganet.execution import modules_fast_ok

__all__ = [
    "KERAS_BN_EPS",
    "KERAS_BN_MOMENTUM",
    "KERAS_LEAKY_SLOPE",
    "KerasInit",
    "L2Conv2d",
    "ResGANet",
    "ResGANetReference",
    "SqueezeExcite",
    "StandardUnit",
    "batch_norm",
    "bn_affine",
    "check_input_size",
    "conv1x1_cl",
    "conv_act",
    "conv_train",
    "fast_path",
    "fast_path_enabled",
    "keras_init_",
    "l2_penalty",
    "modules_fast_ok",
    "resganet_from_reference",
    "set_fast_path",
    "use_fast_path",
    "use_fused_inference",
]
