"""The one mini-batch training loop of invrec, with per-batch logs and a monitor for early stopping.

Every trained model, and both stages of the invariant methods, train through :func:`train_epochs`:
epochs of shuffled mini-batches, a loss per batch, an optional validation callable after each
epoch, and one history record per epoch. The pieces, in the manner of skorch's callbacks:

* a **batch loss** ``batch_loss(rows)`` returns the loss of a LongTensor of training-row positions,
  or ``(loss, logs)`` where ``logs`` maps names to scalar tensors (detached or not): the loop
  averages each log over the epoch's rows and writes it in the epoch's record, so a method can
  report its terms (environment risks, penalty, attention) without bookkeeping of its own;
* a **monitor** names the validation metric, the key under which it is recorded, and which way is
  better (:class:`EarlyStopping`);
* the **history** is a list of flat dicts, one per epoch, each with ``stage``, ``epoch``,
  ``train_loss``, ``fit_time`` (s), the batch logs and, with validation, the monitored value and
  ``best``.

A loss that is not finite (NaN or inf: a step size too large for the data, extreme content or
weights) raises :class:`TrainingDivergedError` at the end of its epoch, naming the stage and the
epoch, as do parameters that are not finite when the loop ends. The estimator's ``fit`` then
restores its previous state: no model that predicts NaN is ever left fitted.

Ctrl-C: a ``KeyboardInterrupt`` is not caught here, nor anywhere in invrec: in every stage and in
the final loop alike, it reaches the estimator's ``fit``, which restores the estimator's previous
state (a fit is atomic: the previous model, or an unfitted estimator) and re-raises it, so a script
stops where it was interrupted. This is unlike scikit-learn's ``MLPClassifier``, which warns and
keeps the half-trained model: a half-trained invrec model would be a silent wrong result (its
history, environments and mask from different points of training). To bound a run, set
``max_epochs`` or early stopping rather than interrupting it.

**Progress and logging.** With an estimator's ``verbose`` set, :func:`progress_bar` draws a tqdm
bar over the epochs of the final loop and one over the stages of PaInvRL and EIOR. Every call of
:func:`train_epochs` logs through the ``logging`` module (logger ``invrec.training``): one DEBUG
line per epoch with its record, one line per call (epochs run, seconds, where early stopping
ended it; INFO for the final loop, DEBUG for a stage's, whose summary the stage logs at INFO:
logger ``invrec.invariance.stages``). ``invrec.base`` logs the start and end of every fit.
invrec adds no handler of its own, so nothing is shown unless the application configures
logging.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import torch


__all__ = ["EarlyStopping", "TrainingDivergedError", "train_epochs", "iterate_minibatches", "state_copy",
           "resolve_batch_size", "resolve_l2_embedding", "progress_bar"]

logger = logging.getLogger(__name__)


def progress_bar(total, verbose, desc, unit="epoch"):
    """A tqdm bar over ``total`` steps when ``verbose``, else None."""
    if not verbose:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, leave=True)


def _brief(record):
    """A record's scalar entries, rounded, for a log line."""
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in record.items() if isinstance(v, (int, float)) and not isinstance(v, bool))


#: ``batch_size="auto"``: the largest power of two that gives an epoch at least
#: ``AUTO_MIN_STEPS`` steps, clipped to ``AUTO_BATCH_RANGE``. The L2 weights of the backbone are
#: tuned per step at ``L2_REFERENCE_BATCH`` interactions (TikTok's and Last.fm's batch, where
#: ``"auto"`` gives 4096 too), so under ``"auto"`` they are charged at that reference whatever
#: batch the data gets (see :func:`resolve_batch_size`).
AUTO_MIN_STEPS = 10
AUTO_BATCH_RANGE = (256, 4096)
L2_REFERENCE_BATCH = 4096


#: ``l2_embedding="auto"``: ``L2_REFERENCE`` times the training graph's mean degree over
#: ``L2_REFERENCE_DEGREE``, TikTok's (59,541 rows over 9,298 users and 6,245 items: 7.66), where
#: 1e-2 was selected on the validation split.
L2_REFERENCE = 1e-2
L2_REFERENCE_DEGREE = 7.66


