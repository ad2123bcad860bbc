"""PaInvRL: Pareto Invariant Representation Learning for multimedia recommendation.

Huang, Li, Li, Zheng and Liu, ACM MM 2023 (arXiv 2308.04706), built on InvRL (Du et al., ACM MM
2022). The estimator runs the method's three modules in the paper's order:

1. **heterogeneous environment identification** (:class:`invrec.invariance.EnvironmentInference`,
   running :func:`invrec.invariance.infer_environments`): ``K`` environment models, trained as one
   batched model on the variant view of the content, and argmax reassignment of every training interaction -- or the user's own labels (a column of X);
2. **invariant mask generation** (:class:`invrec.invariance.MaskLearning`, running
   :func:`invrec.invariance.learn_invariant_mask`): a stochastic-gate mask
   over the content dimensions, learned from an ERM and an IRM objective weighted by the per-batch
   two-objective MGDA (Pareto) weight of their unit-normalised gradients; steps 1-2 repeat
   ``n_outer_iter`` times with the penalty weight growing by the stage's ``penalty_growth``
   (:func:`invrec.invariance.run_stages`);
3. **convert module** (:class:`invrec.invariance.FusedItemModel`): invariant and variant item
   representations from the mask and its complement, fused by attention
   (:class:`invrec.invariance.Fusion`), in the UltraGCN-style backbone, trained on the pooled
   ranking loss of the fused score with early stopping on validation NDCG@20.
"""

from __future__ import annotations

import functools

from .base import BaseRecommender, reject_renamed
from .baselines import BACKBONE_CONSTRAINTS, RANKING_LOSS_CONSTRAINTS
from .invariance import POOLED, EnvironmentInference, Fusion, MaskLearning, binarize_mask
from .invariance.final import build_fused_model, final_environments, train_fused_model
from .invariance.objectives import ranking_part_losses
from .invariance.stages import (FUSION_CONSTRAINTS, RENAMED_FUSED_PARAMETERS, RENAMED_STAGE_PARAMETERS,
                                STAGE_CONSTRAINTS, InvariantStagesMixin)

__all__ = ["PaInvRLRecommender", "binarize_mask"]


