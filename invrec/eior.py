"""EIOR: invariant (IRM) and variant (ERM) item representations fused by attention.

Zhao, Huang, Zhao and Wang, "Applying self-attention model to learn both Empirical Risk
Minimization and Invariant Risk Minimization for multimedia recommendation", Applied and
Computational Engineering 44 (2024). The authors' code has defects that void it as a reference;
invrec follows the corrected design of ``shared/specs/eior.md`` (decisions 1-7, section 3.3):

1. **environments and invariant mask**: the stages PaInvRL uses too
   (:class:`~invrec.invariance.EnvironmentInference`, :class:`~invrec.invariance.MaskLearning`)
   without Pareto weighting: the mask objective is ``(1 - a) IRM + a ERM`` with the fixed
   ``a = MaskLearning(weighting=0.5)`` (the authors' code);
2. **two representations**: invariant ``z_inv = W_inv (m * x)`` and variant
   ``z_var = W_var ((1 - m) * x)`` (separate weights), in PaInvRL's fused item model
   (:class:`~invrec.invariance.FusedItemModel`);
3. **fusion** (:class:`~invrec.invariance.Fusion`): learned per-item pooling weights that sum
   to 1 (the spec's self-attention over the two tokens before pooling is
   ``Fusion(self_attention=True)``), one global pair (``"global"``), or the ablations
   ``"fixed"`` (0.5/0.5), ``"invariant"`` (InvRL) and ``"variant"`` (ERM); by default the
   variant part is rescaled to the invariant part's scale first (``Fusion(gate=True)``), so a
   weight is a gate and not a scale the variant projection can undo;
4. **direct scores**: the fused score ``s_ui = U_u . [alpha V_i ; f_i]`` ranks and predicts
   (:class:`EIORRecommender`); for explicit ratings (:class:`EIORRegressor`)
   ``r_ui = mu + b_u + b_i + s_ui`` (:class:`invrec.nn.RatingHead`) is fitted by squared error
   and predicted on the rating scale;
5. **loss** ``L_fuse + w_irm L_irm + w_erm L_erm + L2``
   (:class:`~invrec.invariance.FusedObjective`): ``L_irm`` is the mean of the per-environment
   risks of the invariant-only score plus ``irm_weight`` times their variance (V-REx), ``L_erm``
   the pooled risk of the variant-only score. The fusion parameters see only ``L_fuse``, so its
   weights cannot collapse the way free loss weights do.
"""

from __future__ import annotations

import functools

from .base import BaseRecommender, reject_renamed
from .baselines import BACKBONE_CONSTRAINTS, RANKING_LOSS_CONSTRAINTS
from .invariance import EnvironmentInference, FusedObjective, Fusion, MaskLearning
from .invariance.final import build_fused_model, final_environments, train_fused_model
from .invariance.objectives import ranking_part_losses
from .invariance.stages import (FUSION_CONSTRAINTS, RENAMED_FUSED_PARAMETERS, RENAMED_STAGE_PARAMETERS,
                                STAGE_CONSTRAINTS, InvariantStagesMixin)
from .nn import RatingHead, rating_loss
from .regression import RatingRegressorMixin

__all__ = ["EIORRecommender", "EIORRegressor"]

