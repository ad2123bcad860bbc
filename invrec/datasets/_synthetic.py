"""Synthetic multimodal interactions with a spurious correlation that shifts: the embedded default.

The generative story, in the words of the invariant-learning papers invrec implements:

* every user ``u`` has preference factors ``p_u`` and a taste ``t_u`` for a spurious attribute;
  every item ``i`` has intrinsic factors ``q_i`` and a separate spurious attribute ``s_i``;
* an item's features in each modality are a noisy linear image of ``q_i`` on some dimensions
  (the *invariant* ones) and of ``s_i`` on the others (the *spurious* ones), in shuffled order;
* in training environment ``e`` the user meets item ``i`` with logit
  ``preference_strength * <p_u, q_i> / sqrt(n_factors) + beta_e * <t_u, s_i> / sqrt(n_spurious)``:
  the spurious attribute drives exposure with a strength ``beta_e`` that differs between
  environments;
* the out-of-distribution test environment changes that strength (by default it reverses it), so a
  model that learned the spurious dimensions ranks badly there, while one that learned the
  invariant dimensions keeps its quality.

Named shift regimes (``regime=``, see ``_regimes.py``) set the strengths for standard stories:
environments that agree, that disagree in sign, no shift at all, and an item-level exposure bias.

Interactions are drawn without replacement with the Gumbel top-k trick, all users at once.
"""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd
from sklearn.utils import Bunch

from ..features import ItemFeatures
from ..utils.validation import ITEM, USER, check_fraction, check_rng
from ._regimes import exposure_term, resolve_regime

__all__ = ["make_multimodal_interactions"]

DEFAULT_MODALITIES = {"visual": (12, 12), "acoustic": (8, 8)}


