"""Invariant mask generation: a stochastic-gate mask learned by balancing an ERM and an IRM objective.

Given environment labels of the training interactions, a UltraGCN-style scorer reads the masked
content ``m * x`` (``m`` from :class:`~invrec.invariance.StochasticGateMask`) and two objectives are formed
on every batch:

* **ERM** (the IID objective): the pooled recommendation loss of the batch;
* **IRM** (the OOD objective): the mean of the per-environment risks plus an invariance penalty
  (:mod:`invrec.invariance.penalties`: InvRL's gradient variance by default, IRMv1 or V-REx) weighted by
  ``penalty_weight``, plus ``mask_l2 * ||mu||^2``.

The two are combined as ``gamma * ERM + (1 - gamma) * IRM``. With ``pareto="mgda"`` (PaInvRL as
published) ``gamma`` is the closed-form two-objective MGDA weight of their gradients on the shared
parameters ``(mu, W)`` (:func:`~invrec.invariance.mgda_weight`), recomputed every batch; with
``pareto="normalized"`` (PaInvRL's default in invrec) the MGDA weight of the unit-normalised
gradients (:func:`~invrec.invariance.normalized_mgda_weight`); with ``pareto="fixed"`` it is a
constant (0 is InvRL's mask loss: IRM alone). ``penalty_scale="risk"`` rescales the penalty to the
risk's gradient norm (:class:`MaskObjectives`).

Rows of a batch are grouped by environment (:func:`~invrec.invariance.group_by_environment`) and each
environment reads the content projection through its own view of ``W``, so one gradient call
gives every environment's gradient on ``W`` (the input of the InvRL penalty).
"""

from __future__ import annotations

import torch
from torch import nn

from ..nn.backbone import UltraGCNModel
from .environments import group_by_environment
from ..nn.losses import interaction_degree_weights, ultragcn_loss
from .masks import StochasticGateMask
from ..nn.optim import make_adam
from .pareto import flat_gradient, mgda_weight, normalized_mgda_weight
from .penalties import gradient_variance_penalty, irmv1_penalty, vrex_penalty
from ..training import train_epochs

__all__ = ["environment_risks", "MaskObjectives", "learn_invariant_mask", "PENALTIES", "PENALTY_SCALES", "PARETO"]

PENALTIES = ("invrl", "irmv1", "vrex")
#: How the penalty enters the IRM objective (:class:`MaskObjectives`).
PENALTY_SCALES = ("raw", "risk")
#: The weightings of :func:`learn_invariant_mask`.
PARETO = ("mgda", "normalized", "fixed")


def environment_risks(scorer, mask, users, items, env, negatives, beta_u, beta_i, n_envs, *,
                      w=(1.0, 1.0, 1.0, 1.0), scales=None):
    """Per-environment UltraGCN risks of a batch, with a per-environment view of the projection.

    Parameters
    ----------
    scorer : UltraGCNModel
        Must have content (a projection).
    mask : Tensor of shape (d,)
        Feature mask applied to the content.
    users, items, env : LongTensor of shape (B,)
    negatives : LongTensor of shape (K, N)
        Negatives of each environment.
    beta_u, beta_i : Tensor
        Degree weights.
    n_envs : int
    w : tuple of 4 floats
    scales : Tensor of shape (K,), default=None
        IRMv1's dummy scales multiplying each environment's scores.

    Returns
    -------
    risks : Tensor of shape (K,)
        Mean loss of each environment's rows (0 where the batch has none).
    pooled : Tensor
        Mean loss over the batch (the ERM objective).
    present : BoolTensor of shape (K,)
        Environments with rows in the batch.
    weight_views : Tensor of shape (K, c, d)
        The views of ``W`` the risks were computed through (for per-environment gradients).
    """
    index, valid = group_by_environment(env, n_envs)
    u_pad, i_pad = users[index], items[index]
    u = scorer.user_vectors(u_pad)
    proj = scorer.projection
    views = proj.weight.unsqueeze(0).expand(n_envs, -1, -1)

    def vectors(idx):
        x = scorer.features[idx] * mask
        content = torch.bmm(x, views.transpose(1, 2))
        if proj.bias is not None:
            content = content + proj.bias
        return torch.cat([scorer.item_embedding[idx], content], dim=-1)

    pos = (u * vectors(i_pad)).sum(-1)
    neg = torch.bmm(u, vectors(negatives).transpose(1, 2))
    if scales is not None:
        pos = pos * scales[:, None]
        neg = neg * scales[:, None, None]
    n_neg = negatives.shape[1]
    beta_neg = beta_i[negatives].unsqueeze(1).expand(-1, index.shape[1], -1)
    per_row = ultragcn_loss(pos[valid], neg[valid], beta_u[u_pad[valid]], beta_i[i_pad[valid]],
                            beta_neg[valid].reshape(-1, n_neg), w=w, reduction="none")
    table = per_row.new_zeros(valid.shape)
    table[valid] = per_row
    counts = valid.sum(1)
    risks = table.sum(1) / counts.clamp(min=1)
    return risks, per_row.mean(), counts > 0, views