class PaInvRLRecommender(InvariantStagesMixin, BaseRecommender):
    """Pareto Invariant Representation Learning (PaInvRL) recommender; InvRL as a setting.

    Environments -> invariant mask (repeated ``n_outer_iter`` times) -> convert module and final
    training, as described in the module docstring. ``mask=MaskLearning(weighting=0.0, l2=0.1)``
    (a soft mask, IRM-only loss) with ``fusion="invariant"`` reproduces InvRL;
    ``mask=MaskLearning(weighting="mgda", l2=0.1), fusion="attention"`` is PaInvRL as published.

    The backbone's training knobs (widths, batch, step size, L2, patience) default to those of
    :class:`~invrec.baselines.UltraGCNRecommender`, so the two compare out of the box; InvRL's
    own are ``embedding_dim=64, batch_size=512, learning_rate=1e-3, l2_embedding=1e-4,
    l2_content=1e-2``. The method's stages follow InvRL's official code (the only public code of
    this lineage) unless said otherwise, on a budget that finishes: 2 outer iterations of 2
    environment rounds of 5 epochs (32-wide environment models) and 10 mask epochs at step size
    1e-2 fit TikTok (60k interactions) in about 2 minutes on one CPU thread, where InvRL's full
    budget (``n_outer_iter=5, environments=EnvironmentInference(embedding_dim=None,
    max_rounds=10, epochs=20), mask=MaskLearning(epochs=40, learning_rate=1e-3)``) takes hours on
    a large dataset. The defaults cut the mask
    (``MaskLearning(threshold="auto")``) and read only the invariant part (``fusion="invariant"``):
    trained on the pooled loss, attention leans on the variant part, which fits the training
    environments better, and a soft mask keeps every spurious dimension (``benchmarks/README.md``,
    "Shift regimes"). For more out-of-distribution robustness at some in-distribution cost,
    down-weight or regularise the item id part (``item_id_weight``, ``item_l2_ratio``): item id
    embeddings absorb exposure bias that no content mask removes.

    Parameters
    ----------
    embedding_dim : int, default=128
        Width of the id embeddings (InvRL: 64; invrec's backbone default, as
        :class:`~invrec.baselines.UltraGCNRecommender`).
    content_dim : int, default=64
        Width of the content representations (InvRL ``feat_dim``: 64).
    max_epochs : int, default=200
        Upper bound on the final model's epochs (invrec's shared default).
    batch_size : int or "auto", default="auto"
        Interactions per step in every stage (InvRL: 512). ``"auto"`` (the backbone's default,
        see :class:`~invrec.baselines.UltraGCNRecommender`) is 4096 on TikTok and Last.fm, the
        batch the L2 weights below are tuned at, and smaller on smaller data, so that the mask
        and environment stages take steps enough to move (256 on the generator's 3,240 rows);
        the fit keeps it as ``batch_size_``.
    learning_rate : float, default=1e-2
        Adam step size of every model but the mask (InvRL: 1e-3 at batch size 512; invrec's
        backbone default).
    n_negatives : int, default=50
        Uniform negatives per positive (InvRL ``neg_num``: 50); shared by a batch in the final
        model, by an environment's rows in the environment and mask stages.
    loss_weights : tuple of 4 floats, default=(1.0, 1.0, 1.0, 1.0)
        UltraGCN's ``w1..w4`` (InvRL: all 1).
    l2_embedding : float or "auto", default="auto"
        L2 weight on the user and item id embeddings (InvRL ``wd1``: 1e-4 at batch size 512).
        ``"auto"`` is the backbone's default: 1e-2 at TikTok's density, grown with the training
        graph's mean degree (:func:`invrec.training.resolve_l2_embedding`; kept as
        ``l2_embedding_``).
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
    decorrelate : {"both", "ids", "content", "none"}, default="both"
        What the final model makes blind to the variant view of the content (the dimensions the
        final mask cuts, at or below 0.5): the item id embeddings, projected off the variant
        view's leading principal directions, and the kept dimensions, read as their residual
        after a ridge regression on the cut ones (:mod:`invrec.invariance.decorrelation`).
        Item ids
        otherwise learn the spurious attribute from exposure (R^2 0.70 on the generator's
        ``agree`` regime) and kept spurious dimensions pass at full strength: "none" is InvRL's
        and the published PaInvRL's model (the guide has the figures).
    environments : EnvironmentInference, str or None, default=None
        Stage 1. An :class:`~invrec.invariance.EnvironmentInference` (its settings: number of
        environments, width, rounds, tolerance, epochs); None uses its defaults (InvRL's code:
        10 environments, up to 10 rounds of 20 epochs). A str names a column of ``X`` (a
        DataFrame) holding the user's own environment labels: inference is then skipped. Search
        its settings as ``environments__n_environments`` and so on.
    mask : MaskLearning or None, default=None
        Stage 2. A :class:`~invrec.invariance.MaskLearning` (epochs, gate noise, step size,
        ``||mu||^2`` weight, penalty and its weight and growth, the ERM/IRM ``weighting`` and the
        ``threshold`` that binarises the mask); None is ``MaskLearning(threshold="auto")``:
        PaInvRL's per-batch MGDA weighting on normalised gradients with InvRL's penalty, no
        ``||mu||^2`` term (InvRL: 0.1) and 10 epochs, the learned mask cut in two by the
        automatic threshold.
        ``MaskLearning(weighting="mgda")`` is the published raw-gradient MGDA weight,
        ``MaskLearning(weighting=0.0)`` InvRL's IRM-only mask loss.
    n_outer_iter : int, default=2
        Outer iterations of {environments -> mask} (InvRL: 5).
    fusion : Fusion, str or None, default=None
        Convert module: how the invariant and variant representations are weighed. None is
        ``Fusion(mode="invariant")``: the final model reads only the invariant (masked) part, as
        InvRL's. A str is a mode: ``"attention"`` (learned per-item attention pooling of the two,
        PaInvRL's weighted sum as published), ``"global"`` (one learned pair), ``"fixed"``,
        ``"variant"``. Searchable as ``fusion__mode``, ``fusion__gate``, ...
    early_stopping : bool, default=True
        Keep the final model's epoch with the best validation NDCG@20; stop after
        ``n_iter_no_change`` epochs without improvement.
    validation_fraction : float, default=0.1
        Share of each user's rows of ``X`` held out for early stopping when ``validation_data`` is
        not given (in expectation: stochastic rounding, so users with few rows are represented).
    n_iter_no_change : int, default=30
        Patience of early stopping, in epochs (invrec's backbone default).
    warm_start : bool, default=False
        When True, ``fit`` on a fitted estimator continues training its model for up to
        ``max_epochs`` more epochs (its optimizer state and random stream too, within the session),
        instead of starting over; ``X`` must hold the same users and catalog. ``history_`` keeps
        the earlier records. The stages are not run again: the final model continues on the
        environments and mask of the first fit, so ``X`` must give the same training rows.
    device : {"auto", "cpu", "cuda"} or str, default="auto"
    random_state : int, RandomState or None, default=None
        Seed of every random draw; an int makes a CPU fit bit-for-bit reproducible.
    verbose : int, default=0
        1 shows a progress bar over the final model's epochs.
    handle_unknown : {"error", "ignore"}, default="error"
        Unknown users or items at predict/recommend time: raise, or skip them.

    Attributes
    ----------
    module_ : FusedItemModel
        The final torch model; ``module_.mask`` is the mask its convert module used (the
        learned one, binarised when the mask stage's ``threshold`` is set).
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
        ``loss_fuse``, ``attention_inv`` (mean invariant weight of up to 256 items of each batch),
        ``valid_ndcg@20``); every record has ``fit_time`` (s).
    batch_size_, l2_embedding_ : int, float
        The batch size and the id L2 weight the fit used (``"auto"`` resolved from the data).
    user_ids_, item_ids_, unseen_items_, n_users_, n_items_, item_features_, device_
        See :class:`~invrec.base.BaseRecommender`.

    Examples
    --------
    >>> from invrec.painvrl import PaInvRLRecommender
    >>> from invrec.datasets import make_multimodal_interactions
    >>> data = make_multimodal_interactions(n_users=60, n_items=50, random_state=0)
    >>> from invrec.invariance import EnvironmentInference, MaskLearning
    >>> model = PaInvRLRecommender(
    ...     environments=EnvironmentInference(2, max_rounds=1, epochs=1),
    ...     mask=MaskLearning(epochs=1), n_outer_iter=1, max_epochs=3, random_state=0)
    >>> model = model.fit(data.interactions, item_features=data.item_features)
    >>> sorted(model.invariant_mask_), model.attention_weights_.shape
    (['acoustic', 'visual'], (50, 2))
    >>> model.recommend([0], n=3).shape
    (3, 4)

    The stage settings are nested, and a search reaches them:

    >>> PaInvRLRecommender().set_params(mask__penalty="vrex").mask
    MaskLearning(penalty='vrex', threshold='auto')
    """

    _parameter_constraints = {**BACKBONE_CONSTRAINTS, **RANKING_LOSS_CONSTRAINTS, **STAGE_CONSTRAINTS,
                              **FUSION_CONSTRAINTS}
    _default_parts = {"environments": EnvironmentInference,
                      "mask": functools.partial(MaskLearning, threshold="auto"),
                      "fusion": functools.partial(Fusion, mode="invariant")}
    _spelled_parts = {"fusion": "mode"}
    _renamed_parameters = {**RENAMED_STAGE_PARAMETERS, **RENAMED_FUSED_PARAMETERS}

    @reject_renamed
    def __init__(self, *, embedding_dim=128, content_dim=64, max_epochs=200, batch_size="auto",
                 learning_rate=1e-2, n_negatives=50, loss_weights=(1.0, 1.0, 1.0, 1.0),
                 l2_embedding="auto", l2_content=1.0, item_l2_ratio=2.0, item_id_weight=1.0,
                 init_std=0.01, environments=None, mask=None, n_outer_iter=2, fusion=None,
                 decorrelate="both",
                 early_stopping=True, validation_fraction=0.1, n_iter_no_change=30, warm_start=False,
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
        self.decorrelate = decorrelate
        self.init_std = init_std
        self.environments = environments
        self.mask = mask
        self.n_outer_iter = n_outer_iter
        self.fusion = fusion
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
        stages = self._run_stages(data)                                             # 1-2
        with self._timed("final"):                                                  # 3
            model = self.module_ = self._warm_module(data, lambda: build_fused_model(self, data, stages.final_mask))
            losses = ranking_part_losses(model, data, self.n_negatives, self.loss_weights,
                                         self._interaction_weights(data))
            objective = POOLED.build(model, data.items, losses, *final_environments(stages, data))
            self.attention_weights_ = train_fused_model(self, model, objective, data)
