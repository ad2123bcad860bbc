"""The top-k kernel shared by every model: exclusions, candidates, padding, chunking."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from invrec.utils.ranking import chunked_top_k, rankings_to_frame, top_k


def _reference(scores, k, exclude, candidates):
    """Plain argsort of every row with the ineligible items removed."""
    out = np.full((len(scores), min(k, scores.shape[1])), -1)
    for u, row in enumerate(scores):
        ok = candidates & ~exclude[u]
        order = [i for i in np.argsort(-row, kind="stable") if ok[i]][: out.shape[1]]
        out[u, : len(order)] = order
    return out


@settings(max_examples=50, deadline=None)
@given(n_users=st.integers(1, 8), n_items=st.integers(1, 12), k=st.integers(1, 15), seed=st.integers(0, 999))
def test_top_k_matches_reference(n_users, n_items, k, seed):
    rng = np.random.default_rng(seed)
    scores = rng.permutation(n_users * n_items).reshape(n_users, n_items).astype(float)  # no ties
    exclude = rng.random((n_users, n_items)) < 0.3
    candidates = rng.random(n_items) < 0.8
    items, values = top_k(scores, k, exclude=sp.csr_array(exclude), candidates=candidates)
    np.testing.assert_array_equal(items, _reference(scores, k, exclude, candidates))
    valid = items >= 0
    np.testing.assert_array_equal(values[valid], np.take_along_axis(scores, np.maximum(items, 0), 1)[valid])
    assert np.isneginf(values[~valid]).all()


def test_top_k_does_not_modify_scores_and_accepts_tensors():
    scores = torch.tensor([[0.1, 0.9, 0.5]])
    before = scores.clone()
    items, _ = top_k(scores, 2, exclude=sp.csr_array(np.array([[0, 1, 0]])))
    assert items.tolist() == [[2, 0]]
    torch.testing.assert_close(scores, before)
    with pytest.raises(ValueError, match="2-D"):
        top_k(np.zeros(3), 1)
    with pytest.raises(ValueError, match="exclude has shape"):
        top_k(np.zeros((2, 3)), 1, exclude=sp.csr_array((1, 3)))


def test_chunked_equals_unchunked():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(23, 17))
    exclude = sp.random_array((23, 17), density=0.2, random_state=1, format="csr")
    users = np.array([5, 0, 22, 7, 7, 13])
    full, full_values = top_k(scores[users], 6, exclude=exclude[users])
    calls = []

    def score_fn(chunk):
        calls.append(len(chunk))
        return torch.as_tensor(scores[chunk])

    chunked, chunked_values = chunked_top_k(score_fn, users, 6, exclude=exclude, chunk_size=4)
    np.testing.assert_array_equal(chunked, full)
    np.testing.assert_allclose(chunked_values, full_values)
    assert calls == [4, 2]


def test_rankings_to_frame_drops_padding_and_maps_ids():
    frame = rankings_to_frame(["u1", "u2"], np.array([[2, -1], [0, 1]]), np.array([[3.0, -np.inf], [2.0, 1.0]]),
                              item_ids=np.array(["a", "b", "c"]))
    assert frame.to_dict("list") == {"user": ["u1", "u2", "u2"], "item": ["c", "a", "b"],
                                     "score": [3.0, 2.0, 1.0], "rank": [1, 1, 2]}
