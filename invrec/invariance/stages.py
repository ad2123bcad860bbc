"""The two stages before an invariant method's final model, as configurable objects.

PaInvRL and EIOR share them by composition: each estimator holds an
:class:`EnvironmentInference` (its ``environments`` parameter) and a :class:`MaskLearning` (its
``mask`` parameter) and runs them through :func:`run_stages`. Both are scikit-learn estimators in
the parameter sense (``get_params`` / ``set_params`` / ``clone``), so a search reaches their
settings with the nested spelling ``environments__n_environments`` or ``mask__penalty``. An
estimator whose stage parameter is None uses the stage's defaults, and a nested setting turns
None into the default stage object first (:meth:`invrec.base.BaseRecommender.set_params`).

The stages train with the backbone's settings (batch size, step size, negatives, L2, widths),
given by the estimator as a :class:`StageTraining`.
"""

from __future__ import annotations

import contextlib
import logging
import numbers
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator

from .environments import INITS, infer_environments
from .invariant_mask import PENALTIES, PENALTY_SCALES, learn_invariant_mask
from ..utils.params import Interval, StrOptions, validate_parameters
from .fusion import FUSION_MODES, Fusion
from .masks import binarize_mask
from ..training import progress_bar

logger = logging.getLogger(__name__)

__all__ = ["EnvironmentInference", "MaskLearning", "StageTraining", "StageResult", "run_stages",
           "environment_labels", "stage_training", "stage_attributes", "RENAMED_STAGE_PARAMETERS",
           "STAGE_CONSTRAINTS", "FUSION_CONSTRAINTS", "RENAMED_FUSED_PARAMETERS", "InvariantStagesMixin"]


class EnvironmentInference(BaseEstimator):
    """Stage 1: heterogeneous environments of the training interactions (InvRL's procedure).

    ``n_environments`` environment models, trained as one batched model on the variant view of
    the content ``(1 - m) * x``, and argmax reassignment of every interaction
    (:func:`invrec.invariance.infer_environments`), repeated until few labels change.

    Parameters
    ----------
    n_environments : int, default=10
        ``K``, environments inferred (InvRL ``num_domains``: 10).
    embedding_dim : int, default=32
        Width of the id and of the content parts of the environment models; None uses the
        estimator's ``embedding_dim`` and ``content_dim`` (InvRL). The ``K`` models update ``K``
        times the parameters of one model at every step, so a smaller width makes a round cheaper
        (on TikTok, 32 instead of 128 + 128 cut an environment epoch from 4.9 s to about 1 s).
    max_rounds : int, default=2
        Train-then-reassign rounds per outer iteration at most (InvRL: 10).
    tol : float, default=0.01
        Stop the rounds when at most this share of labels changed (InvRL: 1%).
    epochs : int, default=5
        Epochs of the environment models per round (InvRL: 20; the batched models converge in a
        few).
    init : {"random", "taste"}, default="random"
        Start of every outer iteration's rounds: uniformly random labels (InvRL) or the taste
        split of the variant view (:func:`~invrec.invariance.environments.taste_environments`).
        From a random start the rounds stay at it (adjusted Rand index 0.000 against the
        generator's true environments in every regime); the taste split finds environments
        that disagree in sign (``disagree``: ARI .20 at K = 3 through PaInvRL's learned mask,
        .08 at K = 10; the Bayes oracle .45), and the rounds keep it. It is not the default:
        the final models did not gain from it out of distribution (``benchmarks/README.md``,
        "Environments that are found").

    The defaults are a budget that finishes (TikTok: about 11 s of a 110-150 s fit); InvRL's is
    ``EnvironmentInference(embedding_dim=None, max_rounds=10, epochs=20)``. With labels that
    carry no signal (``benchmarks/environment_probe.py``: adjusted Rand index about 0 against
    the generator's true environments at any budget) a longer search buys nothing.

    Examples
    --------
    >>> EnvironmentInference(n_environments=3).get_params()["n_environments"]
    3
    """

    _parameter_constraints = {
        "n_environments": [Interval(numbers.Integral, 1, None)],
        "embedding_dim": [None, Interval(numbers.Integral, 1, None)],
        "max_rounds": [Interval(numbers.Integral, 1, None)],
        "tol": [Interval(numbers.Real, 0, None)],
        "epochs": [Interval(numbers.Integral, 0, None)],
        "init": [StrOptions(set(INITS))],
    }

    def __init__(self, n_environments=10, *, embedding_dim=32, max_rounds=2, tol=0.01, epochs=5,
                 init="random"):
        self.n_environments = n_environments
        self.embedding_dim = embedding_dim
        self.max_rounds = max_rounds
        self.tol = tol
        self.epochs = epochs
        self.init = init

    def run(self, data, training, variant, history, outer):
        """Labels of ``data``'s training rows; one history record per round."""
        kwargs = training.kwargs()
        if self.embedding_dim is not None:
            kwargs.update(id_dim=self.embedding_dim, content_dim=self.embedding_dim)
        labels, _, rounds = infer_environments(
            data.users, data.items, data.n_users, data.n_items, data.features,
            n_envs=self.n_environments, feature_mask=variant, init=self.init, max_rounds=self.max_rounds,
            tol=self.tol, epochs=self.epochs, **kwargs)
        for record in rounds:
            history.append({"stage": "environments", "outer_iter": outer + 1, **record,
                            "fit_time": record["train_time"] + record["assign_time"]})
        return labels


