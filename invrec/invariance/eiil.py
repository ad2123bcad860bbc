"""Environment inference by adversarial partition of a reference model's IRMv1 gradients (EIIL).

EIIL (Creager, Jacobsen and Zemel, "Environment Inference for Invariant Learning", ICML 2021)
looks for the environments under which a *fixed* reference model, trained by plain empirical risk
minimisation, is the least invariant: the split of the training rows that makes the reference
model's IRMv1 penalty largest. Where the reference model leans on a shortcut that holds more
strongly on some rows than on others, those rows end up in different environments.

The reference model stays fixed, so the only thing the penalty needs from it is one number per
row. Multiply the scores of row ``i`` (its positive and its negatives) by a dummy scale ``w``;
the row's loss ``l_i(w)`` then has the derivative ``g_i = d l_i / d w`` at ``w = 1``
(:func:`scale_gradients`). With a soft assignment ``q_ie >= 0``, ``sum_e q_ie = 1``, the risk of
environment ``e`` is ``R_e(w) = (1 / n) sum_i q_ie l_i(w)``, as in the paper, and its IRMv1
penalty is::

    P(q) = sum_e (d R_e / d w at w = 1)^2 = sum_e ((1 / n) sum_i q_ie g_i)^2

(:func:`eiil_penalty`). :func:`eiil_partition` maximises ``P`` over the logits of ``q`` with
Adam (one logit per row for two environments, ``q_i = sigmoid(z_i)``; ``K`` logits and a
softmax otherwise) and returns the argmax labels.

Two consequences of the form of ``P`` are worth knowing:

* ``P`` is a convex quadratic in ``q``, so its maximum over the simplex is at a hard partition,
  and for two environments it is the *sign split*: rows with ``g_i > 0`` (the reference model is
  over-confident: growing its scores raises their loss) against rows with ``g_i < 0``
  (under-confident). The optimiser finds it from any start (the gradient of ``P`` in ``q_i`` is
  ``2 g_i (S_1 - S_0)``, the same sign for all rows of one sign of ``g``). For ``K > 2`` splitting
  rows of one sign further only lowers ``P`` (``(a + b)^2 >= a^2 + b^2`` when ``a`` and ``b`` have
  one sign), so at most two environments are non-empty at the optimum.
* Normalising each environment's risk by its own mass, ``sum_i q_ie g_i / sum_i q_ie``
  (``normalization="environment"``), is degenerate: a mean of the ``g_i`` is largest in
  magnitude for the one most extreme row, so the maximiser isolates a few extreme rows in an
  environment of their own. It is offered to compare with, not as a default.

The reference model's score scale enters ``g`` linearly through the positives' and negatives'
terms; the partition only depends on the signs of ``g`` (and, with ``normalization="environment"``
or ``K > 2`` on the way to the optimum, on their sizes).
"""

from __future__ import annotations

import torch

from ..nn.losses import degree_weights, ultragcn_loss
from ..nn.optim import make_adam
from ..nn.sampling import sample_negatives
from ..nn.scoring import pair_and_negative_scores

__all__ = ["NORMALIZATIONS", "eiil_penalty", "eiil_partition", "scale_gradients",
           "infer_environments_eiil"]

#: How an environment's risk is normalised: by the number of rows (EIIL's soft risk) or by the
#: environment's own mass (degenerate, see the module docstring).
NORMALIZATIONS = ("rows", "environment")

#: Smallest environment mass divided by under ``normalization="environment"``.
_MASS_FLOOR = 1e-12


def _check_gradients(scale_gradients):
    g = torch.as_tensor(scale_gradients)
    if g.ndim != 1:
        raise ValueError(f"scale_gradients must be 1-D (one value per row); got shape {tuple(g.shape)}.")
    if g.numel() == 0:
        raise ValueError("scale_gradients is empty; there is no row to partition.")
    if not g.is_floating_point():
        g = g.to(torch.get_default_dtype())
    if not bool(torch.isfinite(g).all()):
        raise ValueError("scale_gradients holds NaN or inf.")
    return g.detach()


def _check_normalization(normalization):
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}; got {normalization!r}.")