_PARAMETERS = """embedding_dim : int, default=128
        Id embedding width (UltraGCNRecommender's default; InvRL 64).
    content_dim : int, default=64
        Width of each content representation (InvRL ``feat_dim``).
    max_epochs : int, default=200
        Final-model epochs at most (invrec's shared default).
    batch_size : int or "auto", default="auto"
        Interactions per step (UltraGCNRecommender's default: 4096 on TikTok and Last.fm, the
        batch the L2 weights are tuned at, smaller on small data; kept as ``batch_size_``).
    learning_rate : float, default=1e-2
        Adam step size (UltraGCNRecommender's default).
{ranking}    l2_embedding : float or "auto", default="auto"
        L2 on user and item id embeddings (UltraGCNRecommender's default: 1e-2 at TikTok's
        density, grown with the training graph's mean degree; kept as ``l2_embedding_``).
    l2_content : float, default=1.0
        L2 on the two content projections (UltraGCNRecommender's default). The fusion and the
        rating biases get none (their scale is bounded by the softmax / set by the data).
    item_l2_ratio : float, default=2.0
        Extra factor on the item id L2 (InvRL ``wdi``).
    item_id_weight : float, default=1.0
        ``alpha`` of the item vector ``[alpha V_i ; f_i]`` (1: InvRL's model; see PaInvRL).
    init_std : float, default=0.01
        Standard deviation of the initial embeddings and projections (InvRL).
    decorrelate : {{"both", "ids", "content", "none"}}, default={decorrelate!r}
        What the final model makes blind to the variant view of the content (the dimensions the
        final mask cuts, at or below 0.5): the item id embeddings, projected off the variant
        view's leading principal directions, and the kept dimensions, read as their residual
        after a ridge regression on the cut ones (:mod:`invrec.invariance.decorrelation`).
        {decorrelate_note}
    fusion : Fusion, str or None, default=None
        The fusion (spec decision 3) and its ablations (decision 7); None is
        ``Fusion(gate=True)``: learned per-item attention without self-attention, the variant
        part gated to the invariant part's scale. A str is a mode with that gate (``"global"``,
        ``"fixed"``, ``"invariant"``, ``"variant"``). Search ``fusion__gate``, ...
    objective : FusedObjective or None, default=None
        The final loss ``L_fuse + w_irm L_irm + w_erm L_erm``; None is
        :class:`~invrec.invariance.FusedObjective`'s defaults: ``L_fuse`` environment-averaged
        with the V-REx variance (``fuse="irm"``), ``w_irm = w_erm = 0.5``, variance weight 1.
        Search ``objective__w_erm``, ...
    environments : EnvironmentInference, str or None, default=None
        Stage 1, as :class:`~invrec.painvrl.PaInvRLRecommender` (None: the stage's defaults,
        InvRL's code; a str names a column of ``X`` with the user's own labels).
    mask : MaskLearning or None, default=None
        Stage 2; None is ``{mask_default}``: a fixed ERM share of 0.5, no Pareto
        weighting (authors' code: 0.5 IRM + 0.5 ERM), InvRL's penalty{mask_note}.
    n_outer_iter : int, default=2
        Outer iterations of {{environments -> mask}} (InvRL: 5).
    early_stopping : bool, default=True
        Keep the epoch with the best validation {metric} and stop after ``n_iter_no_change``
        epochs without improvement.
    validation_fraction : float, default=0.1
        Share of each user's rows of ``X`` held out for early stopping when ``validation_data`` is
        not given (in expectation: stochastic rounding, so users with few rows are represented).
    n_iter_no_change : int, default=30
        Patience in epochs (invrec's backbone default).
    warm_start : bool, default=False
        Continue training the fitted final model, as :class:`~invrec.painvrl.PaInvRLRecommender`
        (the stages are not run again, so ``X`` must give the same training rows).
    device, random_state, verbose, handle_unknown
        As every invrec estimator."""

_RANKING_DECORRELATE = """With the cut mask of the default, the variant part of the fusion reads only the cut
        dimensions and the invariant part and the ids are blind to them (PaInvRL's default too).
        On the generator's shift regimes (``benchmarks/shift.py --defaults``, 5 seeds) this took
        EIOR's out-of-distribution NDCG@20 from 0.92x to 1.36x the UltraGCN baseline where the
        environments disagree, 1.05x to 1.10x without shift, and cost TikTok 6.5% (NDCG@20 .0447
        -> .0418, validation split, 3 seeds; UltraGCN .0430); where the environments agree the attention still takes the variant
        part (0.84x -> 0.72x). "none" with ``mask__threshold=None`` is the previous default."""

_RATING_DECORRELATE = """The rating regressor keeps the soft mask and no decorrelation (the cut was
        measured for ranking only)."""

_RANKING_MASK = """ and budget, binarised by the automatic threshold (the mask the final model reads
        is 0/1, so the variant part holds exactly the cut dimensions)"""

_RANKING_PARAMETERS = """    n_negatives : int, default=50
        Uniform negatives per positive, shared by a batch (InvRL ``neg_num``).
    loss_weights : tuple of 4 floats, default=(1.0, 1.0, 1.0, 1.0)
        UltraGCN's ``w1..w4`` (InvRL: all 1).
"""

