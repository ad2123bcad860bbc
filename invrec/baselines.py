"""Baselines: the ERM backbone every invariant method must beat, and popularity.

* :class:`PopularityRecommender` ranks items by their number of training interactions.
* :class:`UltraGCNRecommender` is the multimodal UltraGCN-style backbone of InvRL, PaInvRL and EIOR
  (user and item id embeddings, a linear content tower over the L2-normalised modalities,
  degree-weighted BCE with uniform negatives) trained by plain empirical risk minimisation.
"""

from __future__ import annotations

import numbers

import torch

from .base import BaseRecommender
from .nn import (
    UltraGCNModel,
    degree_weights,
    gather_item_vectors,
    item_item_loss,
    item_item_neighbors,
    make_adam,
    pair_and_negative_scores,
    sample_negatives,
    ultragcn_loss,
)
from .utils.params import Interval, RealTuple, StrOptions

__all__ = ["PopularityRecommender", "UltraGCNRecommender"]

#: Constraints of the UltraGCN-style backbone's parameters, shared by the models built on it.
BACKBONE_CONSTRAINTS = {
    "embedding_dim": [Interval(numbers.Integral, 1, None)],
    "content_dim": [Interval(numbers.Integral, 0, None)],
    "l2_embedding": [Interval(numbers.Real, 0, None), StrOptions({"auto"})],
    "l2_content": [Interval(numbers.Real, 0, None)],
    "item_l2_ratio": [Interval(numbers.Real, 0, None)],
    "init_std": [Interval(numbers.Real, 0, None)],
}

#: Constraints of its ranking loss (negatives, UltraGCN's w1..w4).
RANKING_LOSS_CONSTRAINTS = {
    "n_negatives": [Interval(numbers.Integral, 1, None)],
    "loss_weights": [RealTuple(4, minimum=0)],
}


class PopularityRecommender(BaseRecommender):
    """Rank items by how often they were interacted with in training.

    The same list for every user (minus what each has seen). Items without training interactions,
    including new items passed with ``item_features``, score 0.

    Parameters
    ----------
    handle_unknown : {"error", "ignore"}, default="error"
        Unknown users or items: raise a ``ValueError``, or skip them (NaN in ``predict``, no rows
        in ``recommend``).

    Attributes
    ----------
    popularity_ : ndarray of shape (n_items,)
        Training interactions (sum of ``y`` when given) per catalog item.
    user_ids_, item_ids_, unseen_items_, n_users_, n_items_, item_features_, history_
        See :class:`~invrec.base.BaseRecommender`.

    Examples
    --------
    >>> import pandas as pd
    >>> from invrec.baselines import PopularityRecommender
    >>> X = pd.DataFrame({"user": ["a", "a", "b", "c"], "item": ["x", "y", "x", "z"]})
    >>> PopularityRecommender().fit(X).recommend(["c"], n=2)
      user item  score  rank
    0    c    x    2.0     1
    1    c    y    1.0     2
    """

    def __init__(self, *, handle_unknown="error"):
        self.handle_unknown = handle_unknown

    def _fit_model(self, data):
        weights = data.targets if data.targets is not None else torch.ones_like(data.items, dtype=torch.float32)
        counts = torch.zeros(data.n_items, device=data.device).index_add_(0, data.items, weights)
        self.popularity_ = counts.cpu().numpy()

    def _score_users(self, users, catalog=None):
        return torch.as_tensor(self.popularity_).expand(len(users), -1)

    def _score_pairs(self, users, items):
        return torch.as_tensor(self.popularity_)[torch.as_tensor(items)]

    def _score_new_items(self, users, features):
        return torch.zeros(len(users), len(features))