class MaskLearning(BaseEstimator):
    """Stage 2: a stochastic-gate mask over the content dimensions from an ERM and an IRM objective.

    The objective of a batch is ``gamma * ERM + (1 - gamma) * IRM``
    (:func:`invrec.invariance.learn_invariant_mask`), where IRM is the mean environment risk plus
    ``penalty_weight`` times the invariance penalty plus ``l2 * ||mu||^2``.

    Parameters
    ----------
    epochs : int, default=10
        Epochs of mask learning per outer iteration (InvRL: 40, at step size 1e-3).
    sigma : float, default=0.01
        Gate noise of the stochastic-gate mask (InvRL: 0.01).
    learning_rate : float, default=1e-2
        Adam step size of the gate means (InvRL: 1e-3); the stage's scorer trains at the
        estimator's ``learning_rate``.
    l2 : float, default=0.0
        Weight of ``||mu||^2`` in the IRM objective (InvRL ``lam``: 0.1). It pulls every gate
        towards 0 at the same rate, so on a short budget it moves the invariant gates as much
        as the spurious ones and the cut takes invariant dimensions with it: at 0.1 the
        generator's ``none`` regime lost 30% of the baseline's NDCG (``benchmarks/README.md``,
        "Defaults that hold across data").
    penalty : {"invrl", "irmv1", "vrex"}, default="invrl"
        Invariance penalty: InvRL's gradient variance, IRMv1 or V-REx.
    penalty_weight : float, default=1.0
        Weight of the penalty in the first outer iteration (InvRL ``alpha``: 1.0).
    penalty_growth : float, default=1.05
        Factor applied to the penalty weight at every outer iteration (InvRL: 1.05).
    penalty_scale : {"raw", "risk"}, default="raw"
        "raw" adds the penalty as it is (InvRL). "risk" rescales it every batch so that its
        gradient on the gates and the projection has the norm of the mean risk's, times
        ``penalty_weight`` (:class:`invrec.invariance.MaskObjectives`): InvRL's penalty is
        otherwise about 1e-8 of the risk's pull, V-REx's about 1e-2.
    weighting : "normalized", "mgda" or float in [0, 1], default="normalized"
        ``gamma``, recomputed every batch for the two string options. "normalized" is PaInvRL's
        Pareto weight on unit-normalised gradients
        (:func:`~invrec.invariance.normalized_mgda_weight`, Sener & Koltun's normalised MGDA):
        each objective moves the shared parameters by the same amount, so neither cancels the
        other by its scale. "mgda" is the closed-form MGDA weight of the raw gradients
        (PaInvRL as published): it jumps between 0 and 1 when the two gradients are nearly equal
        (44% of batches at 0 and 43% at 1 on the synthetic data) and answers a stronger penalty
        with an ERM weight near 1. A float is a fixed ERM share (0: InvRL's IRM-only mask loss;
        EIOR: 0.5).
    threshold : None, "auto" or float in [0, 1], default=None
        None hands the learned soft mask to the final model (InvRL, PaInvRL). Otherwise it is
        binarised (:func:`invrec.invariance.binarize_mask`; the learned values stay in
        ``invariant_mask_``): "auto" splits the values into two groups by the threshold that
        minimises the within-group variance and keeps the upper one; a float keeps dimension
        ``j`` when ``(m_j - min m) / (max m - min m) >= threshold``.

    Examples
    --------
    >>> MaskLearning(weighting=0.5).get_params()["weighting"]
    0.5
    """

    _parameter_constraints = {
        "epochs": [Interval(numbers.Integral, 0, None)],
        "sigma": [Interval(numbers.Real, 0, None)],
        "learning_rate": [Interval(numbers.Real, 0, None, closed="neither")],
        "l2": [Interval(numbers.Real, 0, None)],
        "penalty": [StrOptions(set(PENALTIES))],
        "penalty_weight": [Interval(numbers.Real, 0, None)],
        "penalty_growth": [Interval(numbers.Real, 0, None, closed="neither")],
        "penalty_scale": [StrOptions(set(PENALTY_SCALES))],
        "weighting": [StrOptions({"mgda", "normalized"}), Interval(numbers.Real, 0, 1)],
        "threshold": [None, StrOptions({"auto"}), Interval(numbers.Real, 0, 1)],
    }

    def __init__(self, *, epochs=10, sigma=0.01, learning_rate=1e-2, l2=0.0, penalty="invrl",
                 penalty_weight=1.0, penalty_growth=1.05, penalty_scale="raw", weighting="normalized",
                 threshold=None):
        self.epochs = epochs
        self.sigma = sigma
        self.learning_rate = learning_rate
        self.l2 = l2
        self.penalty = penalty
        self.penalty_weight = penalty_weight
        self.penalty_growth = penalty_growth
        self.penalty_scale = penalty_scale
        self.weighting = weighting
        self.threshold = threshold

    def run(self, data, training, env, n_envs, gate, scorer, outer, gammas, history):
        """Continue (or start) the gate and its scorer on the labelled rows; return both."""
        fixed = not isinstance(self.weighting, str)
        gate, scorer, batch_gammas, epochs = learn_invariant_mask(
            data.users, data.items, env, data.n_users, data.n_items, data.features, n_envs=n_envs,
            gate=gate, scorer=scorer, epochs=self.epochs, pareto="fixed" if fixed else self.weighting,
            erm_weight=float(self.weighting) if fixed else 0.0, penalty=self.penalty,
            penalty_weight=self.penalty_weight * self.penalty_growth ** outer,
            penalty_scale=self.penalty_scale, mask_l2=self.l2, sigma=self.sigma, mask_learning_rate=self.learning_rate,
            **training.kwargs())
        gammas.extend(batch_gammas)
        for record in epochs:
            history.append({**record, "outer_iter": outer + 1})
        return gate, scorer


