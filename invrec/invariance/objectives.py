"""The final objective of a fused item model: ``L_fuse + w_irm L_irm + w_erm L_erm``.

A fused model (:class:`~invrec.invariance.FusedItemModel`) scores a pair three ways: with the
fused, the invariant-only and the variant-only content. Given the per-row losses of the three
(ranking or rating losses, from the estimator) and the environment of every training row,

* ``L_fuse`` is the fused loss: pooled (``fuse="pooled"``), or the environment-averaged risk
  plus ``irm_weight`` times the variance of the per-environment risks (``fuse="irm"``, V-REx);
* ``L_irm`` is the invariant-only loss in the second form (always with the variance);
* ``L_erm`` is the pooled variant-only loss.

The fusion parameters see only ``L_fuse`` (the single-part scores do not go through them), so
its weights cannot collapse the way free loss weights do. PaInvRL's final model is the case
``fuse="pooled", w_irm=w_erm=0`` (:data:`POOLED`); EIOR's default is :class:`FusedObjective`'s.
"""

from __future__ import annotations

import numbers

import torch
from sklearn.base import BaseEstimator

from ..nn.losses import degree_weights, ultragcn_loss
from ..nn.sampling import sample_negatives
from ..utils.params import Interval, StrOptions, validate_parameters
from .penalties import vrex_penalty

__all__ = ["FusedObjective", "POOLED", "environment_risk", "ranking_part_losses"]

#: Rows of a batch (its first ones; batches are shuffled) whose mean invariant weight is logged as
#: ``attention_inv``: the whole batch cost 35-70% of a training step (TikTok-sized, 4096 rows).
ATTENTION_LOG_ROWS = 256


def environment_risk(per_row, env, n_envs, variance_weight):
    """Mean of the per-environment mean losses plus ``variance_weight`` times their variance.

    Environments without rows in ``per_row`` are left out of both.

    Examples
    --------
    >>> import torch
    >>> environment_risk(torch.tensor([1.0, 3.0, 5.0]), torch.tensor([0, 0, 2]), 3, 1.0).item()
    5.75
    """
    sums = per_row.new_zeros(n_envs).index_add(0, env, per_row)
    counts = torch.bincount(env, minlength=n_envs).to(per_row.dtype)
    present = counts > 0
    risks = sums[present] / counts[present]
    return risks.mean() + variance_weight * vrex_penalty(risks)


class FusedObjective(BaseEstimator):
    """What a fused item model is trained on: the setting EIOR holds as ``objective``.

    Parameters
    ----------
    fuse : {"irm", "pooled"}, default="irm"
        ``L_fuse``: the environment-averaged fused risk plus ``irm_weight`` times the variance of
        the environment risks ("irm"; ``benchmarks/fusion_probe.py`` found that a pooled loss
        moves the attention *away* from the invariant part when the training environments
        disagree), or the pooled fused loss ("pooled", EIOR spec decision 5).
    w_irm, w_erm : float, default=0.5
        Weights of ``L_irm`` and ``L_erm`` (the EIOR authors' code starts its two weights at 0.5).
    irm_weight : float, default=1.0
        Weight of the V-REx variance of the environment risks (InvRL's ``alpha`` = 1).

    Examples
    --------
    >>> FusedObjective(w_erm=0.0).parts
    ('fused', 'invariant')
    """

    _parameter_constraints = {
        "fuse": [StrOptions({"irm", "pooled"})],
        "w_irm": [Interval(numbers.Real, 0, None)],
        "w_erm": [Interval(numbers.Real, 0, None)],
        "irm_weight": [Interval(numbers.Real, 0, None)],
    }

    def __init__(self, fuse="irm", *, w_irm=0.5, w_erm=0.5, irm_weight=1.0):
        self.fuse = fuse
        self.w_irm = w_irm
        self.w_erm = w_erm
        self.irm_weight = irm_weight

    @property
    def parts(self):
        """The scores the objective needs: "fused", then those with a non-zero weight."""
        return ("fused",) + (("invariant",) if self.w_irm > 0 else ()) + (("variant",) if self.w_erm > 0 else ())

    def build(self, model, items, part_losses, env, n_envs):
        """The batch objective ``rows -> (loss, logs)`` the training loop calls.

        Parameters
        ----------
        model : FusedItemModel
        items : LongTensor of shape (n_rows,)
            Item of every training row (for ``attention_inv``, the logged mean invariant weight of
            the first :data:`ATTENTION_LOG_ROWS` items of a batch).
        part_losses : callable
            ``(rows, parts) -> list`` of per-row losses of the requested parts.
        env : LongTensor of shape (n_rows,)
            Environment of every training row.
        n_envs : int
        """
        validate_parameters(self)
        parts, w_irm, w_erm = self.parts, float(self.w_irm), float(self.w_erm)
        variance_weight = float(self.irm_weight)
        fuse_irm = self.fuse == "irm"

        def objective(rows):
            e = env[rows]
            losses = dict(zip(parts, part_losses(rows, parts)))
            fused = losses["fused"]
            fuse = environment_risk(fused, e, n_envs, variance_weight) if fuse_irm else fused.mean()
            logs = {"loss_fuse": fuse}
            loss = fuse
            if "invariant" in losses:
                logs["loss_irm"] = environment_risk(losses["invariant"], e, n_envs, variance_weight)
                loss = loss + w_irm * logs["loss_irm"]
            if "variant" in losses:
                logs["loss_erm"] = losses["variant"].mean()
                loss = loss + w_erm * logs["loss_erm"]
            with torch.no_grad():       # a diagnostic, on a share of the batch: no graph, little cost
                logs["attention_inv"] = model.attention_weights(items[rows[:ATTENTION_LOG_ROWS]])[:, 0].mean()
            return loss, logs

        return objective


#: PaInvRL's final objective: the pooled fused loss alone.
POOLED = FusedObjective("pooled", w_irm=0.0, w_erm=0.0)


def ranking_part_losses(model, data, n_negatives, loss_weights, sample_weight=None):
    """Per-row UltraGCN losses of the parts of a fused model, ``n_negatives`` shared by a batch.

    ``sample_weight`` (Tensor of shape (n_rows,), default None: unweighted) weighs every training
    row's losses (its interaction weight, of mean 1: see
    :meth:`~invrec.base.BaseRecommender._interaction_weights`); the pooled and the
    per-environment risks of :meth:`FusedObjective.build` are then means of weighted losses.

    Returns a callable ``(rows, parts) -> list of (B,) losses`` for :meth:`FusedObjective.build`.
    """
    beta_u, beta_i = degree_weights(data.user_degree, data.item_degree)
    weights = tuple(float(w) for w in loss_weights)

    def losses(rows, parts):
        users, items = data.users[rows], data.items[rows]
        negatives = sample_negatives(data.n_items, len(rows), n_negatives,
                                     generator=data.generator, device=data.device)
        row_weight = None if sample_weight is None else sample_weight[rows]
        return [ultragcn_loss(pos, neg, beta_u[users], beta_i[items], beta_i[negatives],
                              w=weights, sample_weight=row_weight, reduction="none")
                for pos, neg in model.part_scores(users, items, negatives, parts)]

    return losses