class MaskObjectives:
    """The ERM and IRM objectives of a batch (see the module docstring).

    Parameters
    ----------
    penalty : {"invrl", "irmv1", "vrex"}
    n_envs : int
    w : tuple of 4 floats
        UltraGCN loss weights.
    penalty_scale : {"raw", "risk"}, default="raw"
        "raw" adds ``penalty_weight * penalty`` as it is (InvRL). "risk" first rescales the
        penalty, every batch, by the detached ratio of the gradient norms of the mean environment
        risk and of the penalty on ``shared`` (the gates and the projection): the penalty then
        pulls the parameters as hard as the risk does, times ``penalty_weight``, whatever its own
        scale (InvRL's is about 1e-8 of the risk's, V-REx's about 1e-2).
    """

    def __init__(self, penalty, n_envs, w=(1.0, 1.0, 1.0, 1.0), penalty_scale="raw"):
        if penalty not in PENALTIES:
            raise ValueError(f"penalty must be one of {PENALTIES}; got {penalty!r}.")
        if penalty_scale not in PENALTY_SCALES:
            raise ValueError(f"penalty_scale must be one of {PENALTY_SCALES}; got {penalty_scale!r}.")
        self.penalty, self.n_envs, self.w = penalty, int(n_envs), tuple(float(v) for v in w)
        self.penalty_scale = penalty_scale

    def __call__(self, scorer, gate, users, items, env, negatives, beta_u, beta_i, *,
                 penalty_weight, mask_l2, shared=None):
        """Return ``(erm, irm, penalty)`` scalars for one batch (``penalty`` as used, rescaled or not)."""
        mask = gate()
        scales = None
        if self.penalty == "irmv1":
            scales = torch.ones(self.n_envs, device=users.device, requires_grad=True)
        risks, erm, present, views = environment_risks(
            scorer, mask, users, items, env, negatives, beta_u, beta_i, self.n_envs, w=self.w,
            scales=scales)
        if self.penalty == "invrl":
            (grads,) = torch.autograd.grad(risks.sum(), views, create_graph=True)
            penalty = gradient_variance_penalty(grads[present], gate.mu + 0.5) \
                if int(present.sum()) > 1 else risks.new_zeros(())
        elif self.penalty == "irmv1":
            penalty = irmv1_penalty(risks.sum(), scales)
        else:
            penalty = vrex_penalty(risks[present])
        risk = risks[present].mean()
        if self.penalty_scale == "risk" and penalty.requires_grad:
            params = [gate.mu, scorer.projection.weight] if shared is None else shared
            penalty = penalty * _gradient_ratio(risk, penalty, params)
        irm = risk + penalty_weight * penalty + mask_l2 * gate.l2()
        return erm, irm, penalty


def _gradient_ratio(numerator, denominator, params, eps=1e-20):
    """Detached ``||grad numerator|| / ||grad denominator||`` on ``params`` (0 if the latter is 0)."""
    top = flat_gradient(numerator, params).norm()
    bottom = flat_gradient(denominator, params).norm()
    return (top / bottom).detach() if float(bottom) > eps else bottom.new_zeros(())