@dataclass
class StageTraining:
    """The backbone settings the stage models train with (the estimator's own)."""

    batch_size: int
    l2_scale: float
    learning_rate: float
    n_negatives: int
    l2_embedding: float
    l2_content: float
    item_l2_ratio: float
    id_dim: int
    content_dim: int
    init_std: float
    loss_weights: tuple
    user_degree: torch.Tensor
    item_degree: torch.Tensor
    generator: torch.Generator

    def kwargs(self):
        return dict(vars(self))


@dataclass
class StageResult:
    """What the stages hand to the final model and to the fitted attributes."""

    environments: torch.Tensor | None          # label code of every training row
    environment_names: np.ndarray | None       # raw labels of the codes (given labels only)
    n_environments: int
    mask: torch.Tensor | None                  # the learned (soft) mask, or None without content
    final_mask: torch.Tensor | None            # the mask the final model uses (binarised or not)
    pareto_weights: list = field(default_factory=list)
    stage_times: dict = field(default_factory=dict)


def run_stages(environments, mask, n_outer_iter, data, training, history, progress=None):
    """Stages 1-2, ``n_outer_iter`` times: environments from the variant view, then the mask.

    Parameters
    ----------
    environments : EnvironmentInference or None
        None when ``data.environments`` holds the user's own labels (no inference).
    mask : MaskLearning
    n_outer_iter : int
    data : FitData
    training : StageTraining
    history : list
        The estimator's ``history_``; stage records are appended.
    progress : tqdm bar, default=None
        Advanced once per stage run (environments, then mask, in every outer iteration).

    Returns
    -------
    StageResult
    """
    for stage in (environments, mask):
        if stage is not None:
            validate_parameters(stage)
    times = {"environments": 0.0, "mask": 0.0, "final": 0.0}
    gammas, learned = [], None
    given = data.environments
    if given is not None:
        codes, uniques = pd.factorize(given, sort=True)
        env = torch.as_tensor(codes, device=data.device)
        names, n_envs = np.asarray(uniques), len(uniques)
    else:
        env, names, n_envs = None, None, environments.n_environments

    def infer(gate, outer):
        start = time.perf_counter()
        variant = None if gate is None else (1.0 - gate()).detach()
        if variant is None and data.features is not None and data.features.shape[1] > 0:
            variant = torch.full((data.features.shape[1],), 0.5, device=data.device)
        before = len(history)
        labels = environments.run(data, training, variant, history, outer)
        seconds = time.perf_counter() - start
        times["environments"] += seconds
        rounds = history[before:]
        logger.info("environments (outer iteration %d/%d): %d round(s) in %.2f s, labels changed "
                    "in the last %.1f%%, sizes %s", outer + 1, n_outer_iter, len(rounds), seconds,
                    100 * rounds[-1]["changed"] if rounds else 0.0,
                    rounds[-1]["sizes"] if rounds else [])
        _advance(progress, "environments", outer)
        return labels

    if data.features is not None and data.features.shape[1] > 0:
        gate = scorer = None
        for outer in range(n_outer_iter):
            if given is None:
                env = infer(gate, outer)
            if mask.epochs > 0:
                start = time.perf_counter()
                gate, scorer = mask.run(data, training, env, n_envs, gate, scorer, outer, gammas, history)
                seconds = time.perf_counter() - start
                times["mask"] += seconds
                values = gate().detach()
                logger.info("mask (outer iteration %d/%d): %d epoch(s) in %.2f s, %d of %d gates above "
                            "0.5, mean ERM weight %.3f", outer + 1, n_outer_iter, mask.epochs, seconds,
                            int((values > 0.5).sum()), values.numel(),
                            float(np.mean(gammas)) if gammas else float("nan"))
            _advance(progress, "mask", outer)
        learned = gate().detach() if gate is not None else torch.full(
            (data.features.shape[1],), 0.5, device=data.device)
    elif given is None:        # id-only data: environments still describe the interactions
        env = infer(None, 0)
    final = None if learned is None else binarize_mask(learned, mask.threshold)
    return StageResult(env, names, n_envs, learned, final, gammas, times)


