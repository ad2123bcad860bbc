"""Named shift regimes of the synthetic generator, and the exposure term each one uses.

A regime fixes how the spurious attribute drives exposure in the training environments and in
the out-of-distribution (OOD) test environment of
:func:`~invrec.datasets.make_multimodal_interactions`. In environment ``e`` the user ``u`` meets
item ``i`` with logit

``preference_strength * <p_u, q_i> / sqrt(n_factors) + beta_e * x_ui``

where ``x_ui`` is the *exposure term* and ``beta_e`` its strength:

* ``exposure="user"`` (every regime but ``"item"``): ``x_ui = <t_u, s_i> / sqrt(n_spurious)``,
  the user's taste ``t_u`` for the item's spurious attribute ``s_i``;
* ``exposure="item"``: ``x_ui = e_i = <1, s_i> / sqrt(n_spurious)``, an item-level exposure
  (popularity) tied to the spurious attribute and the same for every user.

``REGIMES`` holds each regime's strengths; see the generator's docstring for the story of each.
"""

from __future__ import annotations

from types import MappingProxyType

import numpy as np

__all__ = ["REGIMES", "spurious_scores"]

#: The generator's strengths when neither a regime nor ``spurious_strengths`` is given.
DEFAULT_STRENGTHS = (3.0, 4.5, 6.0)
DEFAULT_TEST_STRENGTH = -3.0

#: name -> the training strengths ``beta_e``, the OOD test strength and the exposure term.
REGIMES = MappingProxyType({
    # Environments push the spurious attribute the same way at different strengths; test reverses.
    "agree": MappingProxyType({"spurious_strengths": DEFAULT_STRENGTHS,
                               "test_strength": DEFAULT_TEST_STRENGTH, "exposure": "user"}),
    # beta_e = 6 * (-1/2)**e: the sign flips from one environment to the next; test at a new value.
    "disagree": MappingProxyType({"spurious_strengths": (6.0, -3.0, 1.5),
                                  "test_strength": -4.5, "exposure": "user"}),
    # No shift: the spurious attribute never drives exposure, so the OOD test is IID.
    "none": MappingProxyType({"spurious_strengths": (0.0, 0.0, 0.0),
                              "test_strength": 0.0, "exposure": "user"}),
    # Item-level exposure bias (popularity tied to s_i, blind to the user's taste); test reverses.
    "item": MappingProxyType({"spurious_strengths": DEFAULT_STRENGTHS,
                              "test_strength": DEFAULT_TEST_STRENGTH, "exposure": "item"}),
})


def resolve_regime(regime, spurious_strengths, test_strength):
    """``(strengths, test_strength, exposure)`` from the generator's arguments.

    Without a regime, None arguments take the historical defaults. With one, the regime sets
    both strengths, and passing either explicitly is a conflict.
    """
    if regime is None:
        strengths = DEFAULT_STRENGTHS if spurious_strengths is None else spurious_strengths
        test = DEFAULT_TEST_STRENGTH if test_strength is None else test_strength
        return strengths, test, "user"
    if not isinstance(regime, str) or regime not in REGIMES:
        raise ValueError(f"regime must be None or one of {sorted(REGIMES)}; got {regime!r}.")
    given = [f"{name}={value!r}" for name, value in
             (("spurious_strengths", spurious_strengths), ("test_strength", test_strength))
             if value is not None]
    if given:
        raise ValueError(
            f"regime={regime!r} sets spurious_strengths and test_strength itself, but "
            f"{' and '.join(given)} was also passed: the two conflict. Pass either the regime or "
            f"the strengths (regime=None), not both."
        )
    spec = REGIMES[regime]
    return spec["spurious_strengths"], spec["test_strength"], spec["exposure"]


def exposure_term(t, s, exposure):
    """The ``(n_users, n_items)`` matrix ``x_ui`` that ``beta_e`` multiplies in the logits."""
    if exposure == "item":
        item = s.sum(axis=1) / np.sqrt(s.shape[1])
        return np.broadcast_to(item, (t.shape[0], s.shape[0]))
    return (t @ s.T) / np.sqrt(s.shape[1])


def spurious_scores(data):
    """The exposure term ``x_ui`` of every (user, item) pair of a generated dataset.

    It is the matrix that the spurious strength ``beta_e`` multiplies in the logits of
    :func:`~invrec.datasets.make_multimodal_interactions`: ``<t_u, s_i> / sqrt(n_spurious)`` for
    the user-level regimes, ``<1, s_i> / sqrt(n_spurious)`` (the same row for every user) for
    ``regime="item"``.

    Parameters
    ----------
    data : Bunch
        The generator's output (``user_spurious``, ``item_spurious`` and ``exposure`` are read;
        a Bunch without ``exposure`` is taken as user-level).

    Returns
    -------
    scores : ndarray of shape (n_users, n_items)
        A fresh, writeable array.

    Examples
    --------
    >>> from invrec.datasets import make_multimodal_interactions, spurious_scores
    >>> data = make_multimodal_interactions(n_users=5, n_items=40, regime="item", random_state=0)
    >>> x = spurious_scores(data)
    >>> x.shape, bool((x == x[0]).all())
    ((5, 40), True)
    """
    exposure = data.get("exposure", "user")
    if exposure not in ("user", "item"):
        raise ValueError(f"data.exposure must be 'user' or 'item'; got {exposure!r}.")
    t = np.asarray(data["user_spurious"], dtype=float)
    s = np.asarray(data["item_spurious"], dtype=float)
    return np.array(exposure_term(t, s, exposure))