def learn_invariant_mask(users, items, env, n_users, n_items, features, *, n_envs,
                         gate=None, scorer=None, epochs=40, pareto="mgda", erm_weight=0.0,
                         penalty="invrl", penalty_weight=1.0, penalty_scale="raw", mask_l2=0.1, sigma=0.01,
                         mask_learning_rate=1e-3, learning_rate=1e-3, batch_size=512,
                         l2_scale=None, n_negatives=50, l2_embedding=1e-4, l2_content=1e-2, item_l2_ratio=2.0,
                         id_dim=64, content_dim=64, init_std=0.01, loss_weights=(1.0, 1.0, 1.0, 1.0),
                         user_degree=None, item_degree=None, generator=None):
    """Learn (or continue learning) the invariant feature mask (InvRL's backend, PaInvRL's weighting).

    Parameters
    ----------
    users, items, env : LongTensor of shape (n,)
        Training interactions and their environment labels.
    n_users, n_items : int
    features : Tensor of shape (n_items, d)
        Prepared content (``d >= 1``).
    n_envs : int
    gate, scorer : StochasticGateMask, UltraGCNModel, default=None
        Continue from these (the next outer iteration); None starts fresh (gates half open, a
        scorer without projection bias, as InvRL's mask stage).
    epochs : int, default=40
        Passes over the interactions (InvRL: 40).
    pareto : {"mgda", "normalized", "fixed"}, default="mgda"
        Per-batch MGDA weight (PaInvRL), the per-batch MGDA weight of the unit-normalised
        gradients (:func:`~invrec.invariance.normalized_mgda_weight`: each objective moves the
        shared parameters equally) or the constant ``erm_weight``.
    erm_weight : float in [0, 1], default=0.0
        ``gamma`` of ``pareto="fixed"`` (0: InvRL's IRM-only mask loss).
    penalty : {"invrl", "irmv1", "vrex"}, default="invrl"
    penalty_weight : float, default=1.0
        Weight of the penalty in the IRM objective (InvRL ``alpha``).
    penalty_scale : {"raw", "risk"}, default="raw"
        The penalty as it is (InvRL) or rescaled to the risk's gradient norm
        (:class:`MaskObjectives`).
    mask_l2 : float, default=0.1
        Weight of ``||mu||^2`` in the IRM objective (InvRL ``lam``).
    sigma : float, default=0.01
        Gate noise of a fresh gate.
    mask_learning_rate, learning_rate : float, default=1e-3
        Adam step sizes of ``mu`` and of the scorer.
    batch_size, l2_scale, n_negatives, l2_embedding, l2_content, item_l2_ratio, id_dim,
    content_dim, init_std, loss_weights, user_degree, item_degree, generator
        As in :func:`~invrec.invariance.infer_environments`.

    Returns
    -------
    gate : StochasticGateMask
    scorer : UltraGCNModel
    gammas : list of float
        ``gamma`` of every batch.
    history : list of dict
        Per epoch (:func:`invrec.training.train_epochs` records, ``stage="mask"``): ``train_loss``,
        ``erm``, ``irm``, ``penalty``, ``gamma`` (row-weighted means) and ``fit_time``.
    """
    if pareto not in PARETO:
        raise ValueError(f"pareto must be one of {PARETO}; got {pareto!r}.")
    device = users.device
    n = users.shape[0]
    beta_u, beta_i = interaction_degree_weights(users, items, n_users, n_items, user_degree, item_degree)
    if scorer is None:
        scorer = UltraGCNModel(n_users, n_items, features, id_dim=id_dim, content_dim=content_dim,
                               init_std=init_std, bias=False, generator=generator)
    if scorer.projection is None:
        raise ValueError("learn_invariant_mask needs item content (a scorer with a projection).")
    if gate is None:
        gate = StochasticGateMask(scorer.n_features, sigma=sigma, generator=generator).to(device)
    groups = scorer.l2_parameter_groups(l2_embedding, l2_content, item_l2_ratio,
                                        scale=1.0 / batch_size if l2_scale is None else l2_scale)
    for group in groups:
        group["lr"] = learning_rate
    groups.append({"params": [gate.mu], "weight_decay": 0.0, "lr": mask_learning_rate})
    optimizer = make_adam(groups, learning_rate)
    objectives = MaskObjectives(penalty, n_envs, loss_weights, penalty_scale=penalty_scale)
    shared = [gate.mu, scorer.projection.weight]
    draw_device = generator.device if generator is not None else device
    gammas = []

    def batch_loss(rows):
        negatives = torch.randint(0, n_items, (n_envs, n_negatives), generator=generator,
                                  device=draw_device).to(device)
        erm, irm, pen = objectives(scorer, gate, users[rows], items[rows], env[rows], negatives,
                                   beta_u, beta_i, penalty_weight=penalty_weight, mask_l2=mask_l2,
                                   shared=shared)
        if pareto == "mgda":
            gamma = mgda_weight(flat_gradient(erm, shared), flat_gradient(irm, shared))
        elif pareto == "normalized":
            gamma = normalized_mgda_weight(flat_gradient(erm, shared), flat_gradient(irm, shared))
        else:
            gamma = float(erm_weight)
        gammas.append(gamma)
        return gamma * erm + (1.0 - gamma) * irm, {"erm": erm, "irm": irm, "penalty": pen, "gamma": gamma}

    history = train_epochs(nn.ModuleList([scorer, gate]), optimizer, batch_loss, n_rows=n,
                           max_epochs=int(epochs), batch_size=batch_size, generator=generator,
                           device=device, history=[], stage="mask")
    return gate, scorer, gammas, history
