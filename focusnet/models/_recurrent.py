"""Recurrent convolutional layers shared by the baselines.

* :class:`ConvLSTM2d`: a port of Keras 2.2's ``ConvLSTM2D`` layer, as used by BCDU-Net
  (Azad, Asadi-Aghbolaghi, Fathy and Escalera, "Bi-Directional ConvLSTM U-Net with Densley
  Connected Convolutions", ICCV Workshops 2019). It follows Xingjian Shi et al.,
  "Convolutional LSTM Network: A Machine Learning Approach for Precipitation Nowcasting",
  NeurIPS 2015, without the peephole connections, exactly as Keras does.
* :class:`RecurrentConvBlock` and :class:`RRCNNBlock`: the recurrent convolutional layer and
  the recurrent residual unit of R2U-Net (Alom, Hasan, Yakopcic, Taha and Asari, "Recurrent
  Residual Convolutional Neural Network based on U-Net (R2U-Net) for Medical Image
  Segmentation", arXiv:1802.06955, 2018).

Keras ``ConvLSTM2D`` semantics reproduced here (Keras 2.2.x defaults, the version the
FocusNet/BCDU-Net code was written for):

* one convolution of the input to the four gate pre-activations in the order
  input, forget, cell, output (``i, f, c, o``), with a bias; one convolution of the previous
  hidden state to the same four pre-activations, without a bias;
* ``i = σ_r(x_i + h_i)``, ``f = σ_r(x_f + h_f)``, ``c' = f·c + i·tanh(x_c + h_c)``,
  ``o = σ_r(x_o + h_o)``, ``h' = o·tanh(c')``;
* ``σ_r`` is the *recurrent activation*. Keras 2.2's default is ``'hard_sigmoid'``, which on
  the TensorFlow backend is ``clip(0.2·x + 0.5, 0, 1)``. That is **not** PyTorch's
  :class:`torch.nn.Hardsigmoid` (slope 1/6); we use the Keras slope for fidelity. Pass
  ``recurrent_activation="sigmoid"`` for the logistic function (Keras ≥ 2.3.1 / tf.keras default);
* ``unit_forget_bias``: the forget-gate bias starts at 1, the others at 0;
* the initial hidden and cell states are zeros; the state convolution uses 'same' padding;
* ``go_backwards`` processes the sequence last-to-first; ``return_sequences=False`` returns
  the final hidden state only.

Initialisation follows Keras: input kernel Glorot-uniform (or He-normal when requested, as
BCDU-Net does), recurrent kernel orthogonal over the flattened ``(k·k·F, 4F)`` matrix.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn as nn

from focusnet.errors import FocusNetError
from focusnet.models.layers import keras_init_

__all__ = ["ConvLSTM2d", "RecurrentConvBlock", "RRCNNBlock", "keras_hard_sigmoid"]


def keras_hard_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """Keras (TensorFlow backend) ``hard_sigmoid``: ``clip(0.2·x + 0.5, 0, 1)``.

    Args:
        x: any tensor.

    Returns:
        The element-wise hard sigmoid, same shape as ``x``.

    Example:
        >>> keras_hard_sigmoid(torch.tensor([-3.0, 0.0, 1.0, 3.0]))
        tensor([0.0000, 0.5000, 0.7000, 1.0000])
    """
    return torch.clamp(0.2 * x + 0.5, 0.0, 1.0)


_RECURRENT_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "hard_sigmoid": keras_hard_sigmoid,
    "sigmoid": torch.sigmoid,
}


class ConvLSTM2d(nn.Module):
    """Convolutional LSTM with Keras 2.2 ``ConvLSTM2D`` semantics (channels-first).

    The time loop is unrolled in Python over the (fixed) sequence length, so the layer
    traces and exports to ONNX as a plain graph.

    Args:
        in_channels: channels of each input frame.
        hidden_channels: Keras ``filters``: channels of the hidden and cell states.
        kernel_size: odd square kernel of both convolutions ('same' padding).
        go_backwards: process the sequence in reverse order (Keras ``go_backwards``).
        return_sequences: return every hidden state ``(B, T, F, H, W)`` instead of the last
            one ``(B, F, H, W)``.
        recurrent_activation: ``"hard_sigmoid"`` (Keras 2.2 default) or ``"sigmoid"``.
        unit_forget_bias: initialise the forget-gate bias to 1.
        kernel_init: ``"glorot_uniform"`` (Keras default) or ``"he_normal"`` for the input kernel.

    Example:
        >>> lstm = ConvLSTM2d(8, 4, go_backwards=True)
        >>> frames = torch.randn(2, 3, 8, 16, 16)   # (batch, time, channels, H, W)
        >>> lstm(frames).shape
        torch.Size([2, 4, 16, 16])
    """

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        kernel_size: int = 3,
        *,
        go_backwards: bool = False,
        return_sequences: bool = False,
        recurrent_activation: str = "hard_sigmoid",
        unit_forget_bias: bool = True,
        kernel_init: str = "glorot_uniform",
    ) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise FocusNetError(f"ConvLSTM2d: kernel_size must be odd for 'same' padding, got {kernel_size}")
        if recurrent_activation not in _RECURRENT_ACTIVATIONS:
            raise FocusNetError(
                f"ConvLSTM2d: unknown recurrent_activation {recurrent_activation!r}; "
                f"choose one of: {', '.join(_RECURRENT_ACTIVATIONS)}"
            )
        if kernel_init not in ("glorot_uniform", "he_normal"):
            raise FocusNetError(
                f"ConvLSTM2d: unknown kernel_init {kernel_init!r}; choose glorot_uniform or he_normal"
            )
        self.in_channels = in_channels
        self.hidden_channels = hidden_channels
        self.go_backwards = go_backwards
        self.return_sequences = return_sequences
        self.recurrent_activation = recurrent_activation
        self.unit_forget_bias = unit_forget_bias
        self.kernel_init = kernel_init
        pad = kernel_size // 2
        # Gate order along the output channels: i, f, c, o (as Keras splits its kernel).
        self.input_conv = nn.Conv2d(in_channels, 4 * hidden_channels, kernel_size, padding=pad, bias=True)
        self.recurrent_conv = nn.Conv2d(hidden_channels, 4 * hidden_channels, kernel_size, padding=pad, bias=False)
        self._sigma = _RECURRENT_ACTIVATIONS[recurrent_activation]
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Keras initialisation: input kernel Glorot/He, recurrent kernel orthogonal, unit forget bias."""
        keras_init_(self.input_conv, self.kernel_init)  # type: ignore[arg-type]
        # Keras: orthogonal over the (k·k·F, 4F) kernel matrix; torch flattens the same weights to
        # its transpose (4F, F·k·k), whose rows come out orthonormal: the same distribution.
        nn.init.orthogonal_(self.recurrent_conv.weight)
        bias = self.input_conv.bias
        assert bias is not None
        with torch.no_grad():
            bias.zero_()
            if self.unit_forget_bias:
                bias[self.hidden_channels : 2 * self.hidden_channels].fill_(1.0)

    def step(
        self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One time step.

        Args:
            x: one frame ``(B, C_in, H, W)``.
            state: ``(h, c)`` from the previous step, or ``None`` for the zero initial state.

        Returns:
            The new ``(h, c)``, each ``(B, F, H, W)``.
        """
        gates = self.input_conv(x)
        if state is None:
            # Zero initial state: the recurrent convolution of zeros is exactly zero, and so is
            # f·c. Skipping both is an exact shortcut (not data-dependent control flow).
            i, _f, g, o = gates.chunk(4, dim=1)
            c = self._sigma(i) * torch.tanh(g)
        else:
            h_prev, c_prev = state
            gates = gates + self.recurrent_conv(h_prev)
            i, f, g, o = gates.chunk(4, dim=1)
            c = self._sigma(f) * c_prev + self._sigma(i) * torch.tanh(g)
        h = self._sigma(o) * torch.tanh(c)
        return h, c

    def forward(self, x: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
        """Run the sequence.

        Args:
            x: a tensor ``(B, T, C_in, H, W)`` or a sequence of ``T`` frames ``(B, C_in, H, W)``.

        Returns:
            The last hidden state ``(B, F, H, W)``, or all of them ``(B, T, F, H, W)`` when
            ``return_sequences`` is set (in processing order, as Keras returns them).
        """
        frames = list(x.unbind(1)) if isinstance(x, torch.Tensor) else list(x)
        if not frames:
            raise FocusNetError("ConvLSTM2d: the input sequence is empty")
        if self.go_backwards:
            frames = frames[::-1]
        state: tuple[torch.Tensor, torch.Tensor] | None = None
        outputs: list[torch.Tensor] = []
        for frame in frames:
            state = self.step(frame, state)
            outputs.append(state[0])
        if self.return_sequences:
            return torch.stack(outputs, dim=1)
        return outputs[-1]

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.hidden_channels}, go_backwards={self.go_backwards}, "
            f"return_sequences={self.return_sequences}, recurrent_activation={self.recurrent_activation!r}"
        )


class RecurrentConvBlock(nn.Module):
    """R2U-Net recurrent convolutional layer (RCL): one Conv3×3 → BN → ReLU reused ``t + 1`` times.

    ``y = f(x)`` then ``y = f(x + y)`` ``t`` times, with the same weights ``f`` throughout
    (the public reference implementation's unrolling; the paper uses t = 2).

    Args:
        channels: input and output channels.
        t: number of recurrent steps after the feed-forward one.
        bn_momentum: BatchNorm momentum (PyTorch convention).
        bn_eps: BatchNorm epsilon.

    Example:
        >>> RecurrentConvBlock(8, t=2)(torch.randn(1, 8, 16, 16)).shape
        torch.Size([1, 8, 16, 16])
    """

    def __init__(self, channels: int, t: int = 2, bn_momentum: float = 0.1, bn_eps: float = 1e-5) -> None:
        super().__init__()
        if t < 1:
            raise FocusNetError(f"RecurrentConvBlock: t must be at least 1, got {t}")
        self.t = t
        self.conv = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=True),
            nn.BatchNorm2d(channels, momentum=bn_momentum, eps=bn_eps),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        for _ in range(self.t):
            y = self.conv(x + y)
        return y


class RRCNNBlock(nn.Module):
    """R2U-Net recurrent residual unit: Conv1×1 to ``out_channels``, two RCLs, residual add.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        t: recurrent steps of each :class:`RecurrentConvBlock`.
        bn_momentum: BatchNorm momentum (PyTorch convention).
        bn_eps: BatchNorm epsilon.

    Example:
        >>> RRCNNBlock(3, 8)(torch.randn(1, 3, 16, 16)).shape
        torch.Size([1, 8, 16, 16])
    """

    def __init__(
        self, in_channels: int, out_channels: int, t: int = 2, bn_momentum: float = 0.1, bn_eps: float = 1e-5
    ) -> None:
        super().__init__()
        self.project = nn.Conv2d(in_channels, out_channels, 1, bias=True)
        self.rcnn = nn.Sequential(
            RecurrentConvBlock(out_channels, t, bn_momentum, bn_eps),
            RecurrentConvBlock(out_channels, t, bn_momentum, bn_eps),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.project(x)
        return x + self.rcnn(x)