def _advance(progress, stage, outer):
    if progress is not None:
        progress.update(1)
        progress.set_postfix({"stage": stage, "outer_iter": outer + 1})


def stage_count(environments, n_outer_iter, data):
    """Stage runs :func:`run_stages` makes (the length of its progress bar)."""
    has_content = data.features is not None and data.features.shape[1] > 0
    inferred = environments is not None and data.environments is None
    if not has_content:
        return int(inferred)
    return int(n_outer_iter) * (int(inferred) + 1)


def environment_labels(table, train_pos, column):
    """The user's environment labels of the training rows, from column ``column`` of ``X``.

    ``column`` is an estimator's ``environments`` parameter: only a str names a column; anything
    else means the labels are inferred (returns None).
    """
    if not isinstance(column, str):
        return None
    if column not in table.columns:
        raise ValueError(
            f"environments={column!r} names no column of X (it has "
            f"{list(map(str, table.columns))[:10]}). Pass X as a DataFrame with that column, or "
            "leave environments=None to infer them.")
    labels = table[column].to_numpy()[train_pos]
    if pd.isna(labels).any():
        raise ValueError(f"column {column!r} of X holds missing environment labels; give every row one.")
    return labels


#: Negatives and loss weights of the stage models of an estimator without its own (a rating
#: regressor: the stages still rank interactions, with the backbone's defaults).
STAGE_NEGATIVES, STAGE_LOSS_WEIGHTS = 50, (1.0, 1.0, 1.0, 1.0)


