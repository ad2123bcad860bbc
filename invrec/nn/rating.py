"""Explicit ratings: the rating scale, the map from a model score to a rating, the rating loss.

With explicit feedback (MovieLens 1-5 stars for example) a recommender's dot-product score ``s_ui``
becomes a rating by the classic biased form (Koren, Bell and Volinsky, "Matrix factorization
techniques for recommender systems", IEEE Computer 2009)::

    r_ui = mu + b_u + b_i + s_ui

where ``mu`` is the training mean (a constant) and ``b_u``, ``b_i`` learned biases
(:class:`RatingHead`). It is trained with the squared error (:func:`rating_loss`) and, at
prediction time, clipped to the observed scale (:meth:`RatingScale.clip`), which can only lower
the error of a prediction outside it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

__all__ = ["RatingScale", "RatingHead", "rating_loss"]


@dataclass(frozen=True)
class RatingScale:
    """The scale of explicit ratings seen in training.

    Attributes
    ----------
    low, high : float
        Smallest and largest training rating (predictions are clipped to ``[low, high]``).
    mean : float
        Mean training rating, the offset ``mu`` of :class:`RatingHead`.

    Examples
    --------
    >>> scale = RatingScale.from_ratings([1, 5, 3, 4])
    >>> scale
    RatingScale(low=1.0, high=5.0, mean=3.25)
    >>> scale.clip([0.2, 3.3, 7.0]).tolist()
    [1.0, 3.3, 5.0]
    """

    low: float
    high: float
    mean: float

    @classmethod
    def from_ratings(cls, ratings):
        """Scale of the given training ratings.

        Parameters
        ----------
        ratings : array-like of shape (n,)
            Explicit ratings, finite, at least one.

        Returns
        -------
        RatingScale

        Raises
        ------
        ValueError
            If ``ratings`` is empty or holds a non-finite value.
        """
        values = np.asarray(ratings, dtype=np.float64).ravel()
        if values.size == 0:
            raise ValueError("ratings is empty; explicit mode needs at least one rating in y.")
        if not np.isfinite(values).all():
            raise ValueError("ratings holds NaN or infinite values; drop or fill those rows of y.")
        return cls(float(values.min()), float(values.max()), float(values.mean()))

    def clip(self, predictions):
        """``predictions`` clipped to ``[low, high]`` (a Tensor stays a Tensor, else ndarray)."""
        if isinstance(predictions, torch.Tensor):
            return predictions.clamp(self.low, self.high)
        return np.clip(np.asarray(predictions, dtype=np.float64), self.low, self.high)


class RatingHead(nn.Module):
    """Map dot-product scores to ratings: ``r_ui = mu + b_u + b_i + s_ui``.

    Parameters
    ----------
    n_users, n_items : int
        Sizes of the encoded index ranges.
    offset : float, default=0.0
        ``mu``, a constant (the training mean, :attr:`RatingScale.mean`); stored as a buffer.
    device : torch.device, default=None
        Where the parameters live (None: torch's default device).

    Attributes
    ----------
    user_bias : Parameter of shape (n_users,)
    item_bias : Parameter of shape (n_items,)
        Both start at 0, so an untrained head predicts ``mu + s_ui``.

    Examples
    --------
    >>> import torch
    >>> head = RatingHead(2, 3, offset=3.5)
    >>> head(torch.tensor([0, 1]), torch.tensor([2, 0]), torch.tensor([0.5, -1.0])).tolist()
    [4.0, 2.5]
    """

    def __init__(self, n_users, n_items, *, offset=0.0, device=None):
        super().__init__()
        n_users, n_items = int(n_users), int(n_items)
        if n_users < 1 or n_items < 1:
            raise ValueError(f"n_users and n_items must be >= 1; got {n_users} and {n_items}.")
        self.user_bias = nn.Parameter(torch.zeros(n_users, device=device))
        self.item_bias = nn.Parameter(torch.zeros(n_items, device=device))
        self.register_buffer("offset", torch.tensor(float(offset), device=device))

    def forward(self, users, items, scores):
        """Ratings of (user, item) pairs with model scores ``scores``.

        Parameters
        ----------
        users, items : LongTensor of the same shape
            Encoded indices.
        scores : Tensor broadcastable against them
            The model's scores ``s_ui``.

        Returns
        -------
        Tensor
            ``offset + user_bias[users] + item_bias[items] + scores``.
        """
        return (self.offset + self.user_bias.index_select(0, users.reshape(-1)).view(users.shape)
                + self.item_bias.index_select(0, items.reshape(-1)).view(items.shape) + scores)

    def score_matrix(self, users, scores):
        """Ratings of ``users`` against every item from their ``(n, n_items)`` score matrix."""
        return self.offset + self.user_bias[users].unsqueeze(1) + self.item_bias + scores

    def extra_repr(self):
        return (f"n_users={self.user_bias.shape[0]}, n_items={self.item_bias.shape[0]}, "
                f"offset={float(self.offset):.4g}")


def rating_loss(predictions, targets, *, weights=None, reduction="mean"):
    """Squared error of predicted ratings, ``w * (r_hat - r)^2``.

    Parameters
    ----------
    predictions, targets : Tensor of shape (B,)
        Predicted and observed ratings.
    weights : Tensor of shape (B,), default=None
        Per-row weights (None: all 1).
    reduction : {"mean", "sum", "none"}, default="mean"
        "mean" divides the weighted sum by ``B`` (the mean squared error when unweighted).

    Returns
    -------
    Tensor
        Scalar, or shape (B,) with ``reduction="none"``.

    Examples
    --------
    >>> import torch
    >>> rating_loss(torch.tensor([3.0, 5.0]), torch.tensor([4.0, 2.0])).item()   # (1 + 9) / 2
    5.0
    """
    if predictions.shape != targets.shape or predictions.ndim != 1:
        raise ValueError(f"predictions and targets must be 1-D of the same shape; got "
                         f"{tuple(predictions.shape)} and {tuple(targets.shape)}.")
    per_row = (predictions - targets).square()
    if weights is not None:
        per_row = per_row * weights
    if reduction == "mean":
        return per_row.mean()
    if reduction == "sum":
        return per_row.sum()
    if reduction == "none":
        return per_row
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none'; got {reduction!r}.")