def make_multimodal_interactions(
    n_users=300,
    n_items=200,
    *,
    n_factors=8,
    n_spurious=2,
    modalities=None,
    spurious_strengths=None,
    test_strength=None,
    preference_strength=1.5,
    interactions_per_user=4,
    test_interactions_per_user=2,
    feature_noise=0.1,
    missing_fraction=0.0,
    n_missing=1,
    random_state=None,
    regime=None,
):
    """Generate interactions and item features whose spurious dimensions mislead under shift.

    Parameters
    ----------
    n_users, n_items : int, default=300, 200
        Size of the problem. Ids are ``0..n_users-1`` and ``0..n_items-1``.
    n_factors : int, default=8
        Dimension of the user preference / item intrinsic factors.
    n_spurious : int, default=2
        Dimension of the spurious item attribute (and of the users' taste for it).
    modalities : dict of str to (int, int), default=None
        Modality name -> (number of invariant dimensions, number of spurious dimensions). None
        gives ``{"visual": (12, 12), "acoustic": (8, 8)}``.
    spurious_strengths : sequence of float, default=None
        ``beta_e`` of each training environment; its length is the number of environments.
        None is ``(3.0, 4.5, 6.0)``, or the regime's strengths when ``regime`` is given.
    test_strength : float, default=None
        ``beta`` of the out-of-distribution test environment (negative: the correlation reverses).
        None is ``-3.0``, or the regime's test strength when ``regime`` is given.
    preference_strength : float, default=1.5
        Weight of the true preference ``<p_u, q_i>`` in every environment.
    interactions_per_user : int, default=4
        Training interactions each user has in *each* training environment.
    test_interactions_per_user : int, default=2
        Held-out interactions per user and environment: the in-distribution test set has this
        many per training environment, the out-of-distribution one this many times the number of
        environments, so both sets have the same size.
    feature_noise : float, default=0.1
        Standard deviation of the Gaussian noise added to every feature.
    missing_fraction : float in [0, 1], default=0.0
        Share of items that lose ``n_missing`` random modalities (NaN rows), see
        :meth:`ItemFeatures.with_missing`.
    n_missing : int or sequence of int, default=1
        Modalities lost by each such item.
    random_state : int, Generator or None, default=None
        Seed; an int makes the whole draw reproducible.
    regime : {"agree", "disagree", "none", "item"} or None, default=None
        A named shift regime that sets ``spurious_strengths`` and ``test_strength`` (passing
        either of them too raises a ValueError). None keeps the arguments as given (and the
        historical draw: ``regime=None`` with default arguments is the same data as ever). With
        ``x_ui`` the exposure term, the logit of user ``u`` meeting item ``i`` in environment
        ``e`` is ``preference_strength * <p_u, q_i> / sqrt(n_factors) + beta_e * x_ui``:

        - ``"agree"``: the environments push the spurious attribute the same way at different
          strengths and the test reverses it, the default story:
          ``x_ui = <t_u, s_i> / sqrt(n_spurious)``, ``beta = (3.0, 4.5, 6.0)``, test ``-3.0``.
        - ``"disagree"``: the environments disagree in sign, ``beta_e = 6 * (-1/2)**e`` i.e.
          ``(6.0, -3.0, 1.5)``, so the spurious correlation is not stable across environments
          (pooled, it still points the positive way); the test is at a new value, ``-4.5``.
          Same ``x_ui`` as ``"agree"``.
        - ``"none"``: no shift, ``beta = (0.0, 0.0, 0.0)`` and test ``0.0``: exposure follows
          the true preference alone everywhere, so the OOD test is drawn by the same law as
          the training and IID test rows (only from the items training left, as in every
          regime, which lowers its mean preference a little).
        - ``"item"``: an item-level exposure bias that ignores the user's taste:
          ``x_ui = e_i = <1, s_i> / sqrt(n_spurious)`` (a popularity tied to the spurious
          attribute, the same for every user), ``beta = (3.0, 4.5, 6.0)``, reversed at test
          (``-3.0``).

        Every regime draws the same latent variables and features for the same seed (the
        arguments other than the strengths being equal); see ``invrec.datasets.REGIMES``.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        interactions : DataFrame
            Training interactions with columns ``user``, ``item``, ``environment`` (0-based index
            of the training environment).
        validation : None
            Kept for the shape that the dataset loaders share.
        test : DataFrame
            In-distribution held-out interactions (drawn in the training environments, disjoint
            from training), with their ``environment``.
        test_ood : DataFrame
            Out-of-distribution held-out interactions (drawn with ``test_strength``), disjoint from
            training, ``environment`` equal to the number of training environments.
        item_features : ItemFeatures
            One matrix per modality, rows ``0..n_items-1``.
        invariant_mask : dict of str to ndarray of bool
            Ground truth: True at the invariant dimensions of each modality.
        user_factors, item_factors, user_spurious, item_spurious : ndarray
            The latent variables ``p``, ``q``, ``t`` and ``s``.
        environment_strengths : ndarray
            ``beta`` of each training environment followed by the test one.
        preference_strength : float
            Weight of the true preference in every environment (the argument's value).
        regime : str or None
            The ``regime`` argument.
        exposure : {"user", "item"}
            Which exposure term ``x_ui`` the strengths multiply: ``"item"`` for
            ``regime="item"``, ``"user"`` otherwise (see :func:`~invrec.datasets.spurious_scores`).
        spurious_mask : dict of str to ndarray of bool
            ``~invariant_mask``: True at the spurious dimensions of each modality.
        name, DESCR : str
            The dataset's short name and a text description of how it was drawn.

    Examples
    --------
    >>> from invrec.datasets import make_multimodal_interactions
    >>> data = make_multimodal_interactions(n_users=50, n_items=40, random_state=0)
    >>> data.interactions.shape
    (600, 3)
    >>> sorted(data.item_features.modalities), int(data.invariant_mask["visual"].sum())
    (['acoustic', 'visual'], 12)

    A named regime sets the strengths:

    >>> data = make_multimodal_interactions(n_users=50, n_items=40, regime="disagree", random_state=0)
    >>> data.environment_strengths.tolist()
    [6.0, -3.0, 1.5, -4.5]
    """
    n_users = _positive_int(n_users, "n_users")
    n_items = _positive_int(n_items, "n_items")
    n_factors = _positive_int(n_factors, "n_factors")
    n_spurious = _positive_int(n_spurious, "n_spurious")
    per_user = _positive_int(interactions_per_user, "interactions_per_user")
    per_user_test = _positive_int(test_interactions_per_user, "test_interactions_per_user")
    modalities = _check_modalities(DEFAULT_MODALITIES if modalities is None else modalities)
    spurious_strengths, test_strength, exposure = resolve_regime(regime, spurious_strengths, test_strength)
    strengths = np.asarray(spurious_strengths, dtype=float).ravel()
    if strengths.size == 0 or not np.isfinite(strengths).all():
        raise ValueError("spurious_strengths must be a non-empty sequence of finite floats, one per environment.")
    if not np.isfinite(test_strength) or not np.isfinite(preference_strength):
        raise ValueError("test_strength and preference_strength must be finite floats.")
    if feature_noise < 0:
        raise ValueError(f"feature_noise must be >= 0; got {feature_noise!r}.")
    n_env = strengths.size
    needed = n_env * (per_user + per_user_test)
    if needed > n_items:
        raise ValueError(
            f"each user needs {needed} distinct items (training, in- and out-of-distribution test) "
            f"but there are only n_items={n_items}; raise n_items or lower the per-user counts."
        )
    rng = check_rng(random_state)

    p = rng.standard_normal((n_users, n_factors))
    q = rng.standard_normal((n_items, n_factors))
    t = rng.standard_normal((n_users, n_spurious))
    s = _sphere(rng.standard_normal((n_items, n_spurious)))
    preference = preference_strength * (p @ q.T) / np.sqrt(n_factors)
    spurious = exposure_term(t, s, exposure)

    # Each environment draws its training and in-distribution test items together, then a random
    # share of them is held out: the IID test set is exchangeable with the training interactions.
    taken = np.zeros((n_users, n_items), dtype=bool)
    drawn = [rng.permuted(_draw(preference + b * spurious, taken, per_user + per_user_test, rng), axis=1)
             for b in strengths]
    train = [block[:, :per_user] for block in drawn]
    test_iid = [block[:, per_user:] for block in drawn]
    # The OOD draw may reuse in-distribution test items but never training ones.
    ood_taken = np.zeros_like(taken)
    ood_taken[_rows(n_users, per_user * n_env), np.concatenate(train, axis=1).ravel()] = True
    test_ood = _draw(preference + test_strength * spurious, ood_taken, per_user_test * n_env, rng)

    features, invariant_mask = _make_features(q, s, modalities, feature_noise, rng)
    item_features = ItemFeatures(features, item_ids=np.arange(n_items))
    if missing_fraction:
        missing_fraction = check_fraction(missing_fraction, "missing_fraction", allow_one=True)
        item_features = item_features.with_missing(missing_fraction, n_missing=n_missing, random_state=rng)

    return Bunch(
        interactions=_frame(train),
        validation=None,
        test=_frame(test_iid),
        test_ood=_frame([test_ood], first_env=n_env),
        item_features=item_features,
        invariant_mask=invariant_mask,
        user_factors=p,
        item_factors=q,
        user_spurious=t,
        item_spurious=s,
        environment_strengths=np.append(strengths, float(test_strength)),
        preference_strength=float(preference_strength),
        regime=regime,
        exposure=exposure,
        spurious_mask={name: ~mask for name, mask in invariant_mask.items()},
        name="synthetic",
        DESCR=(
            f"Synthetic multimodal interactions: {n_users} users, {n_items} items, {n_env} training "
            f"environments with spurious strengths {strengths.tolist()}, out-of-distribution "
            f"strength {float(test_strength)}; modalities {modalities} as (invariant, spurious) dims."
            + ("" if regime is None else f" Shift regime {regime!r} ({exposure}-level exposure).")
        ),
    )