class UltraGCNRecommender(BaseRecommender):
    """Multimodal UltraGCN-style recommender trained by plain ERM: the backbone of InvRL/PaInvRL/EIOR.

    A user vector ``[U_u ; C_u]`` scores an item vector ``[V_i ; W x_i + b]`` by dot product, where
    ``x_i`` is the item's content (each modality L2-normalised, missing ones filled with the
    training mean, concatenated) and ``W`` a linear content tower. The loss is UltraGCN's
    degree-weighted binary cross-entropy with uniform negatives, plus InvRL's whole-matrix L2 and,
    optionally, UltraGCN's item-item constraint. This model with all content dimensions kept is the
    empirical-risk-minimisation baseline every invariant method in invrec must beat.

    Parameters
    ----------
    embedding_dim : int, default=128
        Width of the id embeddings (InvRL: 64; 128 was better on TikTok in invrec's benchmarks,
        and 256 with ``l2_embedding=3e-2`` on the denser Last.fm).
    content_dim : int, default=64
        Output width of the content tower (InvRL ``feat_dim``: 64). Ignored without item features.
    max_epochs : int, default=200
        Upper bound on training epochs.
    batch_size : int or "auto", default="auto"
        Positive interactions per step (InvRL: 512). ``"auto"`` takes the largest power of two
        that gives an epoch at least 10 steps, between 256 and 4096 (4096 on TikTok and Last.fm,
        256 on the generator's 3,240 training rows; the fit keeps it as ``batch_size_``), and
        charges the L2 terms as at 4096, the batch the L2 defaults were tuned at
        (:func:`invrec.training.resolve_batch_size`). Large batches make shared negatives cheap
        (one score matrix per batch). With an int the L2 terms are charged once per step divided
        by it (see Notes), so the L2 weights must grow with the batch size: at InvRL's batch size
        of 512 use InvRL's ``l2_embedding=1e-4``, ``l2_content=1e-2``.
    learning_rate : float, default=1e-2
        Adam step size (InvRL: 1e-3 at batch size 512; 1e-2 was best at 4096 on TikTok, 3e-3 on
        Last.fm).
    n_negatives : int, default=50
        Uniform negatives per positive (InvRL ``neg_num``: 50).
    negative_sampling : {"shared", "per_positive"}, default="shared"
        "shared": each batch (or group, see ``negative_group_size``) draws ``n_negatives`` items
        once and every positive of it is contrasted with all of them (see Notes).
        "per_positive": independent draws for every positive, as InvRL does (slow: gathering and
        scattering ``batch_size * n_negatives`` item rows dominates a step). Negatives are uniform
        over the catalog and not filtered against the user's positives (InvRL's choice;
        collisions are rare and harmless).
    negative_group_size : int or None, default=None
        With shared sampling, draw a separate set of negatives for each run of this many
        consecutive positives of a batch (None: one set per batch). Smaller groups bring the
        negatives closer to independent draws at the cost of one score product per group.
    loss_weights : tuple of 4 floats, default=(1.0, 1.0, 1.0, 1.0)
        UltraGCN's ``w1..w4``: positive weight ``w1 + w2 beta_u beta_i``, negative weight
        ``w3 + w4 beta_u beta_j`` (InvRL: all 1).
    l2_embedding : float or "auto", default="auto"
        L2 weight on ``||U||^2 + item_l2_ratio ||V||^2`` (InvRL ``wd1``: 1e-4 at batch size 512).
        ``"auto"`` is 1e-2, selected on TikTok's validation split at 4096, grown in proportion
        to the training graph's mean degree over TikTok's
        (:func:`invrec.training.resolve_l2_embedding`; kept as ``l2_embedding_``): 1e-2 on
        TikTok, 3.5e-2 on the denser Last.fm (its validation grid: 3e-2), 1.7e-2 on the
        generator.
    l2_content : float, default=1.0
        L2 weight on the content tower (InvRL ``wd2``: 1e-2 at batch size 512; 1.0 selected on
        TikTok's validation split at 4096).
    item_l2_ratio : float, default=2.0
        Extra weight on the item id embeddings' L2 (InvRL ``wdi``: 2).
    item_item_weight : float, default=0.0
        Weight of UltraGCN's item-item constraint (0 = off, as in InvRL).
    n_item_neighbors : int, default=10
        Neighbours per item for the item-item constraint.
    init_std : float, default=0.01
        Standard deviation of the initial weights (InvRL: 0.01).
    early_stopping : bool, default=True
        Keep the epoch with the best validation NDCG@20 and stop after ``n_iter_no_change``
        epochs without improvement.
    validation_fraction : float, default=0.1
        Share of each user's rows of ``X`` held out for early stopping when ``validation_data`` is
        not given to ``fit`` (in expectation: stochastic rounding, so users with few rows are
        represented; on TikTok, median 2 rows per user, a rounded share held out only the 103
        heaviest users, and early stopping on them ended at N@20 .013 instead of .036).
    n_iter_no_change : int, default=30
        Patience of early stopping, in epochs (on TikTok the validation NDCG plateaus for 10-20
        epochs before it climbs again: a patience of 10 stopped at 0.037 test NDCG@20 where 30
        reached 0.043).
    warm_start : bool, default=False
        When True, ``fit`` on a fitted estimator continues training its model for up to
        ``max_epochs`` more epochs (its optimizer state and random stream too, within the session),
        instead of starting over; ``X`` must hold the same users and catalog. ``history_`` keeps
        the earlier records.
    device : {"auto", "cpu", "cuda"} or str, default="auto"
        Where to train and score; "auto" takes the GPU when there is one.
    random_state : int, RandomState or None, default=None
        Seed of initialisation, sampling and the validation carve; an int makes a CPU fit
        bit-for-bit reproducible.
    verbose : int, default=0
        1 shows a progress bar over epochs with the loss and validation metric.
    handle_unknown : {"error", "ignore"}, default="error"
        Unknown users or items at predict/recommend time: raise, or skip them. Items unknown at
        fit time can always be scored from content alone by passing their ``item_features``.

    Attributes
    ----------
    module_ : UltraGCNModel
        The trained torch model.
    history_ : list of dict
        Per epoch: ``train_loss``, ``fit_time`` (s) and, with validation, ``valid_ndcg@20``.
    batch_size_, l2_embedding_ : int, float
        The batch size and the id L2 weight the fit used (``"auto"`` resolved from the data).
    user_ids_, item_ids_, unseen_items_, n_users_, n_items_, item_features_, device_
        See :class:`~invrec.base.BaseRecommender`.

    Notes
    -----
    The objective of a batch is the mean per-positive loss plus the whole-matrix L2 terms divided
    by ``batch_size``: at InvRL's batch size this is InvRL's summed objective rescaled. The L2
    terms reach the optimiser as Adam's coupled ``weight_decay`` (the same update as adding them to
    the loss, without building the norms of the full tables at every step). Since they are
    charged once per step, an epoch applies them ``n_rows / batch_size`` times: larger batches
    need proportionally larger L2 weights, which is why the defaults differ from InvRL's.

    Negatives: with ``negative_sampling="shared"`` (the default) one set of ``n_negatives``
    uniform items is drawn per batch (or per group of ``negative_group_size`` positives) and
    every positive of the batch is contrasted with all of them. Each positive still sees
    ``n_negatives`` negatives, but the batch scores them with one matrix product and the
    gradient reaches ``n_negatives`` item rows instead of ``batch_size * n_negatives``: on
    TikTok an epoch at 50 negatives per positive takes about 0.3 s on one thread against about
    4 s for InvRL's per-positive draws, at equal or better NDCG (see ``benchmarks/README.md``).

    Examples
    --------
    >>> from invrec.baselines import UltraGCNRecommender
    >>> from invrec.datasets import make_multimodal_interactions
    >>> data = make_multimodal_interactions(n_users=60, n_items=50, random_state=0)
    >>> model = UltraGCNRecommender(max_epochs=5, random_state=0)
    >>> model = model.fit(data.interactions, item_features=data.item_features)
    >>> model.recommend([0], n=3).shape
    (3, 4)
    """

    _parameter_constraints = {
        **BACKBONE_CONSTRAINTS,
        **RANKING_LOSS_CONSTRAINTS,
        "negative_sampling": [StrOptions({"shared", "per_positive"})],
        "negative_group_size": [None, Interval(numbers.Integral, 1, None)],
        "item_item_weight": [Interval(numbers.Real, 0, None)],
        "n_item_neighbors": [Interval(numbers.Integral, 1, None)],
    }

    def __init__(self, *, embedding_dim=128, content_dim=64, max_epochs=200, batch_size="auto",
                 learning_rate=1e-2, n_negatives=50, negative_sampling="shared",
                 negative_group_size=None,
                 loss_weights=(1.0, 1.0, 1.0, 1.0), l2_embedding="auto", l2_content=1.0,
                 item_l2_ratio=2.0, item_item_weight=0.0, n_item_neighbors=10, init_std=0.01,
                 early_stopping=True, validation_fraction=0.1, n_iter_no_change=30, warm_start=False,
                 device="auto", random_state=None, verbose=0, handle_unknown="error"):
        self.embedding_dim = embedding_dim
        self.content_dim = content_dim
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.n_negatives = n_negatives
        self.negative_sampling = negative_sampling
        self.negative_group_size = negative_group_size
        self.loss_weights = loss_weights
        self.l2_embedding = l2_embedding
        self.l2_content = l2_content
        self.item_l2_ratio = item_l2_ratio
        self.item_item_weight = item_item_weight
        self.n_item_neighbors = n_item_neighbors
        self.init_std = init_std
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.warm_start = warm_start
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.handle_unknown = handle_unknown

    # ------------------------------------------------------------------ training
    def _fit_model(self, data):
        self.module_ = self._warm_module(data, lambda: UltraGCNModel(
            data.n_users, data.n_items, data.features, id_dim=self.embedding_dim,
            content_dim=self.content_dim, init_std=self.init_std, generator=data.generator,
        ))
        # The whole-matrix L2 of every step, divided by the batch size, as coupled weight decay.
        groups = self.module_.l2_parameter_groups(data.l2_embedding, self.l2_content,
                                                  self.item_l2_ratio, scale=data.l2_scale)
        optimizer = make_adam(groups, self.learning_rate)
        self._train_epochs(self.module_, optimizer, self._batch_objective(self.module_, data), data)

    def _batch_objective(self, module, data, mask=None):
        """The loss of a batch of training rows: the function the shared loop calls.

        The L2 terms are not in it: the optimizer applies them as weight decay (see
        :meth:`~invrec.nn.UltraGCNModel.l2_parameter_groups`). With ``y``, each positive's loss
        (and its item-item term) is multiplied by its weight (:meth:`_interaction_weights`).
        """
        beta_u, beta_i = degree_weights(data.user_degree, data.item_degree)
        weights = tuple(float(w) for w in self.loss_weights)
        row_weights = self._interaction_weights(data)           # y, mean 1 (None: unweighted)
        shared = self.negative_sampling == "shared"
        group_size = self.negative_group_size
        neighbors = None
        if self.item_item_weight > 0:
            nbr, nbr_w = item_item_neighbors(data.seen, self.n_item_neighbors)
            neighbors = (torch.as_tensor(nbr, device=data.device), torch.as_tensor(nbr_w, device=data.device))

        def objective(rows):
            users, items = data.users[rows], data.items[rows]
            negatives = sample_negatives(data.n_items, len(rows), self.n_negatives, shared=shared,
                                         group_size=group_size, generator=data.generator,
                                         device=data.device)
            sample_weight = None if row_weights is None else row_weights[rows]
            pos, neg = pair_and_negative_scores(module, users, items, negatives, mask=mask)
            loss = ultragcn_loss(pos, neg, beta_u[users], beta_i[items], beta_i[negatives], w=weights,
                                 sample_weight=sample_weight)
            if neighbors is not None:
                nbr_items, nbr_w = neighbors[0][items], neighbors[1][items]
                h = gather_item_vectors(module, nbr_items, mask)
                loss = loss + self.item_item_weight * item_item_loss(
                    module.user_vectors(users), h, nbr_w, sample_weight=sample_weight)
            return loss

        return objective
