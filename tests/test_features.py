"""ItemFeatures: construction, validation, selection, transforms and missing-modality protocols."""

import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from invrec import ItemFeatures


def make(n=6, ids=None, seed=0):
    rng = np.random.default_rng(seed)
    return ItemFeatures(
        {"visual": rng.normal(size=(n, 4)), "text": rng.normal(size=(n, 3)), "audio": rng.normal(size=(n, 2))},
        item_ids=ids if ids is not None else [f"i{j}" for j in range(n)],
    )


# ---------------------------------------------------------------- construction
def test_from_arrays_keeps_order_ids_and_dtype():
    vis = np.arange(6, dtype=np.float64).reshape(3, 2)
    feats = ItemFeatures({"visual": vis, "text": [[1.0], [2.0], [3.0]]}, item_ids=[10, 30, 20])
    assert feats.modalities == ("visual", "text")
    assert feats.item_ids.tolist() == [10, 30, 20]
    assert feats.dims == {"visual": 2, "text": 1}
    assert feats["visual"].dtype == np.float32
    np.testing.assert_array_equal(feats["visual"], vis)
    assert feats.n_items == 3 and feats.n_modalities == 2
    assert not hasattr(feats, "__len__")  # sklearn would slice it as a per-row fit parameter


def test_default_ids_are_row_numbers():
    feats = ItemFeatures({"image": np.zeros((4, 2))})
    assert feats.item_ids.tolist() == [0, 1, 2, 3]


def test_from_frames_aligns_on_first_index_order():
    a = pd.DataFrame([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], index=["x", "y", "z"])
    b = pd.DataFrame([[30.0], [10.0], [20.0]], index=["z", "x", "y"])
    feats = ItemFeatures({"a": a, "b": b})
    assert feats.item_ids.tolist() == ["x", "y", "z"]
    np.testing.assert_array_equal(feats["b"][:, 0], [10.0, 20.0, 30.0])


def test_input_is_copied_and_stored_read_only():
    vis = np.ones((3, 2))
    feats = ItemFeatures({"visual": vis}, item_ids=[0, 1, 2])
    vis[0, 0] = 99.0
    assert feats["visual"][0, 0] == 1.0
    with pytest.raises(ValueError, match="read-only"):
        feats["visual"][0, 0] = 5.0


def test_missing_row_gives_availability():
    feats = ItemFeatures({"v": [[1.0, 1.0], [np.nan, np.nan]], "t": [[np.nan], [2.0]]}, item_ids=["a", "b"])
    np.testing.assert_array_equal(feats.availability, [[True, False], [False, True]])
    assert "missing" in repr(feats)


@pytest.mark.parametrize(
    "features, ids, error, match",
    [
        ({"v": np.ones(3)}, [0, 1, 2], ValueError, "2-D.*reshape"),
        ({"v": np.array([["a"], ["b"]])}, [0, 1], TypeError, "numeric"),
        ({"v": [[1.0], [np.inf]]}, [0, 1], ValueError, "inf"),
        ({"v": [[1.0, np.nan], [1.0, 2.0]]}, [0, 1], ValueError, "partly NaN"),
        ({"v": np.ones((2, 1))}, [0, 0], ValueError, "duplicates"),
        ({"v": np.ones((3, 1))}, [0, 1], ValueError, "3 rows but there are 2"),
        ({"v": np.ones((2, 1))}, [0, None], ValueError, "missing values"),
        ({}, None, TypeError, "non-empty dict"),
        ({"v": np.ones((2, 1)), "t": pd.DataFrame(np.ones((2, 1)))}, None, TypeError, "mixes"),
        ({"v": np.ones((2, 0))}, [0, 1], ValueError, "no columns"),
    ],
)
def test_bad_input_is_a_clear_error(features, ids, error, match):
    with pytest.raises(error, match=match):
        ItemFeatures(features, item_ids=ids)


def test_frames_with_different_item_sets_are_rejected():
    a = pd.DataFrame(np.ones((2, 1)), index=["x", "y"])
    b = pd.DataFrame(np.ones((2, 1)), index=["x", "w"])
    with pytest.raises(ValueError, match="different item sets"):
        ItemFeatures({"a": a, "b": b})


def test_duplicate_frame_index_is_rejected():
    a = pd.DataFrame(np.ones((2, 1)), index=["x", "x"])
    with pytest.raises(ValueError, match="duplicate"):
        ItemFeatures({"a": a})


# ---------------------------------------------------------------- selection
def test_reindex_subsets_and_reorders():
    feats = make()
    sub = feats.reindex(["i4", "i1"])
    assert sub.item_ids.tolist() == ["i4", "i1"]
    np.testing.assert_array_equal(sub["text"], feats["text"][[4, 1]])


def test_reindex_unknown_raises_or_marks_missing():
    feats = make()
    with pytest.raises(KeyError, match="no features.*'zz'"):
        feats.reindex(["i0", "zz"])
    wide = feats.reindex(["i0", "zz"], unknown="missing")
    np.testing.assert_array_equal(wide.availability, [[True] * 3, [False] * 3])
    with pytest.raises(ValueError, match="unknown must be"):
        feats.reindex(["i0"], unknown="drop")


def test_select_modalities():
    feats = make().select_modalities(["audio", "visual"])
    assert feats.modalities == ("audio", "visual")
    with pytest.raises(KeyError, match="no modality 'sound'"):
        make().select_modalities(["sound"])


