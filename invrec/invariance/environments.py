"""Heterogeneous environment identification with K environment models trained as one batched model.

InvRL's procedure (Du et al., ACM MM 2022), shared by PaInvRL and EIOR:

1. assign every training interaction to one of ``K`` environments: uniformly at random (InvRL),
   from given labels, or by the *taste split* (:func:`taste_environments`): each interaction's
   agreement between its item's variant content and its user's average variant content, cut
   into ``K`` quantile bins, so that interactions the spurious attribute drove apart start apart;
2. train one UltraGCN-style model per environment on the interactions of that environment, fed
   the *variant* view of the content ``(1 - m) * x`` so that the models differ where the spurious
   signal differs;
3. reassign every interaction to the environment whose model scores it highest
   (:func:`reassign_environments`, InvRL's eq. 7), and repeat 2-3 until at most ``tol`` of the
   labels change or ``max_rounds`` is reached.

The ``K`` models are one module, :class:`EnvironmentModels`, whose parameters carry a leading
environment axis. A training batch mixes interactions of every environment; its rows are grouped by
environment into a padded ``(K, M)`` block (:func:`group_by_environment`) and scored by batched
matrix products, so one step trains every environment model at the cost of one step of a single
model over the same rows.
"""

from __future__ import annotations

import time

import torch
from torch import nn

from ..nn.losses import interaction_degree_weights, ultragcn_loss
from ..nn.optim import make_adam
from ..training import train_epochs
from .._moved import moved_names

__all__ = ["EnvironmentModels", "group_by_environment", "reassign_environments",
           "random_environments", "taste_environments", "infer_environments"]

#: Starts of :func:`infer_environments`.
INITS = ("random", "taste")


def group_by_environment(env, n_envs):
    """Padded ``(K, M)`` layout of batch positions grouped by environment.

    Parameters
    ----------
    env : LongTensor of shape (B,)
        Environment of each row, in ``0..n_envs-1``.
    n_envs : int
        ``K``.

    Returns
    -------
    index : LongTensor of shape (K, M)
        ``index[k, :n_k]`` are the positions of the rows of environment ``k`` (in batch order);
        padding holds 0. ``M`` is the largest group (at least 1).
    valid : BoolTensor of shape (K, M)
        True at real rows.

    Examples
    --------
    >>> import torch
    >>> index, valid = group_by_environment(torch.tensor([1, 0, 1, 1]), 3)
    >>> index.tolist(), valid.tolist()
    ([[1, 0, 0], [0, 2, 3], [0, 0, 0]], [[True, False, False], [True, True, True], [False, False, False]])
    """
    env = env.reshape(-1)
    counts = torch.bincount(env, minlength=n_envs)
    width = max(1, int(counts.max())) if env.numel() else 1
    order = torch.argsort(env, stable=True)
    sorted_env = env[order]
    starts = torch.cumsum(counts, 0) - counts
    slot = torch.arange(env.numel(), device=env.device) - starts[sorted_env]
    index = torch.zeros(n_envs, width, dtype=torch.long, device=env.device)
    valid = torch.zeros(n_envs, width, dtype=torch.bool, device=env.device)
    index[sorted_env, slot] = order
    valid[sorted_env, slot] = True
    return index, valid


def reassign_environments(scores):
    """InvRL's reassignment rule: each interaction goes to the environment scoring it highest.

    Parameters
    ----------
    scores : Tensor of shape (K, n)
        Score of every interaction under every environment model.

    Returns
    -------
    LongTensor of shape (n,)
        ``argmax_k scores[k, i]`` (the lowest index on ties).

    Examples
    --------
    >>> import torch
    >>> reassign_environments(torch.tensor([[0.1, 2.0, 0.5], [0.3, 1.0, 0.5]])).tolist()
    [1, 0, 0]
    """
    if scores.ndim != 2:
        raise ValueError(f"scores must have shape (K, n); got {tuple(scores.shape)}.")
    return scores.argmax(dim=0)


