"""A scikit-learn compatible classifier trained on soft labels (torch)."""

from __future__ import annotations

import copy
import itertools
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from wsagg._optional import has_module, import_optional
from wsagg._torch import resolve_device
from wsagg._validation import warn
from wsagg.downstream._losses import soft_cross_entropy
from wsagg.downstream._optim import make_optimizer
from wsagg.prior import (
    DoubleCorrectionWarning,
    check_double_correction,
    check_prior,
    check_proba,
)

torch = import_optional("torch", "wsagg.downstream (SoftLabelClassifier)")

__all__ = ["LOSSES", "SoftLabelClassifier"]

LOSSES = ("cross_entropy", "logit_adjusted", "balanced_softmax", "weighted_cross_entropy")
_POSTHOC = (None, "logit_adjust", "p2p")
_REBALANCING_LOSSES = ("logit_adjusted", "balanced_softmax", "weighted_cross_entropy")


class SoftLabelClassifier(ClassifierMixin, BaseEstimator):
    """Linear model or small MLP trained on probability targets (soft labels).

    Minimises, over the parameters of :math:`f` (logits :math:`z_i = f(x_i)`),

    .. math::

        \\frac{\\sum_i s_i\\,\\ell_i}{\\sum_i s_i} + \\frac{\\alpha}2\\sum_W \\|W\\|_F^2,\\qquad
        \\ell_i = -\\sum_c w_c\\,q_{ic}\\log\\operatorname{softmax}(z_i + b)_c,

    where :math:`q_i` are the soft labels, :math:`s_i` per-sample (confidence) weights, and
    the loss picks :math:`(w, b)` (see :mod:`wsagg.downstream._losses`):

    ``"cross_entropy"``          :math:`w=1, b=0` — learns :math:`E[q\\mid x]`, the pool posterior;
    ``"logit_adjusted"``         :math:`w=1, b=\\tau\\log\\pi` (Menon et al., ICLR 2021);
    ``"balanced_softmax"``       :math:`w=1, b=\\log\\pi` (Ren et al., NeurIPS 2020);
    ``"weighted_cross_entropy"`` :math:`w_c` from ``class_weight``, :math:`b=0`.

    With the logit-adjusted / balanced-softmax losses, :math:`\\operatorname{softmax}(z)` estimates
    the *balanced* posterior :math:`\\propto P(y\\mid x)/\\pi_y`; :meth:`predict_proba` then
    returns :math:`\\operatorname{softmax}(z + \\log\\pi_t)` for the ``target_prior``
    :math:`\\pi_t` (uniform by default). Post-hoc corrections of a model trained with plain
    cross-entropy: ``posthoc="logit_adjust"`` (:math:`z - \\tau\\log\\pi + \\log\\pi_t`) or
    ``"p2p"`` (Prior2Posterior, Bhat et al. 2025: :math:`z - \\log\\bar P + \\log\\pi_t`,
    :math:`\\bar P` the mean posterior of the trained model on its training inputs).

    Parameters
    ----------
    model : {"linear", "mlp"} or callable (n_features, n_classes) -> torch.nn.Module
        A linear layer with bias, or an MLP with ReLU hidden layers ``hidden_layer_sizes``.
    hidden_layer_sizes : tuple of int
        Hidden widths of the MLP.
    loss : {"cross_entropy", "logit_adjusted", "balanced_softmax", "weighted_cross_entropy"}
    class_prior : "auto", "counts" or array-like (k,)
        :math:`\\pi` of the rebalancing losses, ``class_weight="balanced"`` and
        ``posthoc="logit_adjust"``. ``"auto"``: the (sample-weighted) mean of the soft labels —
        the class marginal of the targets, which is what makes the losses consistent.
        ``"counts"``: Laplace-smoothed frequencies of the soft labels' argmax, :math:`(n_y + 1)/
        (n + k)` (Ren et al.'s :math:`n_y`, smoothed so that no class gets probability 0). An
        explicit prior that disagrees with the targets' marginal by more than a factor 2
        raises a :class:`~wsagg.prior.DoubleCorrectionWarning`.
    tau : float
        Temperature of the logit adjustment (loss and post-hoc).
    class_weight : None, "balanced" or array-like (k,)
        :math:`w_c` of ``"weighted_cross_entropy"``; ``"balanced"`` is
        :math:`w_c = 1/(k\\pi_c)` (scikit-learn's heuristic on the soft counts).
    posthoc : None, "logit_adjust" or "p2p"
    target_prior : "uniform" or array-like (k,)
        Deployment prior used by the rebalancing losses' outputs and by ``posthoc``.
    optimizer : {"gd", "sgd", "adam", "sign", "normalized_gd"} or callable
        See :mod:`wsagg.downstream._optim`; a callable ``params -> torch.optim.Optimizer``
        is used as is.
    lr : float, optional
        Step size (default per optimizer: gd 0.1, sgd 0.01, adam 0.01, sign 0.01,
        normalized_gd 0.1).
    momentum : float, optional
        Heavy-ball momentum of ``"sgd"`` (default 0.9), ``"sign"`` and ``"normalized_gd"``
        (default 0).
    betas : (float, float)
        Adam's :math:`(\\beta_1, \\beta_2)`.
    alpha : float
        L2 penalty on the weight matrices (not the biases).
    max_iter : int
        Number of epochs (full-batch: number of steps).
    batch_size : int, optional
        Mini-batch size; ``None`` = full batch.
    early_stopping : bool
        Hold out ``validation_fraction`` of the training items (unless ``eval_set`` is given
        to :meth:`fit`) and stop when the validation loss has not improved by ``tol`` for
        ``n_iter_no_change`` epochs; the best parameters are restored. With ``eval_set``
        early stopping is always on.
    validation_fraction, n_iter_no_change, tol
    dtype : {"float64", "float32"}
    device : str
        ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ... or ``"auto"`` (CUDA when available).
    progress : bool or "auto"
        tqdm progress bar; ``"auto"`` shows it only on a terminal and only when tqdm is
        installed; ``True`` without tqdm is a one-line error naming
        ``pip install 'wsagg[progress]'``.
    callback : callable (epoch, estimator) -> bool | None, optional
        Called after every epoch (``decision_function`` works inside it); returning
        ``True`` stops training.
    random_state : int, RandomState or None
        Seeds initialisation, shuffling and the validation split through a
        ``torch.Generator`` (never the global seed). Same seed, same device: same model.

    Attributes
    ----------
    classes_ : ndarray (k,)
    n_features_in_ : int
    module_ : torch.nn.Module
    class_prior_ : ndarray (k,)
        The :math:`\\pi` used.
    class_weight_ : ndarray (k,) or None
    effective_prior_ : ndarray (k,)
        Mean of ``softmax(z)`` over the training inputs (Prior2Posterior's :math:`\\bar P`).
    loss_curve_ : list of float
        Training objective per epoch (full batch: at the parameters before the step).
    validation_loss_curve_ : list of float
        Validation loss per epoch (empty without early stopping).
    best_epoch_ : int
    n_iter_ : int
    output_offset_ : ndarray (k,)
        Added to the logits by :meth:`predict_proba` / :meth:`decision_function`: the target
        prior for the rebalancing losses, minus :math:`\\tau \\log \\pi` (``posthoc=
        "logit_adjust"``) or :math:`\\log \\bar P` (``posthoc="p2p"``); zeros otherwise.
    """

    def __init__(
        self,
        model: Any = "linear",
        *,
        hidden_layer_sizes: tuple[int, ...] = (64,),
        loss: str = "cross_entropy",
        class_prior: Any = "auto",
        tau: float = 1.0,
        class_weight: Any = None,
        posthoc: str | None = None,
        target_prior: Any = "uniform",
        optimizer: Any = "adam",
        lr: float | None = None,
        momentum: float | None = None,
        betas: tuple[float, float] = (0.9, 0.999),
        alpha: float = 0.0,
        max_iter: int = 200,
        batch_size: int | None = None,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 10,
        tol: float = 1e-4,
        dtype: str = "float64",
        device: str = "cpu",
        progress: Any = "auto",
        callback: Callable[[int, Any], Any] | None = None,
        random_state: Any = None,
    ) -> None:
        self.model = model
        self.hidden_layer_sizes = hidden_layer_sizes
        self.loss = loss
        self.class_prior = class_prior
        self.tau = tau
        self.class_weight = class_weight
        self.posthoc = posthoc
        self.target_prior = target_prior
        self.optimizer = optimizer
        self.lr = lr
        self.momentum = momentum
        self.betas = betas
        self.alpha = alpha
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.dtype = dtype
        self.device = device
        self.progress = progress
        self.callback = callback
        self.random_state = random_state

    # ------------------------------------------------------------------------------
    # fit
    # ------------------------------------------------------------------------------
    def fit(
        self,
        X: Any,
        soft_labels: Any,
        sample_weight: Any = None,
        eval_set: tuple[Any, Any] | None = None,
    ) -> SoftLabelClassifier:
        """Fit on features ``X`` (dense or scipy sparse, ``(n, d)``) and ``soft_labels``.

        ``soft_labels``: ``(n, k)`` rows of class probabilities, or 1-D hard labels (then
        one-hot over their sorted unique values). ``sample_weight``: per-sample confidence
        weights ``s_i >= 0``. ``eval_set=(X_val, y_val)`` (``y_val`` soft or hard, in the same
        class encoding) turns on early stopping on that set.
        """
        self._check_params()
        Xc = _check_X(X)
        Q, classes = self._targets(soft_labels, Xc.shape[0])
        n, k = Q.shape
        if n < 1:
            raise ValueError("fit needs at least one sample.")
        s = _sample_weight(sample_weight, n)
        self.classes_ = classes
        self.n_features_in_ = Xc.shape[1]
        self._dtype = torch.float64 if self.dtype == "float64" else torch.float32
        self._device = resolve_device(self.device)

        seed = int(check_random_state(self.random_state).randint(0, 2**31 - 1))
        gen = torch.Generator().manual_seed(seed)

        # class prior and weights ------------------------------------------------------
        marginal = (s @ Q) / s.sum()
        if isinstance(self.class_prior, str) and self.class_prior == "auto":
            prior = marginal
        elif isinstance(self.class_prior, str) and self.class_prior == "counts":
            counts = np.bincount(np.argmax(Q, axis=1), weights=s, minlength=k) + 1.0
            prior = counts / counts.sum()
        else:
            prior = check_prior(self.class_prior, k, name="class_prior")
        if not (isinstance(self.class_prior, str) and self.class_prior == "auto") and (
            self.loss in _REBALANCING_LOSSES or self.posthoc == "logit_adjust"
        ):
            check_double_correction(Q, prior, sample_weight=s,
                                    what=f"class_prior={self.class_prior!r}"[:60])
        uses_prior = (
            self.loss in ("logit_adjusted", "balanced_softmax")
            or self.posthoc == "logit_adjust"
            or (isinstance(self.class_weight, str) and self.class_weight == "balanced")
        )
        if uses_prior and (prior <= 0).any():
            c = int(np.flatnonzero(prior <= 0)[0])
            raise ValueError(
                f"Class {c} has zero probability in the class prior (no soft-label mass), so "
                "log-prior corrections are undefined. Pass an explicit smoothed class_prior, "
                "or drop the class."
            )
        self.class_prior_ = prior
        self.class_weight_ = self._class_weight(prior, k)
        if self.posthoc == "logit_adjust" and self.loss in _REBALANCING_LOSSES:
            warn(
                f"posthoc='logit_adjust' on a model trained with loss={self.loss!r} corrects "
                "the class prior twice (the loss already targets the balanced posterior). Use "
                "posthoc=None, or 'p2p' to remove only the residual bias.",
                DoubleCorrectionWarning)

        # validation split -------------------------------------------------------------
        X_val = Q_val = None
        if eval_set is not None:
            if len(eval_set) != 2:
                raise ValueError("eval_set must be a pair (X_val, y_val).")
            X_val = _check_X(eval_set[0])
            if X_val.shape[1] != Xc.shape[1]:
                raise ValueError(
                    f"eval_set X has {X_val.shape[1]} features; X has {Xc.shape[1]}."
                )
            Q_val = self._encode(eval_set[1], X_val.shape[0], name="eval_set y")
            s_val = np.ones(X_val.shape[0])
            train_idx = np.arange(n)
        elif self.early_stopping:
            n_val = math.ceil(self.validation_fraction * n)
            if n_val < 1 or n - n_val < 1:
                raise ValueError(
                    f"early_stopping with validation_fraction={self.validation_fraction} leaves "
                    f"an empty train or validation split for {n} samples."
                )
            perm = torch.randperm(n, generator=gen).numpy()
            val_idx, train_idx = np.sort(perm[:n_val]), np.sort(perm[n_val:])
            X_val, Q_val, s_val = Xc[val_idx], Q[val_idx], s[val_idx]
        else:
            train_idx = np.arange(n)
        X_tr, Q_tr, s_tr = Xc[train_idx], Q[train_idx], s[train_idx]

        # model and optimiser ----------------------------------------------------------
        self.module_ = self._build_module(Xc.shape[1], k, gen).to(self._device)
        params = list(self.module_.parameters())
        opt = make_optimizer(self.optimizer, params, self.lr, momentum=self.momentum,
                             betas=self.betas)
        weights = [p for name, p in self.module_.named_parameters() if name.endswith("weight")]

        t = self._tensors
        log_prior = torch.as_tensor(np.log(np.maximum(prior, 1e-300)), dtype=self._dtype,
                                    device=self._device)
        cw = None if self.class_weight_ is None else t(self.class_weight_)
        offset = None
        if self.loss == "logit_adjusted":
            offset = self.tau * log_prior
        elif self.loss == "balanced_softmax":
            offset = log_prior

        def objective(z: torch.Tensor, q: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
            return soft_cross_entropy(z, q, w, class_weight=cw, logit_offset=offset)

        def penalty() -> torch.Tensor:
            if self.alpha == 0:
                return torch.zeros((), dtype=self._dtype, device=self._device)
            return 0.5 * self.alpha * sum((w * w).sum() for w in weights)

        full_batch = self.batch_size is None or self.batch_size >= X_tr.shape[0]
        if full_batch:
            Xt, Qt, St = self._to_x(X_tr), t(Q_tr), t(s_tr)
        if X_val is not None:
            Xv, Qv, Sv = self._to_x(X_val), t(Q_val), t(s_val)

        self.loss_curve_ = []
        self.validation_loss_curve_ = []
        best, best_state, since_best = math.inf, None, 0
        self.best_epoch_ = 0
        self.n_iter_ = 0
        bar = _progress(range(int(self.max_iter)), self.progress)
        for epoch in bar:
            self.module_.train()
            if full_batch:
                opt.zero_grad(set_to_none=True)
                obj = objective(self.module_(Xt), Qt, St) + penalty()
                if not torch.isfinite(obj):
                    raise FloatingPointError(_diverged_msg(epoch, self.lr, self.optimizer))
                obj.backward()
                opt.step()
                epoch_loss = float(obj.detach())
            else:
                perm = torch.randperm(X_tr.shape[0], generator=gen).numpy()
                total, mass = 0.0, 0.0
                for start in range(0, X_tr.shape[0], int(self.batch_size)):
                    idx = perm[start:start + int(self.batch_size)]
                    wb = s_tr[idx]
                    if wb.sum() <= 0:
                        continue
                    opt.zero_grad(set_to_none=True)
                    obj = objective(self.module_(self._to_x(X_tr[idx])), t(Q_tr[idx]), t(wb))
                    obj = obj + penalty()
                    if not torch.isfinite(obj):
                        raise FloatingPointError(_diverged_msg(epoch, self.lr, self.optimizer))
                    obj.backward()
                    opt.step()
                    total += float(obj.detach()) * wb.sum()
                    mass += wb.sum()
                epoch_loss = total / max(mass, 1e-300)
            self.loss_curve_.append(epoch_loss)
            self.n_iter_ = epoch + 1
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{epoch_loss:.4g}")
            if X_val is not None:
                self.module_.eval()
                with torch.no_grad():
                    v = float(objective(self.module_(Xv), Qv, Sv))
                self.validation_loss_curve_.append(v)
                if v < best - self.tol:
                    best, since_best, self.best_epoch_ = v, 0, epoch
                    best_state = copy.deepcopy(self.module_.state_dict())
                else:
                    since_best += 1
                if since_best >= self.n_iter_no_change:
                    break
            else:
                self.best_epoch_ = epoch
            if self.callback is not None:
                self.module_.eval()
                if self.callback(epoch, self):
                    break
        if hasattr(bar, "close"):
            bar.close()
        if best_state is not None:
            self.module_.load_state_dict(best_state)
        self.module_.eval()
        z_train = self._logits(Xc)
        p_train = _softmax(z_train)
        self.effective_prior_ = p_train.mean(axis=0)
        self._set_output_offset()
        return self

    # ------------------------------------------------------------------------------
    # predict
    # ------------------------------------------------------------------------------
    def decision_function(self, X: Any) -> np.ndarray:
        """Logits ``(n, k)`` used for prediction (the raw model output :math:`z`, plus the
        prior offset of ``posthoc`` / the rebalancing losses' ``target_prior``)."""
        check_is_fitted(self, "module_")
        z = self._logits(_check_X(X, self.n_features_in_))
        return z + getattr(self, "output_offset_", 0.0)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities ``(n, k)``: softmax of :meth:`decision_function`."""
        return _softmax(self.decision_function(X))

    def predict(self, X: Any) -> np.ndarray:
        """Class of highest probability (a value of ``classes_``)."""
        return self.classes_[np.argmax(self.decision_function(X), axis=1)]

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Higher is better: what ``GridSearchCV`` and ``cross_val_score`` maximise.

        * Soft targets ``y`` (an ``(n, k)`` matrix of class probabilities, as given to
          :meth:`fit`): the **negative cross-entropy** ``-sum_i s_i sum_c q_ic log p_ic /
          sum_i s_i`` of the predicted probabilities ``p = predict_proba(X)`` against them
          (scikit-learn's ``neg_log_loss`` on soft labels; at most 0, 0 only for certain,
          exactly right predictions).
        * Hard labels ``y`` (1-D, values of ``classes_``): the accuracy of :meth:`predict`,
          as for any scikit-learn classifier.

        The two are on different scales: compare scores of one kind only.
        """
        arr = y.toarray() if sp.issparse(y) else np.asarray(y)
        if arr.ndim != 2:
            return float(super().score(X, y, sample_weight=sample_weight))
        from scipy.special import log_softmax

        z = self.decision_function(X)
        Q = self._encode(arr, z.shape[0], name="y")
        s = _sample_weight(sample_weight, z.shape[0])
        if s.sum() <= 0:
            raise ValueError("sample_weight sums to 0; nothing to score.")
        per_item = -(Q * log_softmax(z, axis=1)).sum(axis=1)
        return float(-(s @ per_item) / s.sum())

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Save the fitted classifier to one file (JSON metadata + ``.npz`` arrays holding
        the module's weights, never pickle); ``wsagg.load(path)`` rebuilds it. See
        :func:`wsagg.persistence.save`."""
        from wsagg.persistence import save

        return save(self, path, overwrite=overwrite)

    # ------------------------------------------------------------------------------
    # helpers
    # ------------------------------------------------------------------------------
    def _check_params(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}; got {self.loss!r}.")
        if self.posthoc not in _POSTHOC:
            raise ValueError(f"posthoc must be one of {_POSTHOC}; got {self.posthoc!r}.")
        if self.dtype not in ("float64", "float32"):
            raise ValueError(f"dtype must be 'float64' or 'float32'; got {self.dtype!r}.")
        if int(self.max_iter) < 1:
            raise ValueError(f"max_iter must be >= 1; got {self.max_iter}.")
        if self.batch_size is not None and int(self.batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1 or None; got {self.batch_size}.")
        if not (isinstance(self.tau, int | float) and math.isfinite(self.tau)):
            raise ValueError(f"tau must be a finite number; got {self.tau!r}.")
        if self.alpha < 0:
            raise ValueError(f"alpha must be >= 0; got {self.alpha}.")
        if not 0 < self.validation_fraction < 1:
            raise ValueError(
                f"validation_fraction must be in (0, 1); got {self.validation_fraction}."
            )
        if self.loss == "weighted_cross_entropy" and self.class_weight is None:
            raise ValueError(
                "loss='weighted_cross_entropy' needs class_weight ('balanced' or an array)."
            )
        if not (self.model in ("linear", "mlp") or callable(self.model)):
            raise ValueError(
                f"model must be 'linear', 'mlp' or a callable (n_features, n_classes) -> "
                f"torch.nn.Module; got {self.model!r}."
            )

    def _targets(self, soft_labels: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
        arr = soft_labels if sp.issparse(soft_labels) else np.asarray(soft_labels)
        if sp.issparse(arr):
            arr = arr.toarray()
        if arr.ndim == 1:
            if arr.shape[0] != n:
                raise ValueError(f"X has {n} rows but y has {arr.shape[0]} labels.")
            classes, codes = np.unique(arr, return_inverse=True)
            if classes.shape[0] < 2:
                raise ValueError("Hard labels y contain a single class; need at least 2.")
            return np.eye(classes.shape[0])[codes], classes
        Q = check_proba(arr, name="soft_labels")
        if Q.shape[0] != n:
            raise ValueError(
                f"X has {n} rows but soft_labels has {Q.shape[0]}; they must be aligned."
            )
        return Q, np.arange(Q.shape[1])

    def _encode(self, y: Any, n: int, name: str) -> np.ndarray:
        arr = np.asarray(y)
        k = self.classes_.shape[0]
        if arr.ndim == 2:
            Q = check_proba(arr, k, name=name)
        else:
            idx = np.searchsorted(self.classes_, arr)
            idx = np.clip(idx, 0, k - 1)
            if arr.shape[0] and not np.all(self.classes_[idx] == arr):
                raise ValueError(f"{name} contains labels that are not in classes_.")
            Q = np.eye(k)[idx]
        if Q.shape[0] != n:
            raise ValueError(f"{name} has {Q.shape[0]} rows; X_val has {n}.")
        return Q

    def _class_weight(self, prior: np.ndarray, k: int) -> np.ndarray | None:
        cw = self.class_weight
        if cw is None:
            return None
        if isinstance(cw, str):
            if cw != "balanced":
                raise ValueError(f"class_weight must be None, 'balanced' or an array; got {cw!r}.")
            return 1.0 / (k * prior)
        arr = np.asarray(cw, dtype=np.float64)
        if arr.shape != (k,) or not np.all(np.isfinite(arr)) or (arr < 0).any():
            raise ValueError(f"class_weight must be {k} finite non-negative numbers.")
        return arr

    def _build_module(self, d: int, k: int, gen: torch.Generator) -> torch.nn.Module:
        if callable(self.model) and not isinstance(self.model, str):
            module = self.model(d, k)
            if not isinstance(module, torch.nn.Module):
                raise TypeError("model callable must return a torch.nn.Module.")
            return module.to(self._dtype)
        widths = [d] if self.model == "linear" else [d, *map(int, self.hidden_layer_sizes)]
        layers: list[torch.nn.Module] = []
        for a, b in itertools.pairwise(widths):
            layers += [_Linear(a, b, self._dtype, gen), torch.nn.ReLU()]
        layers.append(_Linear(widths[-1], k, self._dtype, gen))
        return torch.nn.Sequential(*layers)

    def _tensors(self, a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(a), dtype=self._dtype, device=self._device)

    def _to_x(self, X: Any) -> torch.Tensor:
        if sp.issparse(X):
            coo = X.tocoo()
            idx = np.vstack([coo.row, coo.col]).astype(np.int64)
            return torch.sparse_coo_tensor(
                torch.from_numpy(idx), torch.as_tensor(coo.data, dtype=self._dtype),
                size=coo.shape, check_invariants=False,
            ).coalesce().to(self._device)
        return self._tensors(X)

    def _logits(self, X: Any, chunk: int = 65536) -> np.ndarray:
        out = []
        with torch.no_grad():
            for start in range(0, X.shape[0], chunk):
                z = self.module_(self._to_x(X[start:start + chunk]))
                out.append(z.detach().to("cpu", torch.float64).numpy())
        if not out:
            return np.zeros((0, self.classes_.shape[0]))
        return np.concatenate(out, axis=0)

    def _set_output_offset(self) -> None:
        k = self.classes_.shape[0]
        log_t = np.log(check_prior(self.target_prior, k, name="target_prior"))
        log_pi = np.log(np.maximum(self.class_prior_, 1e-300))
        off = np.zeros(k)
        if self.loss in ("logit_adjusted", "balanced_softmax"):
            # softmax(z) estimates P(y|x) / pi^tau: re-weight by the target prior
            off = off + log_t
        if self.posthoc == "logit_adjust":
            off = off - self.tau * log_pi + self.tau * log_t
        elif self.posthoc == "p2p":
            off = off - np.log(np.maximum(self.effective_prior_, 1e-300)) + log_t
        self.output_offset_ = off - off.max()


class _Linear(torch.nn.Module):
    """``x W^T + b`` accepting dense or sparse COO ``x``; PyTorch's default initialisation
    (Kaiming-uniform with ``a = sqrt(5)``, bias in :math:`\\pm 1/\\sqrt{d}`), drawn from the
    given generator."""

    def __init__(self, d: int, k: int, dtype: torch.dtype, gen: torch.Generator) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(d) if d > 0 else 0.0
        w = (torch.rand(k, d, generator=gen, dtype=torch.float64) * 2 - 1) * bound
        b = (torch.rand(k, generator=gen, dtype=torch.float64) * 2 - 1) * bound
        self.weight = torch.nn.Parameter(w.to(dtype))
        self.bias = torch.nn.Parameter(b.to(dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.is_sparse:
            return torch.sparse.mm(x, self.weight.t()) + self.bias
        return torch.addmm(self.bias, x, self.weight.t())


# ----------------------------------------------------------------------------------------


def _check_X(X: Any, n_features: int | None = None) -> Any:
    if sp.issparse(X):
        Xc = sp.csr_matrix(X, dtype=np.float64)
        if Xc.ndim != 2:
            raise ValueError(f"X must be 2-D; got shape {Xc.shape}.")
        if not np.all(np.isfinite(Xc.data)):
            raise ValueError("X contains NaN or infinite values.")
    else:
        try:
            Xc = np.asarray(X, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise TypeError("X must be a numeric array or a scipy sparse matrix.") from err
        if Xc.ndim != 2:
            raise ValueError(
                f"X must be 2-D (n_samples, n_features); got shape {Xc.shape}. Use "
                "X.reshape(-1, 1) for a single feature."
            )
        if not np.all(np.isfinite(Xc)):
            raise ValueError("X contains NaN or infinite values.")
    if n_features is not None and Xc.shape[1] != n_features:
        raise ValueError(
            f"X has {Xc.shape[1]} features, but the classifier was fitted with {n_features}."
        )
    return Xc


def _sample_weight(w: Any, n: int) -> np.ndarray:
    from wsagg.prior import _check_sample_weight

    return np.ones(n) if w is None else _check_sample_weight(w, n)




def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _progress(it: Any, progress: Any) -> Any:
    """A tqdm bar over ``it``: ``True`` needs tqdm (one-line error naming the extra when it
    is missing), ``"auto"`` shows one on a terminal when tqdm is installed, ``False`` none."""
    if progress is False or (progress == "auto" and not has_module("tqdm.auto")):
        return it
    tqdm = import_optional("tqdm.auto", "SoftLabelClassifier(progress=True)",
                           alternative="or pass progress=False").tqdm
    return tqdm(it, disable=None if progress == "auto" else not progress, leave=False,
                desc="SoftLabelClassifier")


def _diverged_msg(epoch: int, lr: Any, optimizer: Any) -> str:
    return (
        f"Training diverged at epoch {epoch} (non-finite loss) with optimizer={optimizer!r}, "
        f"lr={lr!r}. Lower lr or use optimizer='adam'."
    )