# ---------------------------------------------------------------- transforms
def test_normalize_unit_rows_and_keeps_missing_and_zero_rows():
    feats = ItemFeatures({"v": [[3.0, 4.0], [0.0, 0.0], [np.nan, np.nan]]}, item_ids=[0, 1, 2])
    out = feats.normalize()
    np.testing.assert_allclose(out["v"][0], [0.6, 0.8], rtol=1e-6)
    np.testing.assert_array_equal(out["v"][1], [0.0, 0.0])
    assert np.isnan(out["v"][2]).all()
    np.testing.assert_array_equal(feats["v"][0], [3.0, 4.0])  # original untouched


def test_fill_missing_mean_over_reference_items_and_zero():
    v = [[1.0, 2.0], [3.0, 6.0], [100.0, 100.0], [np.nan, np.nan]]
    feats = ItemFeatures({"v": v}, item_ids=["a", "b", "c", "d"])
    filled = feats.fill_missing("mean", reference_items=["a", "b", "d"])
    np.testing.assert_allclose(filled["v"][3], [2.0, 4.0])  # mean of a and b; d is missing itself
    np.testing.assert_allclose(feats.fill_missing("mean")["v"][3], [104 / 3, 108 / 3], rtol=1e-6)
    np.testing.assert_array_equal(feats.fill_missing("zero")["v"][3], [0.0, 0.0])
    assert filled.availability.all() and not feats.availability[3, 0]
    with pytest.raises(ValueError, match="strategy"):
        feats.fill_missing("median")
    with pytest.raises(ValueError, match="no reference item"):
        feats.fill_missing("mean", reference_items=["d"])


def test_concat_and_tensor():
    feats = make(n=3)
    matrix, slices = feats.concat()
    assert matrix.shape == (3, 9)
    assert slices == {"visual": slice(0, 4), "text": slice(4, 7), "audio": slice(7, 9)}
    np.testing.assert_array_equal(matrix[:, slices["text"]], feats["text"])
    tensor = feats.to_tensor("cpu")
    assert tensor.dtype == torch.float32 and tuple(tensor.shape) == (3, 9)
    parts = feats.to_tensor(concat=False)
    assert set(parts) == {"visual", "text", "audio"}
    torch.testing.assert_close(parts["audio"], tensor[:, 7:9])


def test_pickle_round_trip():
    feats = make().with_missing(0.5, random_state=0)
    again = pickle.loads(pickle.dumps(feats))
    assert again.item_ids.tolist() == feats.item_ids.tolist()
    for name in feats:
        np.testing.assert_array_equal(again[name], feats[name])
    assert not again["visual"].flags.writeable


def test_to_frames_round_trip():
    feats = make()
    again = ItemFeatures(feats.to_frames())
    np.testing.assert_array_equal(again["visual"], feats["visual"])
    assert again.item_ids.tolist() == feats.item_ids.tolist()


# ---------------------------------------------------------------- missing protocols
@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 60),
    fraction=st.floats(0.01, 1.0),
    seed=st.integers(0, 2**16),
)
def test_with_missing_ftmt_properties(n, fraction, seed):
    feats = make(n=n, ids=np.arange(n))
    pool = np.arange(n)[n // 2:]
    out = feats.with_missing(fraction, items=pool, random_state=seed)
    lost = (~out.availability).sum(1)
    assert lost[: n // 2].sum() == 0  # only the chosen pool loses anything
    assert set(np.unique(lost)) <= {0, 1}
    assert lost.sum() == int(np.floor(fraction * len(pool)))
    assert (out.availability.sum(1) >= 1).all()
    again = feats.with_missing(fraction, items=pool, random_state=seed)
    np.testing.assert_array_equal(out.availability, again.availability)
    kept = out.availability
    for j, name in enumerate(out):
        np.testing.assert_array_equal(out[name][kept[:, j]], feats[name][kept[:, j]])
    assert feats.availability.all()  # the source object is untouched


def test_with_missing_tiktok_one_or_two():
    feats = make(n=100, ids=np.arange(100))
    out = feats.with_missing(0.9, n_missing=(1, 2), random_state=1)
    lost = (~out.availability).sum(1)
    assert np.bincount(lost, minlength=3).tolist() == [10, 45, 45]


def test_with_missing_each_modality_can_be_lost():
    feats = make(n=300, ids=np.arange(300))
    out = feats.with_missing(1.0, random_state=3)
    per_modality = (~out.availability).sum(0)
    assert per_modality.sum() == 300 and (per_modality > 60).all()


def test_with_missing_respects_already_missing_and_refuses_last_modality():
    feats = ItemFeatures({"a": [[1.0], [np.nan]], "b": [[1.0], [2.0]]}, item_ids=[0, 1])
    out = feats.with_missing(1.0, items=[0], random_state=0)
    assert out.availability[0].sum() == 1 and out.availability[1].tolist() == [False, True]
    with pytest.raises(ValueError, match="too few available modalities"):
        feats.with_missing(1.0, items=[1], random_state=0)
    with pytest.raises(ValueError, match="n_missing"):
        feats.with_missing(0.5, n_missing=0)
    with pytest.raises(ValueError, match="fraction"):
        feats.with_missing(1.5)
    with pytest.raises(KeyError, match="no features"):
        feats.with_missing(0.5, items=[7])


def test_fill_values_reused_for_new_items():
    train = ItemFeatures({"v": [[1.0, 2.0], [3.0, 6.0], [np.nan, np.nan]]}, item_ids=[0, 1, 2])
    values = train.fill_values("mean")
    np.testing.assert_allclose(values["v"], [2.0, 4.0])
    new = ItemFeatures({"v": [[np.nan, np.nan], [7.0, 7.0]]}, item_ids=[8, 9])
    np.testing.assert_allclose(new.fill_missing(values=values)["v"], [[2.0, 4.0], [7.0, 7.0]])
    with pytest.raises(ValueError, match="must be 2 finite"):
        new.fill_missing(values={"v": [1.0]})