def random_environments(n, n_envs, *, generator=None, device=None):
    """Uniform random environment labels (InvRL's initial assignment)."""
    draw_device = generator.device if generator is not None else device
    out = torch.randint(0, int(n_envs), (int(n),), generator=generator, device=draw_device)
    return out if device is None else out.to(device)


def taste_environments(users, items, n_users, features, n_envs, *, feature_mask=None):
    """Starting environments from the variant view: the *taste split*.

    With ``v_i = m * x_i`` the item's content seen through ``feature_mask`` (the variant view
    ``1 - m``), centred on the mean of the training rows' items, and ``t_u`` the mean ``v_i``
    over the user's rows, each row gets ``a_ui = <t_u, v_i>`` minus the mean ``a`` of its user's
    rows: how much more than the user's other items this item carries what the user's items
    share. Exposure driven by a spurious attribute in opposite directions in different
    environments sends a user's rows of one environment to high ``a`` and of the other to low
    ``a``; the rows are cut into ``n_envs`` bins at the quantiles of ``a``.

    On the synthetic generator's ``disagree`` regime (``benchmarks/environment_probe.py``) this
    start alone recovers the true environments with an adjusted Rand index of .20-.27 through
    the true variant dimensions (K = 3; the Bayes oracle: .43-.47), where a random start and
    InvRL's rounds stay at 0.000.

    Parameters
    ----------
    users, items : LongTensor of shape (n,)
        Encoded training rows.
    n_users : int
    features : Tensor of shape (n_items, d)
        Prepared content (``d`` may be 0: every row then gets environment 0).
    n_envs : int
    feature_mask : Tensor of shape (d,), default=None
        Multiplier of the content (the variant view); None reads it whole.

    Returns
    -------
    LongTensor of shape (n,)
        Labels in ``0..n_envs-1``; bins hold about ``n / n_envs`` rows each (ties share a bin).

    Examples
    --------
    >>> import torch
    >>> users, items = torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 2, 3])
    >>> taste_environments(users, items, 2, torch.tensor([[2.0], [0.0], [-2.0], [0.0]]), 2).tolist()
    [1, 0, 1, 0]
    """
    n = users.shape[0]
    if features is None or features.shape[1] == 0 or n == 0 or n_envs == 1:
        return torch.zeros(n, dtype=torch.long, device=users.device)
    view = features if feature_mask is None else features * feature_mask
    view = view.double()
    view = view - view[items].mean(dim=0)
    degree = torch.bincount(users, minlength=n_users).clamp(min=1).double()
    taste = torch.zeros(n_users, view.shape[1], dtype=view.dtype, device=view.device)
    taste.index_add_(0, users, view[items]).div_(degree[:, None])
    agreement = (taste[users] * view[items]).sum(dim=1)
    user_mean = torch.zeros(n_users, dtype=view.dtype, device=view.device).index_add_(0, users, agreement) / degree
    agreement = agreement - user_mean[users]
    cuts = torch.quantile(agreement, torch.linspace(0, 1, n_envs + 1, dtype=view.dtype, device=view.device)[1:-1])
    return torch.bucketize(agreement, cuts).clamp_(max=n_envs - 1)


def _normal(shape, std, generator, device, dtype):
    draw_device = generator.device if generator is not None else device
    return (torch.randn(shape, generator=generator, device=draw_device, dtype=dtype) * std).to(device)