def resolve_l2_embedding(l2_embedding, users, items):
    """The id-embedding L2 weight of a fit: as given, or ``"auto"`` grown with the data's density.

    Parameters
    ----------
    l2_embedding : float or "auto"
        The estimator's parameter. ``"auto"`` is ``1e-2 * degree / 7.66``, where ``degree`` is
        the mean number of training interactions per user and item that has one
        (``2 n / (n_users + n_items)``) and 7.66 TikTok's, where 1e-2 was selected: each id row
        of a denser graph meets more data per step, and the same L2 would restrain it less.
        Last.fm (23.9 rows per user, 31.1 per item: degree 27.0) gets 3.5e-2, next to its
        validation grid's 3e-2.
    users, items : int ndarray of shape (n_rows,)
        Encoded training interactions.

    Returns
    -------
    float

    Examples
    --------
    >>> import numpy as np
    >>> resolve_l2_embedding("auto", np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1]))  # degree 2
    0.0026109660574412533
    >>> resolve_l2_embedding(1e-4, np.array([0]), np.array([0]))
    0.0001
    """
    if isinstance(l2_embedding, str):
        if l2_embedding != "auto":
            raise ValueError(f'l2_embedding must be a non-negative float or "auto"; got {l2_embedding!r}.')
        nodes = np.unique(np.asarray(users)).size + np.unique(np.asarray(items)).size
        degree = 2.0 * len(users) / max(nodes, 1)
        return L2_REFERENCE * degree / L2_REFERENCE_DEGREE
    return float(l2_embedding)