def _draw(logits, taken, k, rng):
    """``k`` distinct items per user, sampled with probability proportional to exp(logit).

    Items already ``taken`` are excluded and the drawn ones are marked taken (Gumbel top-k).
    """
    keys = logits + rng.gumbel(size=logits.shape)
    keys[taken] = -np.inf
    top = np.argpartition(-keys, k - 1, axis=1)[:, :k]
    taken[_rows(len(logits), k), top.ravel()] = True
    return top


def _sphere(x):
    """Rows rescaled to norm sqrt(d): every item is equally exposed to the shift."""
    return x * np.sqrt(x.shape[1]) / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _rows(n_users, k):
    return np.repeat(np.arange(n_users), k)


def _frame(blocks, first_env=0):
    """Interactions DataFrame from per-environment (n_users, k) item blocks."""
    users = np.concatenate([_rows(len(b), b.shape[1]) for b in blocks])
    items = np.concatenate([b.ravel() for b in blocks])
    env = np.concatenate([np.full(b.size, first_env + e) for e, b in enumerate(blocks)])
    return pd.DataFrame({USER: users, ITEM: items, "environment": env})


def _make_features(q, s, modalities, noise, rng):
    features, masks = {}, {}
    for name, (d_inv, d_sp) in modalities.items():
        inv = q @ rng.standard_normal((q.shape[1], d_inv)) / np.sqrt(q.shape[1])
        spu = s @ rng.standard_normal((s.shape[1], d_sp)) / np.sqrt(s.shape[1])
        block = np.concatenate([inv, spu], axis=1)
        block += noise * rng.standard_normal(block.shape)
        order = rng.permutation(d_inv + d_sp)
        features[name] = block[:, order]
        masks[name] = order < d_inv
    return features, masks


def _positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive int; got {value!r}.")
    return int(value)


def _check_modalities(modalities):
    if not isinstance(modalities, dict) or not modalities:
        raise ValueError("modalities must be a non-empty dict of name -> (n_invariant, n_spurious).")
    out = {}
    for name, dims in modalities.items():
        try:
            d_inv, d_sp = (int(d) for d in dims)
        except (TypeError, ValueError):
            raise ValueError(f"modality {name!r} needs a pair (n_invariant, n_spurious); got {dims!r}.") from None
        if d_inv < 0 or d_sp < 0 or d_inv + d_sp == 0:
            raise ValueError(f"modality {name!r} needs non-negative dims, not both 0; got {dims!r}.")
        out[name] = (d_inv, d_sp)
    return out
