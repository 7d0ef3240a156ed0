"""Losses on probability (soft) targets, in torch.

For logits :math:`z_i \\in \\mathbb R^k`, soft targets :math:`q_i` (rows of a stochastic
matrix) and per-sample weights :math:`s_i \\ge 0`, every loss here is the weighted mean

.. math::

    L = \\frac{\\sum_i s_i\\,\\ell_i}{\\sum_i s_i}, \\qquad
    \\ell_i = -\\sum_c w_c\\, q_{ic}\\, \\log \\operatorname{softmax}(z_i + b)_c,

with

* soft cross-entropy: :math:`w = 1, b = 0`;
* logit-adjusted loss (Menon et al., ICLR 2021): :math:`w = 1, b = \\tau\\log\\pi`;
* balanced softmax (Ren et al., NeurIPS 2020): :math:`w = 1, b = \\log\\pi` (the
  logit-adjusted loss at :math:`\\tau = 1`; :math:`\\log n_c` and :math:`\\log\\pi_c`
  differ by a constant that the softmax ignores);
* class-weighted cross-entropy: :math:`w_c` given (e.g. :math:`1/(k\\pi_c)`), :math:`b = 0`.

Note the normalisation by :math:`\\sum_i s_i` (not by :math:`\\sum_i s_i \\sum_c w_c q_{ic}`):
torch's ``F.cross_entropy`` with probability targets and ``weight=`` also divides by
``N``, not by the weights' sum.
"""

from __future__ import annotations

from wsagg._optional import import_optional

torch = import_optional("torch", "wsagg.downstream (SoftLabelClassifier)")

__all__ = [
    "balanced_softmax_loss",
    "logit_adjusted_loss",
    "soft_cross_entropy",
    "weighted_cross_entropy",
]


def _reduce(per_sample: torch.Tensor, sample_weight: torch.Tensor | None) -> torch.Tensor:
    if sample_weight is None:
        return per_sample.mean()
    return (per_sample * sample_weight).sum() / sample_weight.sum()


def soft_cross_entropy(
    logits: torch.Tensor,
    targets: torch.Tensor,
    sample_weight: torch.Tensor | None = None,
    class_weight: torch.Tensor | None = None,
    logit_offset: torch.Tensor | None = None,
) -> torch.Tensor:
    """:math:`\\frac{\\sum_i s_i \\ell_i}{\\sum_i s_i}` with
    :math:`\\ell_i = -\\sum_c w_c q_{ic} \\log\\operatorname{softmax}(z_i + b)_c`."""
    z = logits if logit_offset is None else logits + logit_offset
    logp = torch.log_softmax(z, dim=1)
    terms = targets * logp
    if class_weight is not None:
        terms = terms * class_weight
    return _reduce(-terms.sum(dim=1), sample_weight)


def logit_adjusted_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    log_prior: torch.Tensor,
    tau: float = 1.0,
    sample_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Logit-adjusted soft cross-entropy :math:`-\\sum_c q_c\\log\\operatorname{softmax}(z +
    \\tau\\log\\pi)_c` (Menon et al. 2021). Its population minimiser satisfies
    :math:`\\operatorname{softmax}(z)_y \\propto P(y\\mid x)/\\pi_y^{\\tau}` — at
    :math:`\\tau=1` the balanced posterior, when :math:`\\pi` is the targets' class
    marginal."""
    return soft_cross_entropy(logits, targets, sample_weight, logit_offset=tau * log_prior)


def balanced_softmax_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    log_prior: torch.Tensor,
    sample_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Balanced softmax (Ren et al. 2020): soft cross-entropy of :math:`z + \\log\\pi`."""
    return soft_cross_entropy(logits, targets, sample_weight, logit_offset=log_prior)


def weighted_cross_entropy(
    logits: torch.Tensor,
    targets: torch.Tensor,
    class_weight: torch.Tensor,
    sample_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Class-weighted soft cross-entropy
    :math:`-\\sum_c w_c q_c \\log\\operatorname{softmax}(z)_c`."""
    return soft_cross_entropy(logits, targets, sample_weight, class_weight=class_weight)