def resolve_batch_size(batch_size, n_rows):
    """The batch size of a fit and the per-step scale of its L2 terms.

    Parameters
    ----------
    batch_size : int or "auto"
        The estimator's parameter. An int is used as given, with the L2 terms divided by it
        (InvRL's summed objective rescaled to a mean). ``"auto"`` takes the largest power of two
        at most ``n_rows / AUTO_MIN_STEPS``, clipped to ``AUTO_BATCH_RANGE`` (256 to 4096): a
        small dataset still gets enough steps per epoch for every stage to move (3,240 training
        rows: 256, 13 steps), a large one the batch the L2 weights were tuned at (TikTok,
        Last.fm: 4096). Its L2 terms are divided by ``L2_REFERENCE_BATCH`` (4096), which keeps
        each step's balance of data and regularisation gradients the one the defaults were tuned
        at: a row's share of a mean loss shrinks with the batch, and so does its L2 share.
    n_rows : int
        Training interactions of the fit.

    Returns
    -------
    batch_size : int
    l2_scale : float
        Factor of the whole-matrix L2 terms of one step.

    Examples
    --------
    >>> resolve_batch_size("auto", 3240)
    (256, 0.000244140625)
    >>> resolve_batch_size("auto", 60_000)
    (4096, 0.000244140625)
    >>> resolve_batch_size(512, 3240)
    (512, 0.001953125)
    """
    if isinstance(batch_size, str):
        if batch_size != "auto":
            raise ValueError(f'batch_size must be a positive int or "auto"; got {batch_size!r}.')
        low, high = AUTO_BATCH_RANGE
        target = max(int(n_rows) // AUTO_MIN_STEPS, 1)
        power = 1 << (target.bit_length() - 1)          # largest power of two <= target
        return int(min(max(power, low), high)), 1.0 / L2_REFERENCE_BATCH
    batch_size = int(batch_size)
    return batch_size, 1.0 / batch_size

#: What to lower when a stage diverges: the parameter holding that stage's step size.
_STEP_SIZE = {
    "final": "learning_rate",
    "environments": "learning_rate (the environment models train with the estimator's)",
    "mask": "the mask stage's step size (mask=MaskLearning(learning_rate=...))",
}


class TrainingDivergedError(FloatingPointError, ValueError):
    """A training loss or the trained parameters became NaN or infinite.

    A :class:`FloatingPointError` and a :class:`ValueError`. Raised by :func:`train_epochs`; the
    estimator's ``fit`` leaves the estimator as it was before the call.

    Attributes
    ----------
    stage : str
        The stage that diverged ("environments", "mask" or "final").
    epoch : int
        The epoch whose loss was not finite (the last epoch for non-finite parameters).
    """

    def __init__(self, message, *, stage, epoch):
        super().__init__(message)
        self.stage, self.epoch = stage, epoch


def _diverged(stage, epoch, what):
    step = _STEP_SIZE.get(stage, "the learning rate of this stage")
    return TrainingDivergedError(
        f"Training diverged in stage {stage!r}, epoch {epoch}: {what}. Lower {step}, and check "
        "item_features and y for extreme values. The estimator is left as it was before fit.",
        stage=stage, epoch=epoch)


class EarlyStopping:
    """Which validation metric to watch, which way is better, and how long to wait.

    Parameters
    ----------
    monitor : str
        History key of the monitored value (for example ``"valid_ndcg@20"`` or ``"valid_rmse"``).
    lower_is_better : bool, default=False
        True for losses and errors, False for ranking metrics.
    patience : int or None, default=30
        Stop after this many epochs without improvement; None never stops early (the best epoch is
        still kept when ``restore_best``).
    restore_best : bool, default=True
        Load the best epoch's parameters back into the module at the end.

    Examples
    --------
    >>> stop = EarlyStopping("valid_rmse", lower_is_better=True, patience=2)
    >>> [stop.improved(v) for v in (1.0, 0.9, 0.95)], stop.stale
    ([True, True, False], 1)
    """

    def __init__(self, monitor, *, lower_is_better=False, patience=30, restore_best=True):
        self.monitor = monitor
        self.lower_is_better = bool(lower_is_better)
        self.patience = patience
        self.restore_best = bool(restore_best)
        self.best, self.stale = None, 0

    def improved(self, value):
        """Record ``value``; True when it is the best so far (NaN never is)."""
        better = not np.isnan(value) and (
            self.best is None or (value < self.best if self.lower_is_better else value > self.best))
        if better:
            self.best, self.stale = value, 0
        else:
            self.stale += 1
        return better

    @property
    def should_stop(self):
        return self.patience is not None and self.stale >= self.patience


def iterate_minibatches(n, batch_size, *, shuffle=True, generator=None, device=None):
    """Index batches covering ``0..n-1`` once (one epoch).

    Parameters
    ----------
    n : int
        Number of rows (training interactions).
    batch_size : int
        Rows per batch; the last batch is shorter when ``batch_size`` does not divide ``n``.
    shuffle : bool, default=True
        Walk a fresh random permutation (drawn from ``generator``); False walks ``0..n-1`` in order.
    generator : torch.Generator, default=None
        Source of the permutation.
    device : torch.device or str, default=None
        Device of the yielded tensors; None means the generator's device (CPU without one).

    Yields
    ------
    LongTensor of shape (batch_size,) or shorter (the last one)

    Examples
    --------
    >>> [b.tolist() for b in iterate_minibatches(5, 2, shuffle=False)]
    [[0, 1], [2, 3], [4]]
    """
    n, batch_size = int(n), int(batch_size)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}.")
    draw_device = generator.device if generator is not None else torch.device("cpu" if device is None else device)
    if shuffle:
        order = torch.randperm(n, generator=generator, device=draw_device)
    else:
        order = torch.arange(n, device=draw_device)
    if device is not None:
        order = order.to(device)
    for start in range(0, n, batch_size):
        yield order[start:start + batch_size]


def state_copy(module):
    """A detached copy of ``module``'s state dict (the best epoch's parameters)."""
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _split_loss(output):
    if isinstance(output, tuple):
        return output[0], output[1]
    return output, None