def stage_training(estimator, data):
    """The :class:`StageTraining` of an estimator with the backbone's parameters."""
    return StageTraining(
        batch_size=data.batch_size, l2_scale=data.l2_scale, learning_rate=estimator.learning_rate,
        n_negatives=getattr(estimator, "n_negatives", STAGE_NEGATIVES),
        l2_embedding=data.l2_embedding,
        l2_content=estimator.l2_content, item_l2_ratio=estimator.item_l2_ratio,
        id_dim=estimator.embedding_dim, content_dim=estimator.content_dim,
        init_std=estimator.init_std,
        loss_weights=tuple(getattr(estimator, "loss_weights", STAGE_LOSS_WEIGHTS)),
        user_degree=data.user_degree, item_degree=data.item_degree, generator=data.generator)


def stage_attributes(result, data, user_ids, item_ids):
    """The fitted attributes the stages leave: ``environments_``, ``invariant_mask_``, ...

    Returns a dict of ``environments_`` (DataFrame: user, item, environment of every training
    row), ``invariant_mask_`` (modality -> learned mask values), ``pareto_weights_`` (the ERM weight
    of every mask batch) and ``stage_times_``.
    """
    users = data.users.cpu().numpy()
    items = data.items.cpu().numpy()
    env = result.environments
    labels = env.cpu().numpy() if env is not None else np.zeros(len(users), dtype=np.int64)
    if result.environment_names is not None:
        labels = result.environment_names[labels]
    invariant_mask = {}
    if result.mask is not None:
        values = result.mask.cpu().numpy().astype(np.float64)
        invariant_mask = {name: values[columns] for name, columns in data.feature_slices.items()}
    return {
        "environments_": pd.DataFrame({"user": user_ids[users], "item": item_ids[items],
                                       "environment": labels}),
        "invariant_mask_": invariant_mask,
        "pareto_weights_": np.asarray(result.pareto_weights, dtype=np.float64),
        "stage_times_": dict(result.stage_times),
    }


#: Constraint of a fused model's ``fusion`` parameter: None (the defaults), a mode, or a Fusion.
#: What the fused model makes blind to the variant view of the content (its ``decorrelate``,
#: :meth:`~invrec.invariance.FusedItemModel.decorrelate`): item ids and kept content, one, none.
DECORRELATE = ("both", "ids", "content", "none")

FUSION_CONSTRAINTS = {"fusion": [None, StrOptions(set(FUSION_MODES)), Fusion],
                      "decorrelate": [StrOptions(set(DECORRELATE))]}

#: Constraints of the stage parameters of an invariant method, and of its item-id weight.
STAGE_CONSTRAINTS = {
    "environments": [None, EnvironmentInference, str],
    "mask": [None, MaskLearning],
    "n_outer_iter": [Interval(numbers.Integral, 1, None)],
    "item_id_weight": [Interval(numbers.Real, 0, None)],
}

#: The stage settings that were constructor parameters of PaInvRL and EIOR, and where they are now.
RENAMED_STAGE_PARAMETERS = {
    "n_environments": "use environments=EnvironmentInference(n_environments=...) "
                      "(environments__n_environments in set_params and searches)",
    "environment_column": "pass the column's name as environments='...'",
    "env_embedding_dim": "use environments=EnvironmentInference(embedding_dim=...)",
    "env_max_rounds": "use environments=EnvironmentInference(max_rounds=...)",
    "env_tol": "use environments=EnvironmentInference(tol=...)",
    "env_epochs": "use environments=EnvironmentInference(epochs=...)",
    "mask_epochs": "use mask=MaskLearning(epochs=...) (mask__epochs in searches)",
    "mask_sigma": "use mask=MaskLearning(sigma=...)",
    "mask_learning_rate": "use mask=MaskLearning(learning_rate=...)",
    "mask_l2": "use mask=MaskLearning(l2=...)",
    "penalty": "use mask=MaskLearning(penalty=...)",
    "penalty_weight": "use mask=MaskLearning(penalty_weight=...)",
    "penalty_growth": "use mask=MaskLearning(penalty_growth=...)",
    "pareto": "use mask=MaskLearning(weighting='mgda') or a fixed ERM share, "
              "MaskLearning(weighting=0.5)",
    "erm_weight": "use mask=MaskLearning(weighting=...) (a float is the fixed ERM share)",
    "mask_erm_weight": "use mask=MaskLearning(weighting=...) (a float is the fixed ERM share)",
    "mask_threshold": "use mask=MaskLearning(threshold=...)",
}