def eiil_penalty(scale_gradients, assignment, *, n_environments=None, normalization="rows"):
    """IRMv1 penalty of a fixed reference model under a (soft or hard) partition of its rows.

    Parameters
    ----------
    scale_gradients : Tensor of shape (n,)
        ``g_i``, the derivative of row ``i``'s loss with respect to a scale on its scores, at
        scale 1 (:func:`scale_gradients`).
    assignment : Tensor of shape (n, K) or LongTensor of shape (n,)
        Soft assignment ``q`` (non-negative rows summing to 1), or hard labels in ``0..K-1``.
    n_environments : int, default=None
        ``K`` for hard labels; None takes ``max(labels) + 1``. Ignored for a soft assignment.
    normalization : {"rows", "environment"}, default="rows"
        "rows": ``R_e = (1 / n) sum_i q_ie l_i`` (EIIL); "environment": ``R_e`` is the
        ``q``-weighted mean loss of the environment (an empty environment contributes 0).

    Returns
    -------
    Tensor
        Scalar ``sum_e (d R_e / d w)^2``, differentiable in a soft ``assignment``.

    Examples
    --------
    >>> import torch
    >>> g = torch.tensor([1.0, 1.0, -1.0, -1.0])
    >>> float(eiil_penalty(g, torch.tensor([0, 0, 1, 1])))        # (2/4)^2 + (-2/4)^2
    0.5
    >>> float(eiil_penalty(g, torch.tensor([0, 1, 0, 1])))        # every environment balanced
    0.0
    >>> float(eiil_penalty(g, torch.full((4, 2), 0.5)))           # the pooled mean, twice
    0.0
    """
    _check_normalization(normalization)
    g = torch.as_tensor(scale_gradients)
    if g.ndim != 1:
        raise ValueError(f"scale_gradients must be 1-D; got shape {tuple(g.shape)}.")
    q = torch.as_tensor(assignment, device=g.device)
    if not q.is_floating_point():
        if q.ndim != 1:
            raise ValueError(f"hard labels must be 1-D; got shape {tuple(q.shape)}.")
        k = int(q.max()) + 1 if n_environments is None else int(n_environments)
        q = torch.nn.functional.one_hot(q.long(), k).to(g.dtype if g.is_floating_point() else torch.float32)
    if q.ndim != 2 or q.shape[0] != g.shape[0]:
        raise ValueError(f"assignment must have shape (n={g.shape[0]}, K) or (n,); got {tuple(q.shape)}.")
    weighted = (q * g.unsqueeze(1)).sum(dim=0)                      # (K,) sum_i q_ie g_i
    if normalization == "rows":
        gradients = weighted / g.shape[0]
    else:
        gradients = weighted / q.sum(dim=0).clamp_min(_MASS_FLOOR)
    return gradients.square().sum()


def _soft_assignment(logits, n_environments):
    """``(n, K)`` soft assignment from ``(n, 1)`` logits (two environments) or ``(n, K)``."""
    if n_environments == 2:
        p = torch.sigmoid(logits[:, 0])
        return torch.stack([1.0 - p, p], dim=1)
    return torch.softmax(logits, dim=1)


