"""Explicit ratings in, ratings out: what a rating regressor adds to a recommender.

:class:`RatingRegressorMixin` turns a recommender whose torch model carries a
:class:`~invrec.nn.RatingHead` (``module_.head``: ``mu + b_u + b_i`` added to the model's score)
into a regressor of ratings, the way scikit-learn's ``RegressorMixin`` sits in front of an
estimator: ``y`` is required (the ratings), the training rating scale is kept, early stopping
watches the validation RMSE, ``predict`` clips to the training scale and ``score`` is the
negated RMSE.

Every finite ``y`` is a rating: a 0-4 scale, a centred one (-2..2) or any other keeps all its
rows (a recommender's ``y`` is a weight instead, where 0 drops the row). NaN or infinite
ratings, in ``y`` or in the ``rating`` column of ``validation_data``, are refused.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from sklearn.utils import RegressorTags

from .metrics import make_rating_scorer, rmse
from .nn import RatingScale

__all__ = ["RATING_COLUMN", "RatingRegressorMixin"]

#: Column of ``validation_data`` (a DataFrame), or of ``X`` in ``score``, read as ratings.
RATING_COLUMN = "rating"


class RatingRegressorMixin:
    """Mixin of a rating regressor; put it before the recommender base class.

    The model (``module_``) must have ``score_users``, ``forward``, ``score_new_items`` and a
    ``head`` (:class:`~invrec.nn.RatingHead`) added during the fit.
    """

    _monitor = ("valid_rmse", True)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.estimator_type = "regressor"           # sklearn.base.is_regressor is True
        tags.regressor_tags = RegressorTags()
        tags.target_tags.required = True
        return tags

    # ------------------------------------------------------------------ ratings in
    def _check_target(self, y):
        """``y`` as ratings: numeric and finite, on any scale (zero and negative ratings are ratings)."""
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is "
                             "None: pass the ratings as y (fit(X, y)), or rank interactions "
                             "without ratings with a recommender (EIORRecommender for EIOR).")
        return _check_ratings(y, "y", fix="drop those rows of X and y, or fill them")

    def _interaction_rows(self, y):
        """Every row is an interaction: a rating of 0 or below is a rating, not a weight of 0."""
        return np.ones(len(y), dtype=bool)

    def _prepare_fit(self, data, table, y, train_pos):
        super()._prepare_fit(data, table, y, train_pos)
        self.rating_scale_ = RatingScale.from_ratings(y[train_pos])

    def _prepare_validation(self, data, valid_table, known):
        if data.validation_targets is not None:          # carved from X: y of those rows
            return
        if RATING_COLUMN not in valid_table.columns:
            raise ValueError(f"{type(self).__name__} needs validation_data as a DataFrame with a "
                             f"{RATING_COLUMN!r} column (the held-out ratings); or leave it None "
                             "to carve validation_fraction of X.")
        ratings = _check_ratings(valid_table[RATING_COLUMN], f"validation_data's {RATING_COLUMN!r} column",
                                 fix="drop those rows, e.g. validation_data.dropna(subset=['rating'])")
        data.validation_targets = ratings[known]

    def _validation_score(self, data):
        """RMSE on the validation ratings (lower is better)."""
        users, items = data.validation
        pred = self._score_pairs(users, items).cpu().double().numpy()
        return rmse(data.validation_targets, pred)

    # ------------------------------------------------------------------ ratings out
    def _score_users(self, users, catalog=None):
        """Predicted ratings of every catalog item, unclipped (``recommend`` ranks by them)."""
        users = torch.as_tensor(users, device=self._inference_device())
        return self.module_.head.score_matrix(users, self.module_.score_users(users, item_vectors=catalog))

    def _score_pairs(self, users, items):
        device = self._inference_device()
        users, items = torch.as_tensor(users, device=device), torch.as_tensor(items, device=device)
        return self.rating_scale_.clip(self.module_.head(users, items, self.module_(users, items)))

    def _score_new_items(self, users, features):
        users = torch.as_tensor(users, device=self._inference_device())
        scores = self.module_.score_new_items(users, features.to(users.device))
        head = self.module_.head
        return self.rating_scale_.clip(head.offset + head.user_bias[users].unsqueeze(1) + scores)

    def score(self, X, y=None):
        """Negated RMSE with ratings (``y`` or a ``rating`` column of ``X``), else NDCG@20.

        Returns
        -------
        score : float
        """
        self._check_fitted()
        if y is not None or (isinstance(X, pd.DataFrame) and RATING_COLUMN in X.columns):
            return make_rating_scorer("rmse", skip_missing=self.handle_unknown == "ignore")(self, X, y)
        return super().score(X, y)


def _check_ratings(values, name, *, fix):
    """``values`` as a float64 array of finite ratings, else a ValueError naming the rows."""
    try:
        ratings = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must hold numeric ratings; got values such as "
                         f"{list(np.asarray(values, dtype=object).ravel()[:3])}.") from None
    bad = ~np.isfinite(ratings)
    if bad.any():
        first = int(np.argmax(bad))
        raise ValueError(f"{name} holds {int(bad.sum())} NaN or infinite rating(s), first at row "
                         f"{first} ({ratings[first]}); every rating must be a finite number: {fix}.")
    limit = float(np.finfo(np.float32).max)
    if ratings.size and np.abs(ratings).max() > limit:
        raise ValueError(f"{name} holds ratings beyond float32's range (|rating| > {limit:.3g}), "
                         "where models train; rescale them.")
    return ratings