_ATTRIBUTES = """module_ : FusedItemModel
        The final model{head}.
    attention_weights_ : ndarray of shape (n_items, 2)
        (invariant, variant) weights of every catalog item; rows sum to 1.
    attention_weights_mean_ : ndarray of shape (2,)
        Their mean over the catalog.
    invariant_mask_ : dict of str to ndarray
        Learned mask value per content dimension, per modality.
    environments_ : DataFrame
        ``user``, ``item``, ``environment`` of every training row.
    pareto_weights_ : ndarray
        ERM weight of every mask-learning batch (the fixed share, unless ``weighting="mgda"``).
    stage_times_ : dict
        Seconds in ``environments``, ``mask`` and ``final``.
    history_ : list of dict
        The stage records, then one record per final epoch (``stage="final"``) with
        ``train_loss``, ``loss_fuse``, ``loss_irm``, ``loss_erm``, ``attention_inv`` (mean
        invariant weight of up to 256 items of each batch) and ``{monitor}``.
    batch_size_, l2_embedding_ : int, float
        The batch size and the id L2 weight the fit used (``"auto"`` resolved from the data).
    user_ids_, item_ids_, unseen_items_, n_users_, n_items_, item_features_, device_
        See :class:`~invrec.base.BaseRecommender`."""

_CONSTRAINTS = {**BACKBONE_CONSTRAINTS, **STAGE_CONSTRAINTS, **FUSION_CONSTRAINTS,
                "objective": [None, FusedObjective]}


class _EIORBase(InvariantStagesMixin, BaseRecommender):
    """What EIOR's ranking estimator and its rating regressor share: stages 1-2, the fused model.

    Subclasses say what a batch's per-row losses are (:meth:`_part_losses`), how the model's
    scores become predictions, and what is validated.
    """

    _parameter_constraints = _CONSTRAINTS
    _default_parts = {"environments": EnvironmentInference,
                       "mask": functools.partial(MaskLearning, weighting=0.5),
                       "fusion": functools.partial(Fusion, gate=True), "objective": FusedObjective}
    _spelled_parts = {"fusion": "mode"}
    _renamed_parameters = {**RENAMED_STAGE_PARAMETERS, **RENAMED_FUSED_PARAMETERS,
                           "feedback": "rank implicit feedback with EIORRecommender, predict explicit "
                                       "ratings with EIORRegressor"}

    @reject_renamed
    def __init__(self, *, embedding_dim=128, content_dim=64, max_epochs=200, batch_size="auto",
                 learning_rate=1e-2, l2_embedding="auto", l2_content=1.0, item_l2_ratio=2.0,
                 item_id_weight=1.0, init_std=0.01, fusion=None, objective=None, environments=None,
                 mask=None, n_outer_iter=2, decorrelate="none", early_stopping=True,
                 validation_fraction=0.1, n_iter_no_change=30, warm_start=False, device="auto", random_state=None, verbose=0,
                 handle_unknown="error"):
        self.embedding_dim = embedding_dim
        self.content_dim = content_dim
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.l2_embedding = l2_embedding
        self.l2_content = l2_content
        self.item_l2_ratio = item_l2_ratio
        self.item_id_weight = item_id_weight
        self.decorrelate = decorrelate
        self.init_std = init_std
        self.fusion = fusion
        self.objective = objective
        self.environments = environments
        self.mask = mask
        self.n_outer_iter = n_outer_iter
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.warm_start = warm_start
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.handle_unknown = handle_unknown

    # ------------------------------------------------------------------ the method
    def _fit_model(self, data):
        stages = self._run_stages(data)                                             # 1. and 2.
        with self._timed("final"):
            model = self.module_ = self._warm_module(data, lambda: self._build_model(data, stages))  # 2.-4.
            objective = self._part("objective").build(
                model, data.items, self._part_losses(model, data), *final_environments(stages, data))  # 5.
            self.attention_weights_ = train_fused_model(self, model, objective, data)
        self.attention_weights_mean_ = self.attention_weights_.mean(axis=0)

    def _build_model(self, data, stages):
        model = build_fused_model(self, data, stages.final_mask)                    # 2. and 3.
        self._add_head(model, data)                                                 # 4.
        return model

    def _add_head(self, model, data):
        """Hook: extra parts of the model (the regressor's rating head)."""