def eiil_partition(scale_gradients, n_environments=2, *, steps=2000, learning_rate=0.01,
                   normalization="rows", init_std=0.01, generator=None):
    """Partition of the rows that maximises a fixed reference model's IRMv1 penalty (EIIL).

    Adam ascends :func:`eiil_penalty` over the logits of a soft assignment, all rows at once;
    the labels are the argmax of the final assignment. Adam works on ``n * P`` of the gradients
    divided by their root mean square, which has the same maximisers as ``P`` and keeps the steps
    of each logit of order ``learning_rate`` whatever the number of rows and the scale of ``g``.

    Parameters
    ----------
    scale_gradients : Tensor of shape (n,)
        ``g_i`` of every row (:func:`scale_gradients`): the derivative of the row's loss with
        respect to a scale on the reference model's scores, at scale 1.
    n_environments : int, default=2
        ``K``. Two environments use one logit per row (``q_i = sigmoid(z_i)``, as in EIIL); more
        use ``K`` logits and a softmax. With the default normalisation at most two of them are
        non-empty at the optimum (see the module docstring); one environment labels every row 0.
    steps : int, default=2000
        Adam steps (0 returns the argmax of the random initial logits).
    learning_rate : float, default=0.01
        Adam step size.
    normalization : {"rows", "environment"}, default="rows"
        See :func:`eiil_penalty`. "environment" is degenerate (it isolates extreme rows).
    init_std : float, default=0.01
        Standard deviation of the normal initial logits (a near-uniform start).
    generator : torch.Generator, default=None
        Source of the initial logits (drawn on the generator's device, then moved to that of
        ``scale_gradients``); None uses torch's default generator.

    Returns
    -------
    labels : LongTensor of shape (n,)
        Environment of every row, on the device of ``scale_gradients`` (lowest index on ties).
    info : dict
        ``"assignment"``: the final soft assignment, Tensor of shape (n, K);
        ``"penalty"``: :func:`eiil_penalty` of ``labels`` (float);
        ``"soft_penalty"``: that of the final soft assignment (float);
        ``"history"``: Tensor of shape (steps,), the soft penalty before every step;
        ``"sizes"``: rows per environment (list of int).

    Examples
    --------
    >>> import torch
    >>> g = torch.tensor([0.5, -0.2, 0.3, -0.6, 0.1, -0.1])
    >>> labels, info = eiil_partition(g, generator=torch.Generator().manual_seed(0))
    >>> bool((labels[g > 0] == labels[0]).all() and (labels[g < 0] != labels[0]).all())
    True
    >>> round(info["penalty"], 4)          # (0.9 / 6)^2 + (-0.9 / 6)^2
    0.045
    """
    _check_normalization(normalization)
    g = _check_gradients(scale_gradients)
    k = int(n_environments)
    if k < 1:
        raise ValueError(f"n_environments must be >= 1; got {n_environments!r}.")
    steps = int(steps)
    if steps < 0:
        raise ValueError(f"steps must be >= 0; got {steps}.")
    n, device = g.shape[0], g.device
    dtype = g.dtype
    if k == 1:
        labels = torch.zeros(n, dtype=torch.long, device=device)
        q = torch.ones(n, 1, dtype=dtype, device=device)
        value = float(eiil_penalty(g, q, normalization=normalization))
        return labels, {"assignment": q, "penalty": value, "soft_penalty": value,
                        "history": torch.empty(0, dtype=dtype), "sizes": [n]}

    rms = g.square().mean().sqrt()
    unit = g / rms if float(rms) > 0 else g                    # scale-free: same maximisers
    draw_device = generator.device if generator is not None else device
    start = torch.randn((n, 1 if k == 2 else k), generator=generator, device=draw_device,
                        dtype=dtype) * float(init_std)
    logits = start.to(device).requires_grad_(True)
    optimizer = make_adam([logits], float(learning_rate))
    history = torch.empty(steps, dtype=dtype, device=device)
    for step in range(steps):
        optimizer.zero_grad(set_to_none=True)
        objective = eiil_penalty(unit, _soft_assignment(logits, k), normalization=normalization)
        (-objective * n).backward()
        optimizer.step()
        history[step] = objective.detach()
    with torch.no_grad():
        q = _soft_assignment(logits, k)
        labels = q.argmax(dim=1)
        hard = float(eiil_penalty(g, labels, n_environments=k, normalization=normalization))
        soft = float(eiil_penalty(g, q, normalization=normalization))
    # The history was recorded on the rescaled gradients: back to the scale of g.
    history = history * (rms.square() if float(rms) > 0 else 1.0)
    return labels, {"assignment": q, "penalty": hard, "soft_penalty": soft,
                    "history": history.cpu(), "sizes": torch.bincount(labels, minlength=k).tolist()}