class EnvironmentModels(nn.Module):
    """``K`` UltraGCN-style scorers (see :class:`~invrec.nn.UltraGCNModel`) stacked on one axis.

    Model ``k`` scores a pair by ``U[k, u] . [V[k, i] ; W[k] (m * x_i) + b[k]]``. Every method
    takes indices shaped ``(K, M)``: row ``k`` is scored by model ``k``.

    Parameters
    ----------
    n_envs, n_users, n_items : int
    features : Tensor of shape (n_items, d) or None
        Prepared item content (stored as a buffer).
    id_dim, content_dim : int, default=64
    init_std : float, default=0.01
        Standard deviation of the normal initial values (each model gets its own draw).
    generator : torch.Generator, default=None

    Examples
    --------
    >>> import torch
    >>> models = EnvironmentModels(3, 5, 4, torch.rand(4, 6), id_dim=2, content_dim=2)
    >>> models(torch.zeros(3, 2, dtype=torch.long), torch.ones(3, 2, dtype=torch.long)).shape
    torch.Size([3, 2])
    >>> models.score_all(torch.tensor([0, 4]), torch.tensor([1, 3])).shape
    torch.Size([3, 2])
    """

    def __init__(self, n_envs, n_users, n_items, features=None, *, id_dim=64, content_dim=64,
                 init_std=0.01, generator=None):
        super().__init__()
        self.n_envs, self.n_users, self.n_items = int(n_envs), int(n_users), int(n_items)
        dtype = torch.get_default_dtype()
        if features is None:
            features = torch.zeros((n_items, 0), dtype=dtype)
        features = torch.as_tensor(features).to(dtype=dtype)
        device = features.device
        self.n_features = features.shape[1]
        self.id_dim = int(id_dim)
        self.content_dim = int(content_dim) if self.n_features > 0 else 0
        if self.id_dim + self.content_dim == 0:
            raise ValueError("EnvironmentModels needs id_dim > 0 or content.")
        self.register_buffer("features", features)
        K, D = self.n_envs, self.id_dim + self.content_dim
        self.user_embedding = nn.Parameter(_normal((K, self.n_users, D), init_std, generator, device, dtype))
        self.item_embedding = nn.Parameter(_normal((K, self.n_items, self.id_dim), init_std, generator, device, dtype))
        self.weight = nn.Parameter(_normal((K, self.content_dim, self.n_features), init_std, generator, device, dtype))
        self.bias = nn.Parameter(torch.zeros(K, self.content_dim, device=device, dtype=dtype))

    def _flat_rows(self, table, index):
        """``table[k, index[k, ...]]`` for every ``k``: one index_select on the flattened table."""
        K, n = table.shape[:2]
        offsets = torch.arange(K, device=index.device).view(K, *([1] * (index.ndim - 1))) * n
        flat = table.reshape(K * n, *table.shape[2:]).index_select(0, (index + offsets).reshape(-1))
        return flat.view(*index.shape, *table.shape[2:])

    def user_vectors(self, users):
        """``(K, M)`` user indices -> ``(K, M, D)`` vectors, row ``k`` from model ``k``."""
        return self._flat_rows(self.user_embedding, users)

    def item_vectors(self, items, feature_mask=None):
        """``(K, M)`` item indices -> ``(K, M, D)`` vectors ``[V_k ; W_k (m * x) + b_k]``."""
        ids = self._flat_rows(self.item_embedding, items)
        if self.content_dim == 0:
            return ids
        x = self.features.index_select(0, items.reshape(-1)).view(*items.shape, self.n_features)
        weight = self.weight if feature_mask is None else self.weight * feature_mask
        content = torch.bmm(x.reshape(self.n_envs, -1, self.n_features), weight.transpose(1, 2))
        content = content.view(*items.shape, self.content_dim) + self.bias.view(
            self.n_envs, *([1] * (items.ndim - 1)), self.content_dim)
        return torch.cat([ids, content], dim=-1)

    def forward(self, users, items, feature_mask=None):
        """Scores of ``(K, M)`` pairs, row ``k`` by model ``k``."""
        return (self.user_vectors(users) * self.item_vectors(items, feature_mask)).sum(-1)

    def score_all(self, users, items, feature_mask=None, item_vectors=None):
        """Scores of ``n`` pairs under every model: shape ``(K, n)``.

        ``item_vectors`` (the ``(K, n_items, D)`` result of :meth:`all_item_vectors`) saves
        recomputing the content projection of every pair when scoring many pairs.
        """
        expand = (self.n_envs, -1)
        users, items = users.unsqueeze(0).expand(*expand), items.unsqueeze(0).expand(*expand)
        if item_vectors is None:
            return self(users, items, feature_mask)
        return (self.user_vectors(users) * self._flat_rows(item_vectors, items)).sum(-1)

    def all_item_vectors(self, feature_mask=None):
        """Every model's vectors of the whole catalog: shape ``(K, n_items, D)``."""
        items = torch.arange(self.n_items, device=self.user_embedding.device)
        return self.item_vectors(items.unsqueeze(0).expand(self.n_envs, -1), feature_mask)

    def l2_parameter_groups(self, l2_embedding, l2_content, id_weight_items=2.0, *, scale=1.0):
        """Coupled weight-decay groups, as :meth:`~invrec.nn.UltraGCNModel.l2_parameter_groups`."""
        return [
            {"params": [self.user_embedding], "weight_decay": 2.0 * scale * l2_embedding},
            {"params": [self.item_embedding], "weight_decay": 2.0 * scale * l2_embedding * id_weight_items},
            {"params": [self.weight, self.bias], "weight_decay": 2.0 * scale * l2_content},
        ]

    def batch_loss(self, users, items, env, negatives, beta_u, beta_i, *, feature_mask=None,
                   w=(1.0, 1.0, 1.0, 1.0)):
        """UltraGCN loss of a mixed batch, each row scored by its environment's model.

        Parameters
        ----------
        users, items, env : LongTensor of shape (B,)
            Positive pairs and their environments.
        negatives : LongTensor of shape (K, N)
            Negatives of each environment (shared by that environment's rows).
        beta_u, beta_i : Tensor of shape (n_users,), (n_items,)
            Degree weights (:func:`~invrec.nn.degree_weights`).
        feature_mask : Tensor of shape (d,), default=None
        w : tuple of 4 floats

        Returns
        -------
        Tensor
            Scalar: the sum over rows divided by ``B``. Model ``k``'s gradient is that of its own
            rows' summed loss divided by ``B``, so the batched step equals ``K`` separate steps.
        """
        index, valid = group_by_environment(env, self.n_envs)
        u_pad, i_pad = users[index], items[index]
        u = self.user_vectors(u_pad)
        pos = (u * self.item_vectors(i_pad, feature_mask)).sum(-1)
        neg = torch.bmm(u, self.item_vectors(negatives, feature_mask).transpose(1, 2))
        n_neg = negatives.shape[1]
        beta_neg = beta_i[negatives].unsqueeze(1).expand(-1, index.shape[1], -1)
        per_row = ultragcn_loss(pos[valid], neg[valid], beta_u[u_pad[valid]], beta_i[i_pad[valid]],
                                beta_neg[valid].reshape(-1, n_neg), w=w, reduction="sum")
        return per_row / users.shape[0]