class EIORRecommender(_EIORBase):
    _default_parts = {**_EIORBase._default_parts,
                      "mask": functools.partial(MaskLearning, weighting=0.5, threshold="auto")}
    __doc__ = """EIOR for implicit feedback: IRM-invariant and ERM-variant content fused by attention.

    The stages are described in the module docstring. Environments and the mask come from the
    stage objects PaInvRL uses too (with a fixed, not Pareto, weighting); the final model is
    :class:`~invrec.invariance.FusedItemModel` trained on ``L_fuse + w_irm L_irm + w_erm L_erm + L2`` with early
    stopping on validation NDCG@20. ``y`` is optional interaction weights (rows ``y = 0`` dropped;
    the final model weighs each interaction's loss, the stages ignore weights: see ``fit``); the
    losses are UltraGCN's weighted BCE with ``n_negatives`` uniform negatives shared by a batch;
    ``predict`` returns the fused score and ``score(X)`` NDCG@20. For explicit ratings use
    :class:`EIORRegressor`.

    **What the attention learns from** (``objective__fuse``). ``benchmarks/fusion_probe.py``
    found that a pooled loss moves per-item attention *away* from the invariant part when the
    training environments disagree; ``"irm"`` (default) makes ``L_fuse`` the environment-averaged
    risk plus ``irm_weight`` times the variance of the per-environment risks.

    Stage knobs default as PaInvRL, with the same cut mask and decorrelated ids (PaInvRL's
    ``decorrelate="both"``, ``mask__threshold="auto"``): on the generator's shift regimes the
    defaults reach 1.36x UltraGCN's out-of-distribution NDCG@20 where the training environments
    disagree and 1.10x without shift, at 0.97x UltraGCN on TikTok; where the environments agree
    the attention still reads the variant part, even given the true environments (see the user
    guide, :doc:`/user_guide/eior`, and ``benchmarks/README.md``, "EIOR" and issue 15's
    sections). The soft-mask setting of before is ``mask=MaskLearning(weighting=0.5),
    decorrelate="none"``.

    Parameters
    ----------
    {params}

    Attributes
    ----------
    {attributes}

    Examples
    --------
    >>> from invrec.eior import EIORRecommender
    >>> from invrec.invariance import EnvironmentInference, MaskLearning
    >>> from invrec.datasets import make_multimodal_interactions
    >>> data = make_multimodal_interactions(n_users=60, n_items=50, random_state=0)
    >>> model = EIORRecommender(environments=EnvironmentInference(2, max_rounds=1, epochs=1),
    ...                         mask=MaskLearning(weighting=0.5, epochs=1), n_outer_iter=1,
    ...                         max_epochs=3, random_state=0)
    >>> model = model.fit(data.interactions[["user", "item"]], item_features=data.item_features)
    >>> model.attention_weights_.shape, bool(abs(model.attention_weights_.sum(1) - 1).max() < 1e-6)
    ((50, 2), True)
    """.format(params=_PARAMETERS.format(ranking=_RANKING_PARAMETERS, metric="NDCG@20", decorrelate="both",
                                         decorrelate_note=_RANKING_DECORRELATE,
                                         mask_default='MaskLearning(weighting=0.5, threshold="auto")',
                                         mask_note=_RANKING_MASK),
               attributes=_ATTRIBUTES.format(head="", monitor="valid_ndcg@20"))

    _parameter_constraints = RANKING_LOSS_CONSTRAINTS

    @reject_renamed
    def __init__(self, *, embedding_dim=128, content_dim=64, max_epochs=200, batch_size="auto",
                 learning_rate=1e-2, n_negatives=50, loss_weights=(1.0, 1.0, 1.0, 1.0),
                 l2_embedding="auto", l2_content=1.0, item_l2_ratio=2.0, item_id_weight=1.0,
                 init_std=0.01, fusion=None, objective=None, environments=None, mask=None,
                 n_outer_iter=2, decorrelate="both", early_stopping=True, validation_fraction=0.1,
                 n_iter_no_change=30, warm_start=False,
                 device="auto", random_state=None, verbose=0, handle_unknown="error"):
        super().__init__(embedding_dim=embedding_dim, content_dim=content_dim,
                         max_epochs=max_epochs, batch_size=batch_size,
                         learning_rate=learning_rate, l2_embedding=l2_embedding,
                         l2_content=l2_content, item_l2_ratio=item_l2_ratio,
                         item_id_weight=item_id_weight, init_std=init_std, fusion=fusion,
                         objective=objective, environments=environments, mask=mask,
                         n_outer_iter=n_outer_iter, decorrelate=decorrelate,
                         early_stopping=early_stopping,
                         validation_fraction=validation_fraction,
                         n_iter_no_change=n_iter_no_change, warm_start=warm_start, device=device,
                         random_state=random_state, verbose=verbose, handle_unknown=handle_unknown)
        self.n_negatives = n_negatives
        self.loss_weights = loss_weights

    def _part_losses(self, model, data):
        return ranking_part_losses(model, data, self.n_negatives, self.loss_weights,
                                   self._interaction_weights(data))


