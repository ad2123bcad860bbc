"""MILK: multimodality invariant learning for new-item recommendation (Bai et al., SIGIR 2024).

:class:`MILKRecommender` reads like the method:

1. **Content-only items.** One linear extractor per modality maps an item's features to
   ``c^m``; there is no item id embedding, so a new item needs only its features. Users are free
   vectors; a score is a dot product (:class:`~invrec.multimodal.MultimodalContentModel`).
2. **Cyclic-mixup mixtures** (the paper's "environments"; in invrec an environment is a partition
   of the interactions). Every batch draws ``M + 1`` modality weightings: uniform, one
   ``Dirichlet(alpha)`` draw and its ``M - 1`` cyclic shifts
   (:func:`~invrec.multimodal.sample_cyclic_mixtures`). Each mixture fuses the modality
   representations with its weights and gives a BPR risk.
3. **Invariance.** The loss adds ``invariance_weight`` times the (unbiased) variance of the
   mixture risks to their sum, so the ranking may not depend on how the modalities are
   mixed, in particular on one of them going missing. invrec's default,
   ``mixtures="missing"``, uses instead one mixture per modality in which a random share
   of the batch's items has that modality replaced by its fill (the test condition of FTMT);
   ``mixtures="cyclic"`` is the paper's.
4. **Cross-modality alignment.** ``alignment_weight`` times the mean squared distance between
   the modality representations of the batch's positive items, over every pair of modalities
   both available (:func:`~invrec.multimodal.cross_modality_alignment`).
5. **Missing modalities.** A missing modality is a NaN row of ``ItemFeatures``. It is filled, at
   fit and at inference, with a prediction from the item's available modalities (the invrec
   default: :class:`~invrec.multimodal.imputation.CrossModalImputer`, fitted on the training
   items), or the training mean of that modality (the paper's rule), or zeros; it is left out of
   the alignment term, and inference fuses the modalities uniformly (with
   ``availability_aware=True`` a filled modality gets a learned reliability and fill token).
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np
import torch
from torch.nn import functional as F

from .base import SCORE_K, BaseRecommender, reject_renamed
from .metrics import ndcg_at_k
from .multimodal import (CrossModalImputer, MultimodalContentModel, cross_modality_alignment,
                         missing_modality_scores, sample_cyclic_mixtures, sample_missing_masks)
from .nn import make_adam, sample_negatives
from .utils.ranking import chunked_top_k
from .utils.params import Interval, StrOptions

__all__ = ["MILKRecommender"]


class MILKRecommender(BaseRecommender):
    """New-item recommender robust to missing modalities: MILK (SIGIR 2024).

    Items are represented from their content alone (one linear extractor per modality, no id
    embedding), so items without any interaction, and items unknown at fit time, are ranked from
    their features. Training minimises, per batch of (user, positive, negative) triples::

        sum_e R_e + invariance_weight * Var_e(R_e) + alignment_weight * L_align + l2_embedding * R

    where ``R_e`` is the BPR risk under mixture ``e`` (uniform, a Dirichlet draw and its
    cyclic shifts, resampled every batch), ``L_align`` the cross-modality alignment of the
    positive items and ``R`` the mean squared norm of the batch's user and uniformly fused item
    vectors. Missing modalities (NaN rows) are filled (by default imputed from the item's other
    modalities) and never aligned.

    Parameters
    ----------
    embedding_dim : int, default=64
        Width of user vectors and modality representations (MILK: 64).
    max_epochs : int, default=1000
        Upper bound on training epochs (MILK: 1000, with early stopping).
    batch_size : int, default=2048
        Positive interactions per step (MILK: 2048).
    learning_rate : float, default=1e-3
        Adam step size (MILK: 1e-3, no weight decay).
    n_negatives : int, default=1
        Uniform negatives per positive, BPR averaged over them (MILK: 1).
    negative_pool : {"warm", "all"}, default="warm"
        Items negatives are drawn from: only items with training interactions, or the whole
        catalog, items without training interactions included (MILK's code: the new items passed
        in ``item_features`` then take part in training as negatives, so test-time content is
        read during training). Negatives are not filtered against the user's positives.
    l2_embedding : float, default=1e-4
        Weight of the mean squared norm of the batch's user and fused item vectors (MILK's
        ``reg_coeff``: 1e-4).
    alignment_weight : float, default=0.05
        Weight of the cross-modality alignment (MILK: 0.05 on Amazon, 0.5 on TikTok). 0 removes
        it (the "w/o CMAM" ablation).
    invariance_weight : float, default=5.0
        Weight of the variance of the mixture risks (MILK: 50 on Clothing and TikTok, 1000 on
        Baby; 50 costs a sixth of the full-feature accuracy on Last.fm new items).
    dirichlet_alpha : float, default=0.1
        Concentration of the Dirichlet draw (MILK's code: 0.1); smaller gives more extreme
        mixtures.
    mixtures : {"missing", "cyclic", "cyclic+missing", "none"}, default="missing"
        "cyclic": MILK's ``M + 1`` cyclic-mixup mixtures; "missing": the uniform mixture
        and ``M`` missing-modality mixtures, where mixture ``m`` replaces modality ``m``
        of a random share ``missing_rate`` of the batch's items by its fill, the test condition
        of FTMT (an invrec extension; :func:`~invrec.multimodal.sample_missing_masks`);
        "cyclic+missing": both (``2M + 1`` mixtures); "none": the uniform fusion only, i.e.
        plain BPR without the invariance term (the "w/o CEIM" ablation). With a single modality
        there is only the uniform mixture either way.
    missing_rate : float, default=0.25
        Share of the batch's items losing the modality of a missing-modality mixture; used by
        "missing" and "cyclic+missing" only. The default is FTMT's share on two modalities: half
        of the test new items lose one of the two, so a quarter lose a given one.
    missing_fill : {"impute", "mean", "zero"}, default="impute"
        Value of a missing modality: "impute", a ridge prediction from the item's available
        modalities, one regression per pair of modalities fitted on the training items
        (:class:`~invrec.multimodal.imputation.CrossModalImputer`; an invrec extension; the
        missing-modality mixtures then replace a lost modality by its imputation too); the mean
        of the L2-normalised rows of that modality over the training items (the MILK inference
        rule); or zeros.
    availability_aware : bool, default=False
        Let the item representation know which modalities the item has: a missing modality
        (filled as ``missing_fill`` says) is represented by ``rho_m G_m(fill) + t_m`` with a
        learned reliability ``rho_m`` (initially 1) and fill token ``t_m`` (initially 0) per
        modality, at training (items lacking a modality, and the simulated losses of the
        missing-modality mixtures) and for items passed after fit, whose availability travels
        with their content (:class:`~invrec.multimodal.MultimodalContentModel`,
        ``availability_columns``). An invrec extension; off by default (``benchmarks/README.md``,
        "MILK at its defaults").
    init_std : float, default=0.1
        Standard deviation of the initial user vectors (MILK: 0.1).
    validation_candidates : {"all", "unseen"}, default="all"
        Items ranked for the validation metric of early stopping: the whole catalog, or only the
        items without training interactions (the new-item protocol: pass the validation new
        items' interactions as ``validation_data`` and their features in ``item_features``).
    early_stopping : bool, default=True
        Keep the epoch with the best validation NDCG@20 and stop after ``n_iter_no_change``
        epochs without improvement.
    validation_fraction : float, default=0.1
        Share of each user's rows of ``X`` held out for early stopping when ``validation_data`` is
        not given (in expectation: stochastic rounding, so users with few rows are represented).
    n_iter_no_change : int, default=30
        Patience of early stopping, in epochs (MILK's code: 3 evaluations 10 epochs apart).
    warm_start : bool, default=False
        When True, ``fit`` on a fitted estimator continues training its model for up to
        ``max_epochs`` more epochs (its optimizer state and random stream too, within the session),
        instead of starting over; ``X`` must hold the same users and catalog. ``history_`` keeps
        the earlier records.
    device : {"auto", "cpu", "cuda"} or str, default="auto"
        Where to train and score.
    random_state : int, RandomState or None, default=None
        Seed of initialisation, negatives, mixtures and the validation carve.
    verbose : int, default=0
        1 shows a progress bar over epochs.
    handle_unknown : {"error", "ignore"}, default="error"
        Unknown users or items at predict/recommend time: raise, or skip them. Items unknown at
        fit time are scored from their content when their ``item_features`` are passed.

    Attributes
    ----------
    module_ : MultimodalContentModel
        The trained torch model.
    modalities_ : tuple of str
        Modality order of the extractors and of the mixture weights.
    imputer_ : CrossModalImputer or None
        The fitted imputation of ``missing_fill="impute"`` (its ``alphas_`` are the penalties
        chosen per pair of modalities); None otherwise.
    mixture_risks_ : ndarray of shape (n_epochs, n_mixtures)
        Mean BPR risk of each mixture per epoch (column 0: the uniform mixture; then,
        with cyclic mixtures, M columns for the Dirichlet draw and its shifts, exchangeable;
        then, with missing-modality mixtures, one column per lost modality, in
        ``modalities_`` order).
    history_ : list of dict
        Per epoch: ``train_loss``, ``fit_time`` (s), ``mixture_risks`` (list),
        ``risk_variance``, ``alignment`` and, with validation, ``valid_ndcg@20``.
    user_ids_, item_ids_, unseen_items_, n_users_, n_items_, item_features_, device_
        See :class:`~invrec.base.BaseRecommender`.

    Notes
    -----
    Without ``item_features`` the model falls back to free item id vectors as its only
    "modality": BPR matrix factorisation, which cannot score new items.

    The defaults are the setting measured best for new items with missing modalities, not the
    paper's (``mixtures="cyclic", invariance_weight=50, missing_fill="mean",
    negative_pool="all"``): on Last.fm new items, three splits, FTMT NDCG@20 .4276 against
    .4251 for the ablation without alignment and mixtures (same imputation), .3012 for
    UltraGCN's content tower and .1087 for feature-kNN, with the smallest drop from full
    features (``benchmarks/README.md``, "MILK at its defaults"). The paper's negative pool also
    trains on the new items' features, which are test data.

    References
    ----------
    H. Bai, L. Wu, M. Hou, M. Cai, Z. He, Y. Zhou, R. Hong, M. Wang. Multimodality Invariant
    Learning for Multimedia-Based New Item Recommendation. SIGIR 2024, pp. 677-686.

    Examples
    --------
    >>> from invrec.milk import MILKRecommender
    >>> from invrec.datasets import make_multimodal_interactions
    >>> data = make_multimodal_interactions(n_users=60, n_items=50, random_state=0)
    >>> X = data.interactions[data.interactions["item"] < 40]        # items 40-49 are new
    >>> model = MILKRecommender(max_epochs=5, early_stopping=False, random_state=0)
    >>> model = model.fit(X, item_features=data.item_features.reindex(range(40)))

    New items are ranked after fitting from their features alone, here with half of them
    missing one modality (FTMT), without refitting:

    >>> ftmt = data.item_features.with_missing(0.5, items=range(40, 50), random_state=0)
    >>> recs = model.recommend([0], n=3, items=range(40, 50), item_features=ftmt)
    >>> recs.shape, bool(recs["item"].between(40, 49).all())
    ((3, 4), True)
    """

    _parameter_constraints = {
        "embedding_dim": [Interval(numbers.Integral, 1, None)],
        "n_negatives": [Interval(numbers.Integral, 1, None)],
        "negative_pool": [StrOptions({"all", "warm"})],
        "l2_embedding": [Interval(numbers.Real, 0, None)],
        "alignment_weight": [Interval(numbers.Real, 0, None)],
        "invariance_weight": [Interval(numbers.Real, 0, None)],
        "dirichlet_alpha": [Interval(numbers.Real, 0, None, closed="neither")],
        "mixtures": [StrOptions({"cyclic", "missing", "cyclic+missing", "none"})],
        "missing_rate": [Interval(numbers.Real, 0, 1)],
        "missing_fill": [StrOptions({"mean", "zero", "impute"})],
        "availability_aware": ["boolean"],
        "init_std": [Interval(numbers.Real, 0, None)],
        "validation_candidates": [StrOptions({"all", "unseen"})],
    }
    _renamed_parameters = {
        "environments": "use mixtures=... (the modality mixtures MILK trains under; an "
                        "environment in invrec is a partition of the interactions)",
    }

    @reject_renamed
    def __init__(self, *, embedding_dim=64, max_epochs=1000, batch_size=2048, learning_rate=1e-3,
                 n_negatives=1, negative_pool="warm", l2_embedding=1e-4, alignment_weight=0.05,
                 invariance_weight=5.0, dirichlet_alpha=0.1, mixtures="missing",
                 missing_rate=0.25, missing_fill="impute", availability_aware=False, init_std=0.1,
                 validation_candidates="all",
                 early_stopping=True, validation_fraction=0.1, n_iter_no_change=30, warm_start=False,
                 device="auto", random_state=None, verbose=0, handle_unknown="error"):
        self.embedding_dim = embedding_dim
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.n_negatives = n_negatives
        self.negative_pool = negative_pool
        self.l2_embedding = l2_embedding
        self.alignment_weight = alignment_weight
        self.invariance_weight = invariance_weight
        self.dirichlet_alpha = dirichlet_alpha
        self.mixtures = mixtures
        self.missing_rate = missing_rate
        self.missing_fill = missing_fill
        self.availability_aware = availability_aware
        self.init_std = init_std
        self.validation_candidates = validation_candidates
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.warm_start = warm_start
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.handle_unknown = handle_unknown

    # ------------------------------------------------------------------ content preparation
    @property
    def environment_risks_(self):
        """Former name of ``mixture_risks_`` (deprecated)."""
        warnings.warn("MILKRecommender.environment_risks_ is now mixture_risks_.", FutureWarning,
                      stacklevel=2)
        return self.mixture_risks_

    def _fill(self, normalised, reference_items):
        """Missing rows: ``missing_fill``'s vectors, or the cross-modal imputation of each item."""
        if reference_items is not None or not hasattr(self, "_fill_values"):
            self.imputer_ = None
            if self.missing_fill == "impute":
                self.imputer_ = CrossModalImputer().fit(normalised, reference_items=reference_items)
                self._fill_values = self.imputer_.means_          # its fill when nothing predicts
            else:
                self._fill_values = normalised.fill_values(self.missing_fill, reference_items=reference_items)
        imputer = getattr(self, "imputer_", None)              # absent in models pickled before it
        if imputer is not None:
            return imputer.transform(normalised)
        return normalised.fill_missing(values=self._fill_values)

    def _availability_columns(self):
        """Whether the content carries availability indicators (``availability_aware``)."""
        return bool(getattr(self, "availability_aware", False))   # absent in older pickles

    def _content(self, features, *, reference_items=None, device):
        """The base's content; with ``availability_aware``, plus ``M`` 0/1 availability columns.

        The columns travel with the content of items passed after fit too, so the model knows
        which modalities a new item has (:class:`~invrec.multimodal.MultimodalContentModel`).
        """
        content, slices, availability = super()._content(features, reference_items=reference_items,
                                                         device=device)
        if self._availability_columns():
            content = torch.cat([content, availability.to(device=content.device, dtype=content.dtype)], 1)
        return content, slices, availability

    # ------------------------------------------------------------------ training
    def _fit_model(self, data):
        if data.features is not None:
            self.modalities_ = tuple(data.feature_slices)
            slices = list(data.feature_slices.values())
        else:
            self.modalities_ = ()
            slices = None
            self.imputer_ = None
        self.module_ = self._warm_module(data, lambda: MultimodalContentModel(
            data.n_users, data.features, slices, dim=self.embedding_dim, init_std=self.init_std,
            n_items=data.n_items, generator=data.generator,
            availability_columns=self._availability_columns()))
        optimizer = make_adam(self.module_.parameters(), self.learning_rate)
        self._train_epochs(self.module_, optimizer, self._batch_objective(self.module_, data), data)
        risks = [record["mixture_risks"] for record in self.history_]
        n_env = len(risks[0]) if risks else 0
        self.mixture_risks_ = np.array(risks, dtype=float).reshape(-1, n_env)

    def _batch_objective(self, module, data):
        """The loss of a batch of training rows and its terms (logged per epoch by the loop).

        With ``y``, each positive's BPR terms in every mixture's risk are multiplied by its weight
        (:meth:`~invrec.base.BaseRecommender._interaction_weights`); the alignment and L2 terms
        are not weighted.
        """
        device, generator = data.device, data.generator
        n_modalities = module.n_modalities
        cyclic = self.mixtures in ("cyclic", "cyclic+missing") and n_modalities >= 2
        missing = (self.mixtures in ("missing", "cyclic+missing") and n_modalities >= 2
                   and module.has_content)
        fill_x = None
        imputer = getattr(self, "imputer_", None)
        per_item_fill = missing and imputer is not None
        if per_item_fill:
            # Row i, block m: what item i's modality m is imputed to when it is lost.
            fill_x, _ = imputer.predict(self.item_features_.normalize()).concat()
            fill_x = torch.as_tensor(fill_x, dtype=data.features.dtype, device=device)  # (n_items, D)
        elif missing:
            fill_x = torch.cat([torch.as_tensor(self._fill_values[name], dtype=data.features.dtype,
                                                device=device).reshape(-1)
                                for name in self.modalities_]).unsqueeze(0)        # (1, D)
        align = self.alignment_weight > 0 and module.has_content and n_modalities >= 2
        availability = data.availability
        pool = None
        if self.negative_pool == "warm":
            pool = torch.nonzero(data.item_degree > 0).squeeze(1)
        n_pool = data.n_items if pool is None else len(pool)
        uniform = torch.full((1, n_modalities), 1.0 / n_modalities, device=device)
        n_env = 1 + (n_modalities if cyclic else 0) + (n_modalities if missing else 0)
        row_weights = self._interaction_weights(data)           # y, mean 1 (None: unweighted)

        def objective(rows):
            users, pos = data.users[rows], data.items[rows]
            n_pos = len(rows)
            neg = sample_negatives(n_pool, n_pos, self.n_negatives, shared=False,
                                   generator=generator, device=device)
            if pool is not None:
                neg = pool[neg]
            distinct, vectors, where = module.batch_modality_vectors(torch.cat([pos, neg.reshape(-1)]))
            u = module.user_vectors(users)                                      # (B, d)
            pos_vec = vectors.index_select(0, where[:n_pos])                      # (B, M, d)
            neg_vec = vectors.index_select(0, where[n_pos:]).view(n_pos, self.n_negatives, n_modalities, -1)
            pos_mod = torch.einsum("bd,bmd->bm", u, pos_vec)                      # per-modality scores
            neg_mod = torch.einsum("bd,bnmd->bnm", u, neg_vec)
            weights = (sample_cyclic_mixtures(n_modalities, self.dirichlet_alpha,
                                                  generator=generator, device=device)
                       if cyclic else uniform)                                    # (E, M)
            pos_env, neg_env = pos_mod @ weights.T, neg_mod @ weights.T           # (B, E), (B, N, E)
            if missing:
                # Mixture m: a random share of the items has modality m replaced by its fill.
                masks = sample_missing_masks(n_modalities, len(distinct), self.missing_rate,
                                             generator=generator, device=device)  # (M, n_distinct)
                if per_item_fill:                                                 # each item's imputation
                    # Only the (item, modality) pairs a mixture masks are extracted; the others
                    # keep zeros, which the masks multiply by 0.
                    parts = []
                    for m in range(n_modalities):
                        masked = torch.nonzero(masks[m]).squeeze(1)
                        lost_m = module.lost_vectors(fill_x.index_select(0, distinct[masked]), modality=m)
                        parts.append(vectors.new_zeros((len(distinct), vectors.shape[-1]))
                                     .index_add(0, masked, lost_m))
                    imputed = torch.stack(parts, dim=1)                           # (n_distinct, M, d)
                    pos_fill = torch.einsum("bd,bmd->bm", u, imputed.index_select(0, where[:n_pos]))
                    neg_fill = torch.einsum("bd,bnmd->bnm", u, imputed.index_select(0, where[n_pos:]).view(
                        n_pos, self.n_negatives, n_modalities, -1))
                else:                                                             # one fill per modality
                    pos_fill = u @ module.lost_vectors(fill_x)[0].T               # (B, M)
                    neg_fill = pos_fill.unsqueeze(1)
                pos_mask = masks[:, where[:n_pos]].T                               # (B, M)
                neg_mask = masks[:, where[n_pos:]].T.reshape(n_pos, self.n_negatives, n_modalities)
                pos_env = torch.cat([pos_env, missing_modality_scores(pos_mod, pos_fill, pos_mask)], 1)
                neg_env = torch.cat([neg_env, missing_modality_scores(neg_mod, neg_fill, neg_mask)], 2)
            pair_risks = F.softplus(neg_env - pos_env.unsqueeze(1))              # (B, N, E)
            if row_weights is None:
                risks = pair_risks.mean(dim=(0, 1))                               # (E,)
            else:                                  # each positive's BPR terms times its weight
                risks = (row_weights[rows].unsqueeze(1) * pair_risks.mean(dim=1)).mean(dim=0)
            loss = risks.sum()
            variance = risks.var() if n_env > 1 else risks.new_zeros(())
            loss = loss + self.invariance_weight * variance
            alignment = risks.new_zeros(())
            if align:
                is_pos = torch.zeros(data.n_items, dtype=torch.bool, device=device)
                is_pos[pos] = True
                keep = is_pos[distinct]
                alignment = cross_modality_alignment(
                    vectors[keep], None if availability is None else availability[distinct[keep]])
                loss = loss + self.alignment_weight * alignment
            if self.l2_embedding > 0:
                norms = (u.square().sum(1) + MultimodalContentModel.fuse(pos_vec).square().sum(1)
                         + MultimodalContentModel.fuse(neg_vec.flatten(0, 1)).square().sum(1)
                         .view(n_pos, -1).mean(1))
                loss = loss + self.l2_embedding * norms.mean()
            return loss, {"mixture_risks": risks, "risk_variance": variance, "alignment": alignment}

        return objective

    def _validation_score(self, data):
        """Validation NDCG@20; with ``validation_candidates="unseen"`` among new items only."""
        if self.validation_candidates == "all":
            return super()._validation_score(data)
        order, relevant = data.ranking_validation()
        candidates = (data.item_degree == 0).cpu().numpy()
        if not candidates.any():
            raise ValueError(
                "validation_candidates='unseen' but every catalog item has a training interaction: "
                "pass the new items' features in item_features and their interactions as "
                "validation_data, or use validation_candidates='all'.")
        rankings, _ = chunked_top_k(self._user_scorer(), order, SCORE_K, exclude=data.seen,
                                    candidates=candidates, chunk_size=self._chunk_size())
        return ndcg_at_k(rankings, relevant, SCORE_K)