@torch.no_grad()
def _score_interactions(models, users, items, feature_mask, chunk=65536):
    vectors = models.all_item_vectors(feature_mask)     # the catalog once, not every pair
    out = [models.score_all(users[s:s + chunk], items[s:s + chunk], item_vectors=vectors)
           for s in range(0, users.shape[0], chunk)]
    return torch.cat(out, dim=1)


def infer_environments(users, items, n_users, n_items, features, *, n_envs=10, feature_mask=None,
                       labels=None, init="random", max_rounds=10, tol=0.01, epochs=20, batch_size=512,
                       l2_scale=None, learning_rate=1e-3, n_negatives=50, l2_embedding=1e-4, l2_content=1e-2,
                       item_l2_ratio=2.0, id_dim=64, content_dim=64, init_std=0.01,
                       loss_weights=(1.0, 1.0, 1.0, 1.0), user_degree=None, item_degree=None,
                       generator=None, device=None):
    """Heterogeneous environments of the training interactions (InvRL's frontend).

    Parameters
    ----------
    users, items : LongTensor of shape (n,)
        Encoded training interactions.
    n_users, n_items : int
    features : Tensor of shape (n_items, d) or None
        Prepared content.
    n_envs : int, default=10
        ``K`` (InvRL ``num_domains``: 10).
    feature_mask : Tensor of shape (d,), default=None
        Multiplier of the content fed to the environment models: pass ``1 - m`` (the variant view)
        to steer them to the spurious part; None feeds the whole content.
    labels : LongTensor of shape (n,), default=None
        Starting labels; None starts as ``init`` says.
    init : {"random", "taste"}, default="random"
        Start without ``labels``: uniformly random labels (InvRL) or the taste split of the
        content seen through ``feature_mask`` (:func:`taste_environments`).
    max_rounds : int, default=10
        Train-then-reassign rounds at most (InvRL: 10).
    tol : float, default=0.01
        Stop when at most this share of labels changed in a round (InvRL: 1%).
    epochs : int, default=20
        Epochs of the environment models per round (InvRL: 20). Models are warm-started from
        the previous round.
    batch_size, learning_rate, n_negatives, l2_embedding, l2_content, item_l2_ratio, id_dim,
    content_dim, init_std, loss_weights
        Training of the models (Adam; L2 as coupled weight decay scaled by ``l2_scale``).
    l2_scale : float, default=None
        Per-step factor of the L2 terms; None is ``1 / batch_size``
        (:func:`invrec.training.resolve_batch_size`).
    user_degree, item_degree : Tensor, default=None
        Training degrees for the loss weights; None counts them from ``users`` / ``items``.
    generator : torch.Generator, default=None
    device : torch.device, default=None

    Returns
    -------
    labels : LongTensor of shape (n,)
    models : EnvironmentModels
    history : list of dict
        One record per round: ``round``, ``changed`` (share of labels that moved),
        ``train_time``, ``assign_time`` (s) and ``sizes`` (interactions per environment).
    """
    device = users.device if device is None else device
    n = users.shape[0]
    beta_u, beta_i = interaction_degree_weights(users, items, n_users, n_items, user_degree, item_degree)
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}; got {init!r}.")
    if labels is None and init == "taste" and features is not None:
        labels = taste_environments(users, items, n_users, features.to(device), n_envs,
                                    feature_mask=None if feature_mask is None else feature_mask.to(device))
    if labels is None:
        labels = random_environments(n, n_envs, generator=generator, device=device)
    models = EnvironmentModels(n_envs, n_users, n_items, features, id_dim=id_dim,
                               content_dim=content_dim, init_std=init_std, generator=generator)
    optimizer = make_adam(models.l2_parameter_groups(l2_embedding, l2_content, item_l2_ratio,
                                                     scale=1.0 / batch_size if l2_scale is None else l2_scale),
                         learning_rate)
    w = tuple(float(v) for v in loss_weights)
    history = []
    for round_ in range(1, int(max_rounds) + 1):
        start = time.perf_counter()

        def batch_loss(rows, labels=labels):
            negatives = torch.randint(0, n_items, (n_envs, n_negatives), generator=generator,
                                      device=generator.device if generator is not None else device).to(device)
            return models.batch_loss(users[rows], items[rows], labels[rows], negatives, beta_u,
                                     beta_i, feature_mask=feature_mask, w=w)

        records = train_epochs(models, optimizer, batch_loss, n_rows=n, max_epochs=int(epochs),
                               batch_size=batch_size, generator=generator, device=device,
                               history=[], stage="environments", extra={"round": round_})
        trained = time.perf_counter()
        new = reassign_environments(_score_interactions(models, users, items, feature_mask))
        changed = float((new != labels).float().mean()) if n else 0.0
        labels = new
        history.append({"round": round_, "changed": changed, "train_time": trained - start,
                        "assign_time": time.perf_counter() - trained,
                        "train_loss": records[-1]["train_loss"] if records else float("nan"),
                        "sizes": torch.bincount(labels, minlength=n_envs).tolist()})
        if changed <= tol:
            break
    return labels, models, history


#: Former names of this module's parts.
__getattr__ = moved_names(__name__, {
    "EnvironmentScorers": "invrec.invariance.environments:EnvironmentModels",
})
