"""PaInvRL: Pareto Invariant Representation Learning for multimedia recommendation.

Huang, Li, Li, Zheng and Liu, ACM MM 2023 (arXiv 2308.04706), built on InvRL (Du et al., ACM MM
2022). The estimator runs the method's three modules in the paper's order:

1. **heterogeneous environment identification** (:func:`invrec.nn.infer_environments`): ``K``
   environment models, trained as one batched model on the variant view of the content, and
   argmax reassignment of every training interaction -- or the user's own labels (a column of X);
2. **invariant mask generation** (:func:`invrec.nn.learn_invariant_mask`): a stochastic-gate mask
   over the content dimensions, learned from an ERM and an IRM objective weighted by the per-batch
   two-objective MGDA (Pareto) weight; steps 1-2 repeat ``n_outer_iter`` times with the penalty
   weight growing by ``penalty_growth``;
3. **convert module** (:class:`invrec.nn.ConvertScorer`): invariant and variant item
   representations from the mask and its complement, fused by attention, in the UltraGCN-style
   backbone, trained with early stopping on validation NDCG@20.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import torch

from .base import BaseRecommender
from .nn import (
    ConvertScorer,
    degree_weights,
    infer_environments,
    learn_invariant_mask,
    make_adam,
    pair_and_negative_scores,
    sample_negatives,
    ultragcn_loss,
)
from .nn.fusion import FUSIONS
from .nn.invariant_mask import PENALTIES
from .utils.validation import check_choice, check_float, check_int

__all__ = ["PaInvRLRecommender"]


class PaInvRLRecommender(BaseRecommender):
    """Pareto Invariant Representation Learning (PaInvRL) recommender; InvRL as a setting.

    Environments -> invariant mask (repeated ``n_outer_iter`` times) -> convert module and final
    training, as described in the module docstring. ``pareto="fixed"`` with ``erm_weight=0`` and
    ``fusion="invariant"`` reproduces InvRL (its mask loss is the IRM objective alone and its final
    model reads only the masked content).

    The backbone's training knobs (widths, batch, step size, L2, patience) default to those of
    :class:`~invrec.baselines.UltraGCNRecommender`, so the two compare out of the box; InvRL's
    own are ``embedding_dim=64, batch_size=512, learning_rate=1e-3, l2_embedding=1e-4,
    l2_content=1e-2``. The method's stages default to InvRL's official code (the only public
    code of this lineage) unless said otherwise: its full budget (5 outer iterations of up to
    10 x 20 environment epochs and 40 mask epochs), which takes hours on a large dataset on a
    CPU. Laptop-fast settings measured in ``benchmarks/invariance.py``: ``n_outer_iter=2,
    env_max_rounds=2, env_epochs=5, env_embedding_dim=32, mask_epochs=3, mask_learning_rate=1e-2`` fit TikTok
    (60k interactions) in 1.5-3 minutes on one CPU thread. For out-of-distribution robustness
    use ``fusion="invariant"``, ``mask_threshold="auto"`` and a down-weighted or more
    regularised item id part (``item_id_weight``, ``item_l2_ratio``): item id embeddings absorb
    exposure bias that no content mask removes; full ids and attention favour dense, unshifted
    data.

    Parameters
    ----------
    embedding_dim : int, default=128
        Width of the id embeddings (InvRL: 64; invrec's backbone default, as
        :class:`~invrec.baselines.UltraGCNRecommender`).
    content_dim : int, default=64
        Width of the content representations (InvRL ``feat_dim``: 64).
    max_epochs : int, default=200
        Upper bound on the final model's epochs (invrec's shared default).
    batch_size : int, default=4096
        Interactions per step in every stage (InvRL: 512; invrec's backbone default: the L2
        weights below are tuned for it, see :class:`~invrec.baselines.UltraGCNRecommender`).
    learning_rate : float, default=1e-2
        Adam step size of every model but the mask (InvRL: 1e-3 at batch size 512; invrec's
        backbone default).
    n_negatives : int, default=50
        Uniform negatives per positive (InvRL ``neg_num``: 50); shared by a batch in the final
        model, by an environment's rows in the environment and mask stages.
    loss_weights : tuple of 4 floats, default=(1.0, 1.0, 1.0, 1.0)
        UltraGCN's ``w1..w4`` (InvRL: all 1).
    l2_embedding : float, default=1e-2
        L2 weight on the user and item id embeddings (InvRL ``wd1``: 1e-4 at batch size 512;
        invrec's backbone default at 4096).
    l2_content : float, default=1.0
        L2 weight on the content projections and the attention (InvRL ``wd2``: 1e-2 at batch
        size 512; invrec's backbone default at 4096).
    item_l2_ratio : float, default=2.0
        Extra factor on the item id embeddings' L2 (InvRL ``wdi``: 2). With ``item_id_weight``
        the knob of how much exposure bias the id part may absorb.
    item_id_weight : float, default=1.0
        Multiplier of the item id embedding in the final item vector ``[alpha V_i ; z_i]``
        (1 is InvRL's model; 0 drops item ids: better out of distribution on sparse data, worse
        in distribution; invrec's knob, see the benchmarks).
    init_std : float, default=0.01
        Standard deviation of the initial weights (InvRL: 0.01).
    n_environments : int, default=10
        ``K``, environments inferred (InvRL ``num_domains``: 10). Ignored with
        ``environment_column``.
    environment_column : str, default=None
        Column of ``X`` (a DataFrame) holding the user's own environment labels; environment
        inference is then skipped. None infers them.
    env_embedding_dim : int, default=None
        Width of the id and of the content parts of the environment models; None uses
        ``embedding_dim`` and ``content_dim`` (InvRL). The ``K`` models update ``K`` times the
        parameters of one model at every step, so a smaller width makes a round cheaper (on
        TikTok, 32 instead of 128 + 128 cut an environment epoch from 4.9 s to about 1 s);
        invrec's knob.
    env_max_rounds : int, default=10
        Train-then-reassign rounds per outer iteration at most (InvRL: 10).
    env_tol : float, default=0.01
        Stop the rounds when at most this share of labels changed (InvRL: 1%).
    env_epochs : int, default=20
        Epochs of the environment models per round (InvRL: 20).
    n_outer_iter : int, default=5
        Outer iterations of {environments -> mask} (InvRL: 5).
    mask_epochs : int, default=40
        Epochs of mask learning per outer iteration (InvRL: 40).
    mask_sigma : float, default=0.01
        Gate noise of the stochastic-gate mask (InvRL: 0.01).
    mask_learning_rate : float, default=1e-3
        Adam step size of the gate means (InvRL: 1e-3).
    mask_l2 : float, default=0.1
        Weight of ``||mu||^2`` in the IRM objective (InvRL ``lam``: 0.1).
    penalty : {"invrl", "irmv1", "vrex"}, default="invrl"
        Invariance penalty of the IRM objective: InvRL's gradient variance (default, as InvRL
        and, by the paper's lineage, PaInvRL), IRMv1 or V-REx.
    penalty_weight : float, default=1.0
        Weight of the penalty in the first outer iteration (InvRL ``alpha``: 1.0).
    penalty_growth : float, default=1.05
        Factor applied to the penalty weight at every outer iteration (InvRL: 1.05).
    pareto : {"mgda", "fixed"}, default="mgda"
        "mgda": PaInvRL's Pareto weight of ERM vs IRM, the closed-form two-objective MGDA weight
        recomputed every batch; "fixed": the constant ``erm_weight`` (InvRL: 0).
    erm_weight : float in [0, 1], default=0.0
        Weight of the ERM objective with ``pareto="fixed"``.
    fusion : {"attention", "global", "invariant"}, default="attention"
        Convert module: per-item attention over invariant and variant representations
        (PaInvRL's reading), one global pair of weights, or the invariant part only (InvRL).
    mask_threshold : None, "auto" or float in [0, 1], default=None
        None keeps the learned soft mask (InvRL, PaInvRL). Otherwise the mask is binarised for
        the convert module (``invariant_mask_`` keeps the learned values): "auto" splits the
        mask values into two groups by the threshold that minimises the within-group variance
        (two-means / Otsu) and keeps the upper group; a float keeps dimension ``j`` when
        ``(m_j - min m) / (max m - min m) >= mask_threshold``. A soft mask only rescales a dimension, which the
        projection can undo; a hard one removes it. invrec's addition (see the benchmarks:
        the learned masks rank dimensions well but leave spurious gates far from 0).
    early_stopping : bool, default=True
        Keep the final model's epoch with the best validation NDCG@20; stop after
        ``n_iter_no_change`` epochs without improvement.
    validation_fraction : float, default=0.1
        Per-user share of ``X`` held out for early stopping when ``validation_data`` is not given.
    n_iter_no_change : int, default=30
        Patience of early stopping, in epochs (invrec's backbone default).
    device : {"auto", "cpu", "cuda"} or str, default="auto"
    random_state : int, RandomState or None, default=None
        Seed of every random draw; an int makes a CPU fit bit-for-bit reproducible.
    verbose : int, default=0
        1 shows a progress bar over the final model's epochs.
    handle_unknown : {"error", "ignore"}, default="error"
        Unknown users or items at predict/recommend time: raise, or skip them.

    Attributes
    ----------
    module_ : ConvertScorer
        The final torch model; ``module_.mask`` is the mask its convert module used (the
        learned one, binarised when ``mask_threshold`` is set).
    environments_ : DataFrame
        ``user``, ``item`` (raw ids) and ``environment`` of every training interaction (the
        validation share excluded), from the last outer iteration (or the given labels).
    invariant_mask_ : dict of str to ndarray
        Mask value in [0, 1] of every content dimension, per modality (empty without content).
    pareto_weights_ : ndarray
        ERM weight ``gamma`` of every mask-learning batch, in training order.
    attention_weights_ : ndarray of shape (n_items, 2)
        Weights of the (invariant, variant) representations of every catalog item.
    stage_times_ : dict
        Seconds spent in ``environments``, ``mask`` and ``final`` training.
    history_ : list of dict
        One record per environment round (``stage="environments"``), per mask epoch
        (``stage="mask"``) and per final epoch (``stage="final"``: ``train_loss``,
        ``valid_ndcg@20``); every record has ``fit_time`` (s).
    user_ids_, item_ids_, unseen_items_, n_users_, n_items_, item_features_, device_
        See :class:`~invrec.base.BaseRecommender`.

    Examples
    --------
    >>> from invrec.painvrl import PaInvRLRecommender
    >>> from invrec.datasets import make_multimodal_interactions
    >>> data = make_multimodal_interactions(n_users=60, n_items=50, random_state=0)
    >>> model = PaInvRLRecommender(n_environments=2, n_outer_iter=1, env_max_rounds=1,
    ...                            env_epochs=1, mask_epochs=1, max_epochs=3, random_state=0)
    >>> model = model.fit(data.interactions, item_features=data.item_features)
    >>> sorted(model.invariant_mask_), model.attention_weights_.shape
    (['acoustic', 'visual'], (50, 2))
    >>> model.recommend([0], n=3).shape
    (3, 4)
    """

    def __init__(self, *, embedding_dim=128, content_dim=64, max_epochs=200, batch_size=4096,
                 learning_rate=1e-2, n_negatives=50, loss_weights=(1.0, 1.0, 1.0, 1.0),
                 l2_embedding=1e-2, l2_content=1.0, item_l2_ratio=2.0, item_id_weight=1.0,
                 init_std=0.01, n_environments=10, environment_column=None,
                 env_embedding_dim=None, env_max_rounds=10,
                 env_tol=0.01, env_epochs=20, n_outer_iter=5, mask_epochs=40, mask_sigma=0.01,
                 mask_learning_rate=1e-3, mask_l2=0.1, penalty="invrl", penalty_weight=1.0,
                 penalty_growth=1.05, pareto="mgda", erm_weight=0.0, fusion="attention",
                 mask_threshold=None, early_stopping=True, validation_fraction=0.1, n_iter_no_change=30,
                 device="auto", random_state=None, verbose=0, handle_unknown="error"):
        self.embedding_dim = embedding_dim
        self.content_dim = content_dim
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.n_negatives = n_negatives
        self.loss_weights = loss_weights
        self.l2_embedding = l2_embedding
        self.l2_content = l2_content
        self.item_l2_ratio = item_l2_ratio
        self.item_id_weight = item_id_weight
        self.init_std = init_std
        self.n_environments = n_environments
        self.environment_column = environment_column
        self.env_embedding_dim = env_embedding_dim
        self.env_max_rounds = env_max_rounds
        self.env_tol = env_tol
        self.env_epochs = env_epochs
        self.n_outer_iter = n_outer_iter
        self.mask_epochs = mask_epochs
        self.mask_sigma = mask_sigma
        self.mask_learning_rate = mask_learning_rate
        self.mask_l2 = mask_l2
        self.penalty = penalty
        self.penalty_weight = penalty_weight
        self.penalty_growth = penalty_growth
        self.pareto = pareto
        self.erm_weight = erm_weight
        self.fusion = fusion
        self.mask_threshold = mask_threshold
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.handle_unknown = handle_unknown

    # ------------------------------------------------------------------ validation
    def _check_params(self):
        super()._check_params()
        for name in ("embedding_dim", "n_negatives", "n_environments", "env_max_rounds",
                     "n_outer_iter"):
            check_int(getattr(self, name), name, minimum=1)
        for name in ("content_dim", "env_epochs", "mask_epochs"):
            check_int(getattr(self, name), name, minimum=0)
        if len(tuple(self.loss_weights)) != 4:
            raise ValueError(f"loss_weights must be 4 floats (w1, w2, w3, w4); got {self.loss_weights!r}.")
        for name in ("l2_embedding", "l2_content", "item_l2_ratio", "item_id_weight", "init_std",
                     "mask_sigma", "mask_l2", "penalty_weight", "env_tol"):
            check_float(getattr(self, name), name, minimum=0.0)
        for name in ("mask_learning_rate", "penalty_growth"):
            check_float(getattr(self, name), name, minimum=0.0, strict=True)
        check_float(self.erm_weight, "erm_weight", minimum=0.0, maximum=1.0)
        check_choice(self.penalty, "penalty", PENALTIES)
        check_choice(self.pareto, "pareto", ("mgda", "fixed"))
        check_choice(self.fusion, "fusion", FUSIONS)
        if self.mask_threshold is not None and not (isinstance(self.mask_threshold, str)
                                                    and self.mask_threshold == "auto"):
            check_float(self.mask_threshold, "mask_threshold", minimum=0.0, maximum=1.0)
        if self.env_embedding_dim is not None:
            check_int(self.env_embedding_dim, "env_embedding_dim", minimum=1)
        if self.environment_column is not None and not isinstance(self.environment_column, str):
            raise ValueError(
                f"environment_column must be None (infer environments) or the name of a column of X; "
                f"got {self.environment_column!r}.")

    def _split_validation(self, table, validation_data):
        """Also keep the user's environment labels of the training rows (``environment_column``)."""
        train_pos, valid = super()._split_validation(table, validation_data)
        self._given_environments = None
        column = self.environment_column
        if column is not None:
            if column not in table.columns:
                raise ValueError(
                    f"environment_column={column!r} is not a column of X (it has "
                    f"{list(map(str, table.columns))[:10]}). Pass X as a DataFrame with that "
                    "column, or set environment_column=None to infer environments.")
            labels = table[column].to_numpy()[train_pos]
            if pd.isna(labels).any():
                raise ValueError(f"column {column!r} of X holds missing environment labels; give every row one.")
            self._given_environments = labels
        return train_pos, valid

    # ------------------------------------------------------------------ the method
    def _fit_model(self, data):
        given = getattr(self, "_given_environments", None)
        self._given_environments = None
        self.stage_times_ = {"environments": 0.0, "mask": 0.0, "final": 0.0}
        gammas, mask = [], None
        if given is not None:
            codes, uniques = pd.factorize(given, sort=True)
            env = torch.as_tensor(codes, device=data.device)
            env_names, n_envs = np.asarray(uniques), len(uniques)
        else:
            env, env_names, n_envs = None, None, self.n_environments
        if data.features is not None and data.features.shape[1] > 0:
            gate = mask_scorer = None
            for outer in range(self.n_outer_iter):
                if given is None:                                    # 1. environments
                    env = self._identify_environments(data, gate, outer)
                if self.mask_epochs > 0:                             # 2. invariant mask
                    gate, mask_scorer = self._generate_mask(data, env, n_envs, gate, mask_scorer,
                                                            outer, gammas)
            mask = gate().detach() if gate is not None else torch.full(
                (data.features.shape[1],), 0.5, device=data.device)
        elif given is None:        # id-only data: environments still describe the interactions
            env = self._identify_environments(data, None, 0)
        self._set_diagnostics(data, env, env_names, mask, gammas)
        if mask is not None:
            mask = binarize_mask(mask, self.mask_threshold)
        self._fit_final(data, mask)                                    # 3. convert module

    def _shared_training(self, data):
        return dict(batch_size=self.batch_size, learning_rate=self.learning_rate,
                    n_negatives=self.n_negatives, l2_embedding=self.l2_embedding,
                    l2_content=self.l2_content, item_l2_ratio=self.item_l2_ratio,
                    id_dim=self.embedding_dim, content_dim=self.content_dim, init_std=self.init_std,
                    loss_weights=tuple(self.loss_weights), user_degree=data.user_degree,
                    item_degree=data.item_degree, generator=data.generator)

    def _identify_environments(self, data, gate, outer):
        """Module 1: environment models on the variant view ``(1 - m) * x``; argmax reassignment."""
        start = time.perf_counter()
        variant = None if gate is None else (1.0 - gate()).detach()
        if variant is None and data.features is not None and data.features.shape[1] > 0:
            variant = torch.full((data.features.shape[1],), 0.5, device=data.device)
        training = self._shared_training(data)
        if self.env_embedding_dim is not None:
            training.update(id_dim=self.env_embedding_dim, content_dim=self.env_embedding_dim)
        labels, _, rounds = infer_environments(
            data.users, data.items, data.n_users, data.n_items, data.features,
            n_envs=self.n_environments, feature_mask=variant, max_rounds=self.env_max_rounds,
            tol=self.env_tol, epochs=self.env_epochs, **training)
        for record in rounds:
            self.history_.append({"stage": "environments", "outer_iter": outer + 1, **record,
                                  "fit_time": record["train_time"] + record["assign_time"]})
        self.stage_times_["environments"] += time.perf_counter() - start
        return labels

    def _generate_mask(self, data, env, n_envs, gate, scorer, outer, gammas):
        """Module 2: stochastic-gate mask from ERM and IRM, Pareto-weighted (or fixed)."""
        start = time.perf_counter()
        gate, scorer, batch_gammas, epochs = learn_invariant_mask(
            data.users, data.items, env, data.n_users, data.n_items, data.features, n_envs=n_envs,
            gate=gate, scorer=scorer, epochs=self.mask_epochs, pareto=self.pareto,
            erm_weight=self.erm_weight, penalty=self.penalty,
            penalty_weight=self.penalty_weight * self.penalty_growth ** outer,
            mask_l2=self.mask_l2, sigma=self.mask_sigma,
            mask_learning_rate=self.mask_learning_rate, **self._shared_training(data))
        gammas.extend(batch_gammas)
        for record in epochs:
            self.history_.append({"stage": "mask", "outer_iter": outer + 1, **record,
                                  "fit_time": record.pop("time")})
        self.stage_times_["mask"] += time.perf_counter() - start
        return gate, scorer

    def _fit_final(self, data, mask):
        """Module 3: convert module in the backbone, early-stopped on validation NDCG@20."""
        start = time.perf_counter()
        features = data.features if data.features is not None else torch.zeros(
            data.n_items, 0, device=data.device)
        if mask is None:
            mask = torch.ones(features.shape[1], device=data.device)
        self.module_ = ConvertScorer(
            data.n_users, data.n_items, features, mask, id_dim=self.embedding_dim,
            content_dim=self.content_dim, fusion=self.fusion, item_id_weight=self.item_id_weight,
            init_std=self.init_std, generator=data.generator)
        groups = self.module_.l2_parameter_groups(self.l2_embedding, self.l2_content,
                                                  self.item_l2_ratio, scale=1.0 / self.batch_size)
        optimizer = make_adam(groups, self.learning_rate)
        first = len(self.history_)
        self._train_epochs(self.module_, optimizer, self._final_objective(data), data)
        for record in self.history_[first:]:
            record["stage"] = "final"
        with torch.no_grad():
            self.attention_weights_ = self.module_.attention_weights().cpu().numpy()
        self.stage_times_["final"] = time.perf_counter() - start

    def _final_objective(self, data):
        beta_u, beta_i = degree_weights(data.user_degree, data.item_degree)
        weights = tuple(float(w) for w in self.loss_weights)
        module = self.module_

        def objective(rows):
            users, items = data.users[rows], data.items[rows]
            negatives = sample_negatives(data.n_items, len(rows), self.n_negatives,
                                         generator=data.generator, device=data.device)
            pos, neg = pair_and_negative_scores(module, users, items, negatives)
            return ultragcn_loss(pos, neg, beta_u[users], beta_i[items], beta_i[negatives], w=weights)

        return objective

    def _set_diagnostics(self, data, env, env_names, mask, gammas):
        users = data.users.cpu().numpy()
        items = data.items.cpu().numpy()
        labels = env.cpu().numpy() if env is not None else np.zeros(len(users), dtype=np.int64)
        if env_names is not None:
            labels = env_names[labels]
        self.environments_ = pd.DataFrame({"user": self.user_ids_[users], "item": self.item_ids_[items],
                                           "environment": labels})
        self.invariant_mask_ = {}
        if mask is not None:
            values = mask.cpu().numpy().astype(np.float64)
            for name, columns in data.feature_slices.items():
                self.invariant_mask_[name] = values[columns]
        self.pareto_weights_ = np.asarray(gammas, dtype=np.float64)

    # ------------------------------------------------------------------ scoring
    def _score_users(self, users):
        return self.module_.score_users(torch.as_tensor(users, device=self._inference_device()))

    def _score_pairs(self, users, items):
        device = self._inference_device()
        return self.module_(torch.as_tensor(users, device=device), torch.as_tensor(items, device=device))

    def _score_new_items(self, users, features):
        module = self.module_
        u = module.user_vectors(torch.as_tensor(users, device=self._inference_device()))
        return u[:, module.id_dim:] @ module.content_vectors(features.to(u.device)).T


def binarize_mask(mask, threshold):
    """Hard 0/1 mask from a soft one (None: unchanged).

    ``threshold="auto"`` keeps the upper of the two groups that minimise the within-group sum of
    squares of the mask values (a two-means split, Otsu's rule); a float ``t`` keeps
    ``(m - min) / (max - min) >= t``. A constant mask keeps every dimension.

    Examples
    --------
    >>> import torch
    >>> binarize_mask(torch.tensor([0.6, 0.9, 0.7, 1.0]), 0.5).tolist()
    [0.0, 1.0, 0.0, 1.0]
    >>> binarize_mask(torch.tensor([0.80, 0.99, 0.85, 1.0, 0.97]), "auto").tolist()
    [0.0, 1.0, 0.0, 1.0, 1.0]
    """
    if threshold is None:
        return mask
    span = mask.max() - mask.min()
    if float(span) <= 0:
        return torch.ones_like(mask)
    if isinstance(threshold, str):       # "auto": best split of the sorted values
        values = mask.detach().double().sort().values
        n = values.numel()
        sizes = torch.arange(1, n, dtype=torch.float64, device=values.device)
        csum, csq = values.cumsum(0)[:-1], values.square().cumsum(0)[:-1]
        total, total_sq = values.sum(), values.square().sum()
        lower = csq - csum.square() / sizes
        upper = (total_sq - csq) - (total - csum).square() / (n - sizes)
        split = int(torch.argmin(lower + upper))
        cut = (values[split] + values[split + 1]) / 2
        return (mask.double() > cut).to(mask.dtype)
    return ((mask - mask.min()) / span >= threshold).to(mask.dtype)