def scale_gradients(model, users, items, n_items=None, *, n_negatives=50, user_degree=None,
                    item_degree=None, loss_weights=(1.0, 1.0, 1.0, 1.0), shared_negatives=False,
                    mask=None, chunk_size=8192, generator=None):
    """Per-row IRMv1 scale gradients of a fixed UltraGCN-style model under its ranking loss.

    Every training row ``(u, i)`` is scored with ``n_negatives`` uniform negative items
    (:func:`~invrec.nn.sample_negatives`, :func:`~invrec.nn.pair_and_negative_scores`); its
    positive and negative scores are multiplied by a scale ``s_i = 1`` of its own and its loss
    is UltraGCN's degree-weighted BCE (:func:`~invrec.nn.ultragcn_loss` with
    ``reduction="none"``). One gradient call on the vector of scales gives every
    ``g_i = d loss_i / d s_i``. The model's parameters get no gradient; rows are processed in
    chunks of ``chunk_size`` to bound memory.

    Parameters
    ----------
    model : UltraGCNModel
        The reference model (for example a fitted :class:`~invrec.baselines.UltraGCNRecommender`'s
        ``module_``); any module with ``user_vectors``, ``item_vectors`` and ``n_items``.
    users, items : LongTensor of shape (n,)
        Encoded rows (the estimator's encoding, see :class:`~invrec.base.FitData`).
    n_items : int, default=None
        Catalog size negatives are drawn from; None uses ``model.n_items``.
    n_negatives : int, default=50
        Negatives per row. The negatives' term of ``g_i`` is a Monte Carlo estimate: more
        negatives make ``g`` less noisy.
    user_degree, item_degree : Tensor of shape (n_users,) / (n_items,), default=None
        Training degrees for the loss weights (:func:`~invrec.nn.degree_weights`); None counts
        them from ``users`` and ``items``.
    loss_weights : tuple of 4 floats, default=(1, 1, 1, 1)
        UltraGCN's ``w1..w4``.
    shared_negatives : bool, default=False
        False draws independent negatives for every row; True one set per chunk (cheaper, but
        the negatives' noise is then common to the rows of a chunk).
    mask : Tensor of shape (d,), default=None
        Feature mask passed to the model's ``item_vectors``.
    chunk_size : int, default=8192
        Rows per chunk.
    generator : torch.Generator, default=None
        Source of the negatives.

    Returns
    -------
    Tensor of shape (n,)
        ``g``, on the model's device, in its floating dtype.

    Examples
    --------
    >>> import torch
    >>> from invrec.nn import UltraGCNModel
    >>> model = UltraGCNModel(3, 5, id_dim=4, generator=torch.Generator().manual_seed(0))
    >>> g = scale_gradients(model, torch.tensor([0, 1, 2]), torch.tensor([4, 0, 1]),
    ...                     n_negatives=3, generator=torch.Generator().manual_seed(0))
    >>> g.shape
    torch.Size([3])
    """
    users = torch.as_tensor(users).long().reshape(-1)
    items = torch.as_tensor(items).long().reshape(-1)
    if users.shape != items.shape:
        raise ValueError(f"users and items must have the same length; got {users.numel()} and {items.numel()}.")
    n_items = int(model.n_items if n_items is None else n_items)
    chunk_size = int(chunk_size)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1; got {chunk_size}.")
    param = next(iter(model.parameters()))
    device, dtype = param.device, param.dtype
    users, items = users.to(device), items.to(device)
    if user_degree is None:
        user_degree = torch.bincount(users, minlength=int(model.n_users))
    if item_degree is None:
        item_degree = torch.bincount(items, minlength=n_items)
    beta_u, beta_i = degree_weights(torch.as_tensor(user_degree).to(device),
                                    torch.as_tensor(item_degree).to(device), dtype=dtype)
    w = tuple(float(v) for v in loss_weights)
    out = torch.empty(users.shape[0], dtype=dtype, device=device)
    for start in range(0, users.shape[0], chunk_size):
        u, i = users[start:start + chunk_size], items[start:start + chunk_size]
        negatives = sample_negatives(n_items, u.shape[0], n_negatives, shared=shared_negatives,
                                     generator=generator, device=device)
        with torch.no_grad():
            pos, neg = pair_and_negative_scores(model, u, i, negatives, mask=mask)
        scale = torch.ones(u.shape[0], dtype=dtype, device=device, requires_grad=True)
        loss = ultragcn_loss(scale * pos, scale.unsqueeze(1) * neg, beta_u[u], beta_i[i],
                             beta_i[negatives], w=w, reduction="none")
        (grad,) = torch.autograd.grad(loss.sum(), scale)
        out[start:start + u.shape[0]] = grad
    return out


def infer_environments_eiil(model, users, items, n_environments=2, *, n_negatives=50,
                            user_degree=None, item_degree=None, loss_weights=(1.0, 1.0, 1.0, 1.0),
                            mask=None, chunk_size=8192, steps=2000, learning_rate=0.01,
                            normalization="rows", generator=None):
    """EIIL environments of the rows ``(users, items)`` from a fixed reference model.

    :func:`scale_gradients` of ``model`` followed by :func:`eiil_partition`.

    Parameters
    ----------
    model : UltraGCNModel
        The reference (ERM) model, fixed.
    users, items : LongTensor of shape (n,)
        Encoded rows to partition.
    n_environments : int, default=2
        ``K``.
    n_negatives, user_degree, item_degree, loss_weights, mask, chunk_size
        See :func:`scale_gradients`.
    steps, learning_rate, normalization
        See :func:`eiil_partition`.
    generator : torch.Generator, default=None
        Source of the negatives and of the initial logits.

    Returns
    -------
    labels : LongTensor of shape (n,)
    info : dict
        :func:`eiil_partition`'s, plus ``"scale_gradients"`` (Tensor of shape (n,)).

    Examples
    --------
    >>> import torch
    >>> from invrec.nn import UltraGCNModel
    >>> model = UltraGCNModel(4, 6, id_dim=3, generator=torch.Generator().manual_seed(0))
    >>> labels, info = infer_environments_eiil(model, torch.tensor([0, 1, 2, 3]),
    ...                                        torch.tensor([5, 0, 1, 1]), steps=50,
    ...                                        generator=torch.Generator().manual_seed(0))
    >>> labels.shape, info["scale_gradients"].shape
    (torch.Size([4]), torch.Size([4]))
    """
    g = scale_gradients(model, users, items, n_negatives=n_negatives, user_degree=user_degree,
                        item_degree=item_degree, loss_weights=loss_weights, mask=mask,
                        chunk_size=chunk_size, generator=generator)
    labels, info = eiil_partition(g, n_environments, steps=steps, learning_rate=learning_rate,
                                  normalization=normalization, generator=generator)
    info["scale_gradients"] = g
    return labels, info