class EIORRegressor(RatingRegressorMixin, _EIORBase):
    __doc__ = """EIOR for explicit ratings: ``mu + b_u + b_i`` plus the fused invariant/variant score.

    The model of :class:`EIORRecommender` (same stages, same fused item model, same
    ``L_fuse + w_irm L_irm + w_erm L_erm`` structure) with a rating head
    (:class:`~invrec.nn.RatingHead`): every loss is the squared error of
    ``mu + b_u + b_i + s`` against the rating (no negatives). ``y`` holds the ratings (required,
    finite, on any scale: MovieLens 1-5, 0-4 or centred); early stopping watches the validation
    RMSE (history key ``valid_rmse``, lower is better); ``predict`` returns ratings clipped to the
    training scale, ``recommend`` ranks by the unclipped predicted rating, and ``score(X, y)`` is
    the negated RMSE (``y`` or a ``rating`` column of ``X``; without ratings it falls back to
    NDCG@20; a ranking metric stays available through :func:`~invrec.metrics.make_ranking_scorer`).
    ``validation_data``, when given, must be a DataFrame with a ``rating`` column.

    Parameters
    ----------
    {params}

    Attributes
    ----------
    {attributes}
    rating_scale_ : RatingScale
        Training rating scale.

    Examples
    --------
    >>> from invrec.eior import EIORRegressor
    >>> from invrec.invariance import EnvironmentInference, MaskLearning
    >>> from invrec.datasets import make_multimodal_interactions
    >>> data = make_multimodal_interactions(n_users=60, n_items=50, random_state=0)
    >>> X = data.interactions[["user", "item"]]
    >>> ratings = 1 + (X["user"] + X["item"]) % 5
    >>> model = EIORRegressor(environments=EnvironmentInference(2, max_rounds=1, epochs=1),
    ...                       mask=MaskLearning(weighting=0.5, epochs=1), n_outer_iter=1,
    ...                       max_epochs=3, random_state=0)
    >>> pred = model.fit(X, ratings, item_features=data.item_features).predict(X)
    >>> bool(pred.min() >= 1 and pred.max() <= 5)
    True
    """.format(params=_PARAMETERS.format(ranking="", metric="RMSE (lowest)", decorrelate="none",
                                         decorrelate_note=_RATING_DECORRELATE,
                                         mask_default="MaskLearning(weighting=0.5)",
                                         mask_note=" and budget, a soft mask"),
               attributes=_ATTRIBUTES.format(head=" (``module_.head`` is the rating head)",
                                             monitor="valid_rmse"))

    def _add_head(self, module, data):
        module.head = RatingHead(data.n_users, data.n_items, offset=self.rating_scale_.mean,
                                 device=data.device)

    def _part_losses(self, model, data):
        def losses(rows, parts):
            users, items = data.users[rows], data.items[rows]
            return [rating_loss(model.head(users, items, pos), data.targets[rows], reduction="none")
                    for pos, _ in model.part_scores(users, items, parts=parts)]

        return losses
