"""An ensemble of independently trained copies of one model, averaged in probability.

``create_model(name, ensemble=N, ...)`` builds N copies of ``name`` (each initialised from the
random stream in turn, so their weights differ) inside a :class:`ProbabilityEnsemble`. Everything
that takes a model takes it: ``focusnet train`` (``model_kwargs.ensemble: 2``), saved weights,
``load_model``, ``predict``, ``evaluate``, ``export``, the parameter and FLOP counts.

* **Training.** Each member is trained on its own loss, on the same batches (the engine's
  multi-head rule, :meth:`ProbabilityEnsemble.forward_all`: the loss is the mean of the members'
  losses, and a member's parameters get gradients from its own loss only). With Adam, whose
  update does not depend on the gradient's scale, a member takes the steps it would take alone
  on the same batches. The weights kept are those of the best validation score *of the ensemble*.
* **Prediction.** The forward returns the logit of the members' mean probability,
  ``logit(mean_i sigmoid(z_i))``, computed in log space (exact, no clipping), so thresholding
  ``sigmoid(output)`` at 0.5 thresholds the mean probability.

Cost: N times the parameters, and N forward and backward passes per batch (the members run one
after the other). Measured on issue 15's head-to-head (``benchmarks/RESULTS.md``, session 12), two
``lite`` members scored +0.0012 Dice over the better of them, within a training seed. Averaging
independently trained networks is the classic recipe (Hansen & Salamon, "Neural network ensembles", IEEE TPAMI 1990;
Lakshminarayanan et al., "Simple and scalable predictive uncertainty estimation using deep
ensembles", NeurIPS 2017); nnU-Net ensembles its cross-validation folds in probability likewise.

Example:
    >>> from focusnet.models import create_model
    >>> net = create_model("focusnetpp", preset="lite", ensemble=2).eval()
    >>> net(torch.randn(1, 3, 32, 32)).shape
    torch.Size([1, 1, 32, 32])
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["ProbabilityEnsemble", "mean_probability_logit"]


def mean_probability_logit(logits: Sequence[torch.Tensor]) -> torch.Tensor:
    """``logit(mean_i sigmoid(z_i))`` for same-shaped logits, in log space.

    ``log(mean p_i) - log(mean (1 - p_i))`` with ``log p = logsigmoid(z)`` and ``log(1 - p) =
    logsigmoid(-z)``; the ``log N`` of both means cancels. Exact for any logits (no 0 or 1
    probabilities to clip).

    Example:
        >>> z = [torch.tensor([0.0, 2.0]), torch.tensor([0.0, -2.0])]
        >>> mean_probability_logit(z).abs().max().item() < 1e-6
        True
    """
    z = torch.stack(list(logits))
    return torch.logsumexp(F.logsigmoid(z), dim=0) - torch.logsumexp(F.logsigmoid(-z), dim=0)


class ProbabilityEnsemble(nn.Module):
    """Members with one output shape; the output is the logit of their mean probability.

    Args:
        members: the networks (at least one), each mapping (B, C, H, W) to logits of one shape.

    Attributes:
        deep_supervision: always ``True``: the engine trains every output of :meth:`forward_all`
            on the loss and averages (here: each member on its own).
    """

    deep_supervision = True

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)

    def forward_all(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every member's logits, for training each on its own loss (every output of a member that
        has deep supervision itself)."""
        outputs: list[torch.Tensor] = []
        for member in self.members:
            forward_all = getattr(member, "forward_all", None)
            if getattr(member, "deep_supervision", False) and callable(forward_all):
                outputs += forward_all(x)
            else:
                outputs.append(member(x))
        return outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = [member(x) for member in self.members]
        return outputs[0] if len(outputs) == 1 else mean_probability_logit(outputs)

    def l2_penalty(self) -> torch.Tensor:
        """The sum of the members' ``l2_penalty()`` (Keras-style regularisers), 0 if they have none."""
        penalties = [getattr(m, "l2_penalty", None) for m in self.members]
        terms = [fn() for fn in penalties if callable(fn)]
        return torch.stack(terms).sum() if terms else torch.zeros(())