#: Former flat parameters of the fused model's parts (EIOR's) -> their nested spelling.
RENAMED_FUSED_PARAMETERS = {
    "self_attention": "use fusion=Fusion(self_attention=...) (fusion__self_attention in searches)",
    "fusion_gate": "use fusion=Fusion(gate=...) (fusion__gate in searches)",
    "fusion_prior": "use fusion=Fusion(prior=...) (fusion__prior in searches)",
    "fusion_objective": "use objective=FusedObjective(fuse=...) (objective__fuse in searches)",
    "w_irm": "use objective=FusedObjective(w_irm=...) (objective__w_irm in searches)",
    "w_erm": "use objective=FusedObjective(w_erm=...) (objective__w_erm in searches)",
    "irm_weight": "use objective=FusedObjective(irm_weight=...) (objective__irm_weight in searches)",
}


class InvariantStagesMixin:
    """What an estimator whose ``environments``, ``mask`` and ``n_outer_iter`` are the stages
    gets: the user's own environment labels read at fit time, the stages run and their fitted
    attributes set, and the final stage timed (PaInvRL and EIOR)."""

    def _prepare_fit(self, data, table, y, train_pos):
        super()._prepare_fit(data, table, y, train_pos)
        data.environments = environment_labels(table, train_pos, self.environments)

    def _run_stages(self, data):
        """Stages 1-2 (:func:`run_stages`); sets ``environments_``, ``invariant_mask_``, ...

        A warm start (``warm_start=True``) runs no stage: the final model continues on the
        environments and mask of the fit it continues, which needs the same training rows.
        """
        if data.warm is not None:
            return self._warm_stages(data)
        environments = self._part("environments")
        bar = progress_bar(stage_count(environments, self.n_outer_iter, data), getattr(self, "verbose", 0),
                           f"{type(self).__name__} stages", unit="stage")
        try:
            result = run_stages(environments, self._part("mask"), self.n_outer_iter,
                                data, stage_training(self, data), self.history_, progress=bar)
        finally:
            if bar is not None:
                bar.close()
        vars(self).update(stage_attributes(result, data, self.user_ids_, self.item_ids_))
        data.stage_result = result
        return result

    def _warm_stages(self, data):
        warm, name = data.warm, type(self).__name__
        if warm.stages is None:
            raise ValueError(
                f"warm_start=True continues {name}'s final model on the environments and mask of the "
                "fit it continues, which are kept in memory only: this estimator was loaded or "
                "unpickled without them. Set warm_start=False to fit from scratch.")
        users, items = warm.rows
        if not (users.shape == data.users.shape and bool((users.to(data.device) == data.users).all())
                and bool((items.to(data.device) == data.items).all())):
            raise ValueError(
                f"warm_start=True continues {name}'s final model on the stages' environments, one per "
                f"training row, so it needs the same training rows: the first fit trained on "
                f"{len(users)} rows, this one on {len(data.users)} others. Pass the same X (and "
                "random_state, which carves the validation rows), or set warm_start=False to run "
                "the stages again.")
        data.stage_result = warm.stages
        return warm.stages

    @contextlib.contextmanager
    def _timed(self, stage):
        """Record the seconds of the block in ``stage_times_[stage]``."""
        start = time.perf_counter()
        yield
        self.stage_times_[stage] = time.perf_counter() - start
