"""Optimisers: torch's where they exist, plus sign descent and normalised gradient descent.

``"gd"``            full-batch gradient descent: ``torch.optim.SGD(momentum=0)``;
``"sgd"``           SGD with heavy-ball momentum: ``torch.optim.SGD(momentum=m)``;
``"adam"``          ``torch.optim.Adam(betas=...)``;
``"sign"``          sign descent :math:`\\theta \\leftarrow \\theta - \\eta\\,\\mathrm{sign}(g)`,
                    with optional heavy-ball momentum on the sign (as ``Sign_M`` in
                    Kunstner et al. 2024's code);
``"normalized_gd"`` normalised GD :math:`\\theta \\leftarrow \\theta - \\eta\\, g/\\|g\\|_2`,
                    the norm taken over *all* parameters of the group (global norm), with
                    optional heavy-ball momentum on the normalised step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from wsagg._optional import import_optional

torch = import_optional("torch", "wsagg.downstream (SoftLabelClassifier)")

__all__ = ["DEFAULT_LR", "NormalizedGD", "SignDescent", "make_optimizer"]

DEFAULT_LR = {"gd": 0.1, "sgd": 0.01, "adam": 1e-2, "sign": 1e-2, "normalized_gd": 0.1}


def _momentum_step(state: dict, p: torch.Tensor, d: torch.Tensor, group: dict) -> None:
    """``b = mu b + d`` (heavy-ball buffer, ``b = d`` at the first step), then
    ``p -= lr * b``; with ``mu = 0`` simply ``p -= lr * d``."""
    if group["momentum"] > 0:
        buf = state.get("momentum_buffer")
        if buf is None:
            buf = state["momentum_buffer"] = d.clone()
        else:
            buf.mul_(group["momentum"]).add_(d)
        d = buf
    p.add_(d, alpha=-group["lr"])


class SignDescent(torch.optim.Optimizer):
    """Sign descent: :math:`b_t = \\mu b_{t-1} + \\mathrm{sign}(g_t)`,
    :math:`\\theta_{t+1} = \\theta_t - \\eta\\, b_t` (plain sign descent when :math:`\\mu = 0`).

    The steepest-descent direction for the :math:`\\ell_\\infty` norm; Adam with
    :math:`\\beta_1 = \\beta_2 = 0` (Balles & Hennig 2018; Kunstner et al. 2024).
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, momentum: float = 0.0) -> None:
        if lr <= 0:
            raise ValueError(f"lr must be > 0; got {lr}.")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1); got {momentum}.")
        super().__init__(params, {"lr": lr, "momentum": momentum})

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                _momentum_step(self.state[p], p, torch.sign(p.grad), group)
        return loss


class NormalizedGD(torch.optim.Optimizer):
    """Normalised gradient descent: :math:`\\theta_{t+1} = \\theta_t - \\eta\\, b_t`,
    :math:`b_t = \\mu b_{t-1} + g_t / \\|g_t\\|_2`, with the Euclidean norm over all the
    parameters of a group (so the step has length :math:`\\eta` when :math:`\\mu = 0`)."""

    def __init__(
        self, params: Iterable[Any], lr: float = 0.1, momentum: float = 0.0, eps: float = 1e-30
    ) -> None:
        if lr <= 0:
            raise ValueError(f"lr must be > 0; got {lr}.")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1); got {momentum}.")
        super().__init__(params, {"lr": lr, "momentum": momentum, "eps": eps})

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            norm = torch.sqrt(sum((p.grad * p.grad).sum() for p in params))
            scale = 1.0 / torch.clamp(norm, min=group["eps"])
            for p in params:
                _momentum_step(self.state[p], p, p.grad * scale, group)
        return loss


def make_optimizer(
    name: Any,
    params: Iterable[Any],
    lr: float | None = None,
    *,
    momentum: float | None = None,
    betas: tuple[float, float] = (0.9, 0.999),
) -> torch.optim.Optimizer:
    """Build an optimiser by name (see the module docstring) or from a callable
    ``params -> torch.optim.Optimizer`` (e.g. ``functools.partial(torch.optim.AdamW, lr=1e-3)``)."""
    if callable(name) and not isinstance(name, str):
        opt = name(params)
        if not isinstance(opt, torch.optim.Optimizer):
            raise TypeError("optimizer callable must return a torch.optim.Optimizer.")
        return opt
    if name not in DEFAULT_LR:
        raise ValueError(
            f"optimizer must be one of {sorted(DEFAULT_LR)} or a callable params -> "
            f"torch.optim.Optimizer; got {name!r}."
        )
    lr = DEFAULT_LR[name] if lr is None else float(lr)
    if not lr > 0:
        raise ValueError(f"lr must be > 0; got {lr}.")
    if name == "gd":
        if momentum not in (None, 0, 0.0):
            raise ValueError("optimizer='gd' has no momentum; use optimizer='sgd' with momentum.")
        return torch.optim.SGD(params, lr=lr, momentum=0.0)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9 if momentum is None else momentum)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=tuple(betas))
    if name == "sign":
        return SignDescent(params, lr=lr, momentum=0.0 if momentum is None else momentum)
    return NormalizedGD(params, lr=lr, momentum=0.0 if momentum is None else momentum)
