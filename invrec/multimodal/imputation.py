"""Cross-modal imputation: a missing modality predicted from the item's available ones.

The mean fill (:meth:`ItemFeatures.fill_missing`) gives every item without, say, its text the
same text vector, whatever its audio says. :class:`CrossModalImputer` uses what the item has:
for every ordered pair of modalities (source ``s``, target ``t``) a ridge regression from ``s``
to ``t`` is fitted on the reference items that have both, its penalty chosen by efficient
leave-one-out (:class:`sklearn.linear_model.RidgeCV`), and a missing block is the mean of the
predictions from the item's available modalities. Ridge predictions shrink towards the mean
when the source says little about the target, so a weak modality imputes little more than the
mean fill, and a strong one much more.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.linear_model import RidgeCV

__all__ = ["CrossModalImputer"]

#: Ridge penalties tried by leave-one-out; the features are L2-normalised rows in invrec.
DEFAULT_ALPHAS = tuple(10.0 ** np.arange(-3.0, 3.5, 0.5))


class CrossModalImputer(BaseEstimator):
    """Fill an item's missing modalities with ridge predictions from its available ones.

    Parameters
    ----------
    alphas : sequence of float, default=10 ** (-3, -2.5, ..., 3)
        Ridge penalties; each pair's is chosen by leave-one-out error over its reference rows.
    min_rows : int, default=10
        Pairs with fewer reference items having both modalities get no regression (their
        target is then predicted from the other sources, or mean-filled).

    Attributes
    ----------
    modalities_ : tuple of str
    means_ : dict of str to ndarray of shape (d_m,)
        Mean of the available reference rows of each modality: the fill of an item without
        any usable source.
    coefs_ : dict of (str, str) to (ndarray of shape (d_t, d_s), ndarray of shape (d_t,))
        Weights and intercept of each fitted ``(source, target)`` regression.
    alphas_ : dict of (str, str) to float
        The penalty chosen for each pair.

    Examples
    --------
    >>> import numpy as np
    >>> from invrec.features import ItemFeatures
    >>> rng = np.random.default_rng(0)
    >>> audio = rng.normal(size=(50, 3))
    >>> feats = ItemFeatures({"audio": audio, "text": audio @ rng.normal(size=(3, 4))})
    >>> imputer = CrossModalImputer().fit(feats)
    >>> text_lost = feats.with_missing(0.2, random_state=0)
    >>> filled = imputer.transform(text_lost)
    >>> bool(np.isnan(filled["text"]).any()), bool(np.allclose(filled["text"], feats["text"], atol=1e-2))
    (False, True)
    """

    def __init__(self, alphas=DEFAULT_ALPHAS, min_rows=10):
        self.alphas = alphas
        self.min_rows = min_rows

    def fit(self, features, reference_items=None):
        """Fit one regression per ordered pair of modalities on the reference items.

        Parameters
        ----------
        features : ItemFeatures
            Missing modalities are NaN rows.
        reference_items : array-like, default=None
            Ids to fit on, typically the training items; None uses every item.

        Returns
        -------
        self
        """
        alphas = np.asarray(tuple(self.alphas), dtype=float)
        if alphas.ndim != 1 or not len(alphas) or not (np.isfinite(alphas) & (alphas > 0)).all():
            raise ValueError(f"alphas must be positive finite floats; got {self.alphas!r}.")
        ref = features if reference_items is None else features.reindex(reference_items)
        self.modalities_ = ref.modalities
        self.means_ = ref.fill_values("mean")
        avail = ref.availability
        self.coefs_, self.alphas_ = {}, {}
        for s, source in enumerate(self.modalities_):
            for t, target in enumerate(self.modalities_):
                rows = avail[:, s] & avail[:, t]
                if s == t or rows.sum() < self.min_rows:
                    continue
                model = RidgeCV(alphas=alphas).fit(ref[source][rows].astype(np.float64),
                                                   ref[target][rows].astype(np.float64))
                self.coefs_[source, target] = (model.coef_.reshape(ref.dims[target], -1),
                                               np.ravel(model.intercept_))
                self.alphas_[source, target] = float(model.alpha_)
        return self

    def predict(self, features):
        """Each modality of each item predicted from the item's *other* available modalities.

        Available blocks are ignored as targets (an item's own text does not predict its text),
        so this is what the item would get if it lost that modality. A block no source can
        predict is the mean.

        Parameters
        ----------
        features : ItemFeatures
            With the fitted modalities (others are ignored).

        Returns
        -------
        ItemFeatures
            Same items, the fitted modalities, without NaN.
        """
        self._check_fitted(features)
        avail = features.select_modalities(self.modalities_).availability
        data = {}
        for target in self.modalities_:
            total = np.zeros((features.n_items, len(self.means_[target])))
            count = np.zeros(features.n_items)
            for s, source in enumerate(self.modalities_):
                if (source, target) not in self.coefs_:
                    continue
                rows = avail[:, s]
                coef, intercept = self.coefs_[source, target]
                total[rows] += features[source][rows].astype(np.float64) @ coef.T + intercept
                count[rows] += 1
            out = np.where(count[:, None] > 0, total / np.maximum(count, 1)[:, None], self.means_[target])
            data[target] = out.astype(features[target].dtype)
        return features._new(data, features.item_ids)

    def transform(self, features):
        """Missing blocks replaced by :meth:`predict`'s; available blocks kept as they are.

        Returns
        -------
        ItemFeatures
            A copy without NaN in the fitted modalities (others are kept as they are).
        """
        predicted = self.predict(features)
        avail = features.availability
        data = {}
        for j, name in enumerate(features.modalities):
            data[name] = (np.where(avail[:, [j]], features[name], predicted[name])
                          if name in self.modalities_ else features[name])
        return features._new(data, features.item_ids)

    def _check_fitted(self, features):
        if not hasattr(self, "coefs_"):
            raise ValueError("this CrossModalImputer is not fitted yet; call fit first.")
        absent = [m for m in self.modalities_ if m not in features]
        if absent:
            raise ValueError(f"features lack the fitted modalities {absent}.")