def train_epochs(module, optimizer, batch_loss, *, n_rows, max_epochs, batch_size, generator,
                 device, history, stage="final", validate=None, stopping=None, progress=None,
                 extra=None):
    """Train ``module`` for up to ``max_epochs`` epochs; append one record per epoch to ``history``.

    Parameters
    ----------
    module : torch.nn.Module
        Put in train mode for the batches and eval mode for validation and at the end.
    optimizer : torch.optim.Optimizer
    batch_loss : callable
        ``batch_loss(rows)`` -> loss, or (loss, logs); see the module docstring.
    n_rows, max_epochs, batch_size : int
    generator : torch.Generator
        Source of the batch permutations.
    device : torch.device
    history : list
        Records are appended to it.
    stage : str, default="final"
        Written in every record.
    validate : callable, default=None
        ``validate()`` -> float after every epoch, recorded under ``stopping.monitor``.
    stopping : EarlyStopping, default=None
        Needed with ``validate``: the key, the direction, the patience.
    progress : tqdm bar, default=None
        Advanced once per epoch, its postfix showing the record's floats.
    extra : dict, default=None
        Constant entries of every record (for example ``{"outer_iter": 2}``).

    Returns
    -------
    list of dict
        The records of this call (also appended to ``history``).

    Raises
    ------
    TrainingDivergedError
        If an epoch's training loss is NaN or infinite (checked once per epoch, where the loss is
        read anyway: no extra device synchronisation per batch), or if a parameter of ``module``
        is at the end.
    """
    records, best_state, began = [], None, time.perf_counter()
    for epoch in range(1, int(max_epochs) + 1):
        start = time.perf_counter()
        module.train()
        total = torch.zeros((), device=device)
        sums = {}
        for rows in iterate_minibatches(n_rows, batch_size, generator=generator, device=device):
            loss, logs = _split_loss(batch_loss(rows))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach() * len(rows)
            for key, value in (logs or {}).items():
                value = torch.as_tensor(value, device=device).detach()
                sums[key] = sums.get(key, 0.0) + value * len(rows)
        train_loss = float(total) / n_rows
        if not np.isfinite(train_loss):
            raise _diverged(stage, epoch, f"the training loss is {train_loss}")
        record = {"stage": stage, **(extra or {}), "epoch": epoch, "train_loss": train_loss}
        for key, value in sums.items():
            mean = (value / n_rows).cpu()
            record[key] = float(mean) if mean.ndim == 0 else mean.tolist()
        record["fit_time"] = time.perf_counter() - start
        if validate is not None:
            module.eval()
            with torch.no_grad():
                value = float(validate())
            record[stopping.monitor] = value
            if stopping.improved(value):
                record["best"] = True
                if stopping.restore_best:
                    best_state = state_copy(module)
        history.append(record)
        records.append(record)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("%s epoch %d: %s", stage, epoch, _brief({k: v for k, v in record.items()
                                                                   if k not in ("stage", "epoch")}))
        if progress is not None:
            progress.update(1)
            progress.set_postfix({k: round(v, 4) for k, v in record.items() if isinstance(v, float)})
        if stopping is not None and validate is not None and stopping.should_stop:
            break
    if best_state is not None:
        module.load_state_dict(best_state)
    level = logging.INFO if stage == "final" else logging.DEBUG    # stages log their own summary
    if logger.isEnabledFor(level) and records:
        ended = ""
        if stopping is not None and validate is not None:
            best = [r["epoch"] for r in records if r.get("best")]
            best_value = float("nan") if stopping.best is None else stopping.best
            ended = (f"; best {stopping.monitor} {best_value:.4g} at epoch {best[-1] if best else '-'}"
                     + (f", stopped after {stopping.patience} epochs without improvement"
                        if stopping.should_stop else ""))
        where = "".join(f" {k} {v}" for k, v in (extra or {}).items())
        logger.log(level, "%s%s: %d epoch(s) in %.2f s, train loss %.4g%s", stage, where, len(records),
                    time.perf_counter() - began, records[-1]["train_loss"], ended)
    bad = [name for name, p in module.named_parameters() if not bool(torch.isfinite(p).all())]
    if bad:
        raise _diverged(stage, records[-1]["epoch"] if records else 0,
                        f"parameters {bad[:3]} hold NaN or inf after the last step")
    module.eval()
    return records
