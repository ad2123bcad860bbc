"""Tests of the dataset loaders (invrec.datasets._loaders).

Tiny files written into ``tmp_path`` exercise every loader on any machine; the real datasets in
``../shared/data`` (tests marked ``shared_data``) must reproduce the counts of their SOURCE.md.
"""

import pickle

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from pandas.testing import assert_frame_equal, assert_series_equal

from invrec.datasets import (
    load_amazon_baby,
    load_diffmm,
    load_lastfm_2k_mm,
    load_mmrec,
    load_movielens_100k,
    load_tiktok,
)
from invrec.features import ItemFeatures

BUNCH_KEYS = {"interactions", "validation", "test", "item_features", "name", "DESCR"}


def _frame(rows, columns=("user", "item")):
    """Expected interactions DataFrame with int64 columns."""
    return pd.DataFrame(np.asarray(rows, dtype=np.int64).reshape(-1, len(columns)), columns=list(columns))


# ------------------------------------------------------------------------------------------
# MMRec layout
# ------------------------------------------------------------------------------------------

INTER_ROWS = [
    # userID itemID rating timestamp x_label
    (0, 0, 5, 100, 0),
    (0, 1, 3, 101, 0),
    (1, 1, 4, 102, 0),
    (1, 2, 2, 103, 0),
    (2, 0, 1, 104, 0),
    (0, 2, 5, 105, 1),
    (1, 3, 4, 106, 2),
    (2, 3, 3, 107, 2),
]
IMAGE = np.arange(12, dtype=np.float64).reshape(4, 3) / 4.0
TEXT = np.array([[1.0, 0.0], [np.nan, np.nan], [0.5, 0.5], [0.0, 2.0]], dtype=np.float32)


def _write_inter(path, rows, header="userID\titemID\trating\ttimestamp\tx_label"):
    lines = [header] + ["\t".join(map(str, r)) for r in rows]
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def mmrec_dir(tmp_path):
    folder = tmp_path / "toy"
    folder.mkdir()
    _write_inter(folder / "toy.inter", INTER_ROWS)
    np.save(folder / "image_feat.npy", IMAGE)
    np.save(folder / "text_feat.npy", TEXT)
    return folder


def test_load_mmrec_splits_ids_and_columns(mmrec_dir):
    data = load_mmrec(mmrec_dir)
    assert set(data) == BUNCH_KEYS
    cols = ("user", "item", "rating", "timestamp")
    rows = np.array(INTER_ROWS)
    assert_frame_equal(data.interactions, _frame(rows[rows[:, 4] == 0, :4], cols))
    assert_frame_equal(data.validation, _frame(rows[rows[:, 4] == 1, :4], cols))
    assert_frame_equal(data.test, _frame(rows[rows[:, 4] == 2, :4], cols))
    assert data.name == "toy"
    assert "3 users x 4 items" in data.DESCR and "train 5 / validation 1 / test 2" in data.DESCR


def test_load_mmrec_discovers_features_and_strips_feat_suffix(mmrec_dir):
    feats = load_mmrec(mmrec_dir).item_features
    assert isinstance(feats, ItemFeatures)
    assert feats.modalities == ("image", "text")
    np.testing.assert_array_equal(feats.item_ids, np.arange(4))
    assert feats.dims == {"image": 3, "text": 2}
    assert feats["image"].dtype == np.float32 and feats["text"].dtype == np.float32
    np.testing.assert_allclose(feats["image"], IMAGE.astype(np.float32))
    np.testing.assert_array_equal(feats["text"], TEXT)
    np.testing.assert_array_equal(feats.availability[:, 1], [True, False, True, True])


def test_load_mmrec_features_dict_chooses_and_renames(mmrec_dir):
    feats = load_mmrec(mmrec_dir, features={"visual": "image_feat.npy"}).item_features
    assert feats.modalities == ("visual",)
    np.testing.assert_allclose(feats["visual"], IMAGE)
    assert load_mmrec(mmrec_dir, features={}).item_features is None


def test_load_mmrec_without_npy_and_without_validation(tmp_path):
    rows = [r for r in INTER_ROWS if r[4] != 1]
    _write_inter(tmp_path / "d.inter", [r[:2] + r[4:] for r in rows], header="userID\titemID\tx_label")
    data = load_mmrec(tmp_path)
    assert data.item_features is None
    assert data.validation is None
    assert list(data.interactions.columns) == ["user", "item"]
    assert len(data.test) == 2


def test_load_mmrec_several_inter_files_need_name(mmrec_dir):
    _write_inter(mmrec_dir / "other.inter", INTER_ROWS[:3])
    with pytest.raises(ValueError, match=r"several '\.inter' files.*other\.inter.*toy\.inter"):
        load_mmrec(mmrec_dir)
    assert len(load_mmrec(mmrec_dir, name="other").interactions) == 3
    assert load_mmrec(mmrec_dir, name="toy").name == "toy"


def test_load_mmrec_missing_folder_and_files(tmp_path, mmrec_dir):
    with pytest.raises(FileNotFoundError, match="does not exist.*userID"):
        load_mmrec(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=r"no '\.inter' file"):
        load_mmrec(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"nope\.inter"):
        load_mmrec(mmrec_dir, name="nope")
    with pytest.raises(FileNotFoundError, match=r"audio\.npy"):
        load_mmrec(mmrec_dir, features={"audio": "audio.npy", "image": "image_feat.npy"})


def test_load_mmrec_bad_header(tmp_path):
    _write_inter(tmp_path / "d.inter", [r[:2] for r in INTER_ROWS], header="user_id\titem_id")
    lacks = r"d\.inter.*lacks the column\(s\) \['userID', 'itemID', 'x_label'\]"
    with pytest.raises(ValueError, match=lacks):
        load_mmrec(tmp_path)


@pytest.mark.parametrize(
    "rows, match",
    [
        ([(0, 0, 0), (1, 1, 3)], r"x_label must be 0.*\[3\]"),
        ([(0, 0, 0), (0, 0, 2)], "must not overlap.*user 0, item 0"),
        ([(0, 0, 1), (1, 1, 2)], "no training interactions"),
        ([(0, -1, 0)], "negative ids"),
    ],
)
def test_load_mmrec_malformed_inter(tmp_path, rows, match):
    _write_inter(tmp_path / "d.inter", rows, header="userID\titemID\tx_label")
    with pytest.raises(ValueError, match=match):
        load_mmrec(tmp_path)


def test_load_mmrec_non_integer_ids(tmp_path):
    (tmp_path / "d.inter").write_text("userID\titemID\tx_label\n0\ta\t0\n")
    with pytest.raises(ValueError, match="'itemID' must hold integers"):
        load_mmrec(tmp_path)


def test_load_mmrec_feature_rows_mismatch(mmrec_dir):
    np.save(mmrec_dir / "text_feat.npy", TEXT[:3])
    with pytest.raises(ValueError, match="row counts differ.*text_feat.npy': 3"):
        load_mmrec(mmrec_dir)
    with pytest.raises(ValueError, match=r"itemID 3 has no feature row.*3 rows"):
        load_mmrec(mmrec_dir, features={"text": "text_feat.npy"})


def test_load_mmrec_bad_feature_files(mmrec_dir):
    np.save(mmrec_dir / "image.npy", IMAGE)
    with pytest.raises(ValueError, match="both give the modality 'image'"):
        load_mmrec(mmrec_dir)
    np.save(mmrec_dir / "flat.npy", np.ones(4))
    with pytest.raises(ValueError, match=r"flat\.npy.*2-D"):
        load_mmrec(mmrec_dir, features={"flat": "flat.npy"})
    np.save(mmrec_dir / "inf.npy", np.full((4, 2), np.inf))
    with pytest.raises(ValueError, match=r"inf\.npy.*holds inf"):
        load_mmrec(mmrec_dir, features={"x": "inf.npy"})


# ------------------------------------------------------------------------------------------
# Last.fm wrapper (MMRec layout)
# ------------------------------------------------------------------------------------------


@pytest.fixture
def lastfm_dir(tmp_path):
    folder = tmp_path / "lfm2k"
    folder.mkdir()
    _write_inter(folder / "lfm2k.inter", INTER_ROWS)
    _write_inter(folder / "lfm2k_og_ids.inter", [(r[0] + 7, r[1] + 9) + r[2:] for r in INTER_ROWS])
    np.save(folder / "all-MiniLM-L6-v2.npy", np.eye(4, 5, dtype=np.float32))
    np.save(folder / "vggish.npy", np.full((4, 2), 11.0))
    np.save(folder / "whisper.npy", np.full((4, 6), -1.0, dtype=np.float32))
    return folder


def test_load_lastfm_2k_mm(lastfm_dir, verify=False):
    data = load_lastfm_2k_mm(lastfm_dir, verify=False)
    assert data.name == "lastfm-2k-mm"
    assert data.item_features.modalities == ("text", "audio")
    assert data.item_features.dims == {"text": 5, "audio": 2}
    assert data.item_features["audio"].dtype == np.float32
    np.testing.assert_array_equal(data.item_features["text"], np.eye(4, 5))
    assert data.interactions["item"].max() == 2  # lfm2k.inter, not the og-ids file
    whisper = load_lastfm_2k_mm(lastfm_dir, audio="whisper", verify=False).item_features
    assert whisper.dims == {"text": 5, "audio": 6}
    with pytest.raises(ValueError, match="audio must be one of"):
        load_lastfm_2k_mm(lastfm_dir, audio="mfcc", verify=False)
    (lastfm_dir / "vggish.npy").unlink()
    with pytest.raises(FileNotFoundError, match=r"vggish\.npy"):
        load_lastfm_2k_mm(lastfm_dir, verify=False)


# ------------------------------------------------------------------------------------------
# DiffMM layout
# ------------------------------------------------------------------------------------------

N_USERS, N_ITEMS = 3, 5
TRAIN = [(0, 0), (0, 3), (1, 1), (2, 4), (2, 2)]
VALID = [(0, 1), (2, 0)]
TEST = [(1, 4)]
IMG16 = (np.arange(N_ITEMS * 2).reshape(N_ITEMS, 2) * 0.5).astype(np.float16)
AUD16 = np.full((N_ITEMS, 3), 60000.0, dtype=np.float16)  # a float16 sum overflows to inf


def _dump_coo(file, pairs, shape=(N_USERS, N_ITEMS), values=None):
    rows, cols = np.array(pairs).T
    values = np.ones(len(pairs)) if values is None else values
    with open(file, "wb") as handle:
        pickle.dump(sp.coo_matrix((values, (rows, cols)), shape=shape), handle)


@pytest.fixture
def diffmm_dir(tmp_path):
    folder = tmp_path / "tiny"
    folder.mkdir()
    _dump_coo(folder / "trnMat.pkl", TRAIN)
    _dump_coo(folder / "valMat.pkl", VALID)
    _dump_coo(folder / "tstMat.pkl", TEST)
    np.save(folder / "image_feat.npy", IMG16)
    np.save(folder / "audio_feat.npy", AUD16)
    return folder


def test_load_diffmm_ids_and_splits(diffmm_dir):
    data = load_diffmm(diffmm_dir)
    assert set(data) == BUNCH_KEYS
    assert_frame_equal(data.interactions, _frame(sorted(TRAIN)))
    assert_frame_equal(data.validation, _frame(sorted(VALID)))
    assert_frame_equal(data.test, _frame(TEST))
    assert data.name == "tiny"
    assert "3 users x 5 items" in data.DESCR and "train 5 / validation 2 / test 1" in data.DESCR


def test_load_diffmm_features_float16_to_float32(diffmm_dir):
    feats = load_diffmm(diffmm_dir).item_features
    assert feats.modalities == ("audio", "image")
    np.testing.assert_array_equal(feats.item_ids, np.arange(N_ITEMS))
    for name, raw in (("image", IMG16), ("audio", AUD16)):
        assert feats[name].dtype == np.float32
        np.testing.assert_array_equal(feats[name], raw.astype(np.float32))
    assert np.isfinite(feats["audio"].sum())
    renamed = load_diffmm(diffmm_dir, features={"visual": "image_feat.npy"}).item_features
    assert renamed.modalities == ("visual",)


def test_load_diffmm_without_features_drops_zeros(diffmm_dir):
    for file in diffmm_dir.glob("*.npy"):
        file.unlink()
    _dump_coo(diffmm_dir / "tstMat.pkl", [(1, 4), (1, 3)], values=np.array([1.0, 0.0]))
    data = load_diffmm(diffmm_dir)
    assert data.item_features is None
    assert_frame_equal(data.test, _frame(TEST))


def test_load_diffmm_missing_files(tmp_path, diffmm_dir):
    with pytest.raises(FileNotFoundError, match=r"does not exist.*trnMat\.pkl"):
        load_diffmm(tmp_path / "absent")
    (diffmm_dir / "tstMat.pkl").unlink()
    (diffmm_dir / "valMat.pkl").unlink()
    with pytest.raises(FileNotFoundError, match=r"\['valMat\.pkl', 'tstMat\.pkl'\]"):
        load_diffmm(diffmm_dir)


def test_load_diffmm_malformed(diffmm_dir):
    np.save(diffmm_dir / "text_feat.npy", np.ones((N_ITEMS + 1, 2)))
    with pytest.raises(ValueError, match="row counts differ"):
        load_diffmm(diffmm_dir)
    with pytest.raises(ValueError, match="6 rows, but the interaction matrices have 5 item columns"):
        load_diffmm(diffmm_dir, features={"text": "text_feat.npy"})
    _dump_coo(diffmm_dir / "valMat.pkl", VALID + [(0, 0)])
    overlap = r"\['trnMat\.pkl', 'valMat\.pkl'\] must not overlap.*user 0, item 0"
    with pytest.raises(ValueError, match=overlap):
        load_diffmm(diffmm_dir, features={})
    _dump_coo(diffmm_dir / "valMat.pkl", VALID, shape=(N_USERS + 1, N_ITEMS))
    with pytest.raises(ValueError, match=r"share one users x items shape.*valMat\.pkl': \(4, 5\)"):
        load_diffmm(diffmm_dir, features={})
    with open(diffmm_dir / "valMat.pkl", "wb") as handle:
        pickle.dump(np.ones((3, 5)), handle)
    with pytest.raises(ValueError, match=r"valMat\.pkl.*scipy\.sparse.*ndarray"):
        load_diffmm(diffmm_dir, features={})


def test_load_tiktok_names_modalities(diffmm_dir):
    data = load_tiktok(diffmm_dir, verify=False)
    assert data.name == "tiktok"
    assert data.item_features.modalities == ("visual", "acoustic")
    np.testing.assert_array_equal(data.item_features["acoustic"], AUD16.astype(np.float32))
    np.save(diffmm_dir / "text_feat.npy", np.zeros((N_ITEMS, 4), dtype=np.float16))
    assert load_tiktok(diffmm_dir, verify=False).item_features.modalities == ("visual", "acoustic", "textual")
    (diffmm_dir / "audio_feat.npy").unlink()
    with pytest.raises(FileNotFoundError, match=r"audio_feat\.npy"):
        load_tiktok(diffmm_dir, verify=False)


def test_load_amazon_baby_toy(diffmm_dir):
    for file in diffmm_dir.glob("*.npy"):
        file.unlink()
    data = load_amazon_baby(diffmm_dir, verify=False)
    assert data.name == "amazon-baby"
    assert data.item_features is None
    assert len(data.interactions) == len(TRAIN)


# ------------------------------------------------------------------------------------------
# MovieLens-100K
# ------------------------------------------------------------------------------------------

ML_DATA = [(1, 10, 4, 900), (1, 20, 3, 901), (2, 10, 5, 902), (2, 30, 1, 903), (3, 20, 2, 904)]
ML_GENRES = {10: [0, 1, 5], 20: [18], 30: [3, 4]}
ML_TITLES = {10: "Toy Story (1995)", 20: "Café au lait (1994)", 30: "unknown"}


def _ml_item_line(movie):
    flags = ["1" if g in ML_GENRES[movie] else "0" for g in range(19)]
    date = "" if movie == 30 else "01-Jan-1995"
    return "|".join([str(movie), ML_TITLES[movie], date, "", f"http://x/{movie}", *flags])


def _ml_lines(rows):
    return "".join("\t".join(map(str, r)) + "\n" for r in rows)


@pytest.fixture
def ml_dir(tmp_path):
    folder = tmp_path / "ml-100k"
    folder.mkdir()
    (folder / "u.item").write_bytes(("\n".join(_ml_item_line(m) for m in ML_GENRES) + "\n").encode("latin-1"))
    (folder / "u.data").write_text(_ml_lines(ML_DATA))
    (folder / "u1.base").write_text(_ml_lines(ML_DATA[:3]))
    (folder / "u1.test").write_text(_ml_lines(ML_DATA[3:]))
    return folder


def test_load_movielens_100k_split(ml_dir):
    data = load_movielens_100k(ml_dir, verify=False)
    assert set(data) == BUNCH_KEYS | {"item_titles"}
    cols = ("user", "item", "rating", "timestamp")
    assert_frame_equal(data.interactions, _frame(ML_DATA[:3], cols))
    assert_frame_equal(data.test, _frame(ML_DATA[3:], cols))
    assert data.validation is None
    assert data.name == "movielens-100k"


def test_load_movielens_100k_genre_and_titles(ml_dir):
    data = load_movielens_100k(ml_dir, verify=False)
    feats = data.item_features
    assert feats.modalities == ("genre",)
    np.testing.assert_array_equal(feats.item_ids, [10, 20, 30])
    genre = feats["genre"]
    assert genre.dtype == np.float32 and genre.shape == (3, 19)
    expected = np.zeros((3, 19), dtype=np.float32)
    for row, movie in enumerate(ML_GENRES):
        expected[row, ML_GENRES[movie]] = 1.0
    np.testing.assert_array_equal(genre, expected)
    titles = pd.Series(list(ML_TITLES.values()), index=pd.Index([10, 20, 30], name="item"), name="title")
    assert_series_equal(data.item_titles, titles, check_dtype=False)


def test_load_movielens_100k_no_split(ml_dir):
    data = load_movielens_100k(ml_dir, split=None, verify=False)
    assert_frame_equal(data.interactions, _frame(ML_DATA, ("user", "item", "rating", "timestamp")))
    assert data.test is None and data.validation is None


def test_load_movielens_100k_errors(ml_dir, tmp_path):
    with pytest.raises(ValueError, match="split must be one of"):
        load_movielens_100k(ml_dir, split="u6", verify=False)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_movielens_100k(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match=r"\['u2\.base', 'u2\.test'\]"):
        load_movielens_100k(ml_dir, split="u2", verify=False)
    (ml_dir / "u1.test").write_text(_ml_lines([(9, 40, 1, 1)]))
    with pytest.raises(ValueError, match=r"u1\.test: item id\(s\) \[40\] are not listed in u\.item"):
        load_movielens_100k(ml_dir, verify=False)
    (ml_dir / "u1.test").write_text(_ml_lines([ML_DATA[0]]))
    with pytest.raises(ValueError, match="must not overlap"):
        load_movielens_100k(ml_dir, verify=False)
    (ml_dir / "u.data").write_text(_ml_lines([r[:3] for r in ML_DATA]))
    with pytest.raises(ValueError, match=r"u\.data: expected 4 tab-separated columns.*found 3"):
        load_movielens_100k(ml_dir, split=None, verify=False)
    (ml_dir / "u.item").write_text("1|Toy Story|01-Jan-1995\n")
    with pytest.raises(ValueError, match=r"u\.item: expected 24 '\|'-separated columns.*found 3"):
        load_movielens_100k(ml_dir, split=None, verify=False)


# ------------------------------------------------------------------------------------------
# Real data (../shared/data); counts from each folder's SOURCE.md
# ------------------------------------------------------------------------------------------


def _all_splits(data):
    return pd.concat([f for f in (data.interactions, data.validation, data.test) if f is not None])


@pytest.mark.shared_data
def test_real_tiktok(shared_data):
    data = load_tiktok(shared_data / "tiktok")
    assert (len(data.interactions), len(data.validation), len(data.test)) == (59_541, 3_051, 6_130)
    every = _all_splits(data)
    assert every["user"].nunique() == 9_308 and every["user"].max() == 9_307
    assert every["item"].nunique() == 6_710
    assert data.interactions["user"].nunique() == 9_298
    assert data.validation["user"].is_unique and data.test["user"].is_unique
    feats = data.item_features
    assert feats.modalities == ("visual", "acoustic") and feats.n_items == 6_710
    for name in feats.modalities:
        matrix = feats[name]
        assert matrix.shape == (6_710, 128) and matrix.dtype == np.float32
        assert np.isfinite(matrix).all()
    assert feats["visual"].mean(dtype=np.float64) == pytest.approx(2.689, abs=1e-3)
    assert "9,308 users x 6,710 items" in data.DESCR


@pytest.mark.shared_data
def test_real_lastfm_2k_mm(shared_data):
    data = load_lastfm_2k_mm(shared_data / "lastfm-2k-mm")
    assert (len(data.interactions), len(data.validation), len(data.test)) == (44_327, 4_799, 7_219)
    every = _all_splits(data)
    assert len(every) == 56_345
    assert every["user"].nunique() == 1_858 and every["item"].nunique() == 1_425
    assert (every["rating"] == 1).all()
    feats = data.item_features
    assert feats.dims == {"text": 384, "audio": 128} and feats.n_items == 1_425
    assert all(feats[m].dtype == np.float32 and np.isfinite(feats[m]).all() for m in feats.modalities)
    assert load_lastfm_2k_mm(shared_data / "lastfm-2k-mm", audio="whisper").item_features.dims["audio"] == 512


@pytest.mark.shared_data
def test_real_movielens_100k(shared_data):
    folder = shared_data / "ml-100k"
    full = load_movielens_100k(folder, split=None)
    ratings = full.interactions
    assert len(ratings) == 100_000
    assert ratings["user"].nunique() == 943 and ratings["item"].nunique() == 1_682
    hist = ratings["rating"].value_counts().sort_index().to_dict()
    assert hist == {1: 6110, 2: 11370, 3: 27145, 4: 34174, 5: 21201}
    genre = full.item_features["genre"]
    assert genre.shape == (1_682, 19) and genre.dtype == np.float32
    per_movie = genre.sum(axis=1)
    assert per_movie.min() == 1 and per_movie.max() == 6
    np.testing.assert_array_equal(full.item_features.item_ids, np.arange(1, 1_683))
    assert full.item_titles.loc[1] == "Toy Story (1995)"
    u1 = load_movielens_100k(folder, split="u1")
    assert (len(u1.interactions), len(u1.test)) == (80_000, 20_000)
    ua = load_movielens_100k(folder, split="ua")
    assert (len(ua.interactions), len(ua.test)) == (90_570, 9_430)


@pytest.mark.shared_data
def test_real_amazon_baby(shared_data):
    data = load_amazon_baby(shared_data / "amazon-baby")
    assert (len(data.interactions), len(data.validation), len(data.test)) == (118_551, 21_682, 20_559)
    assert data.item_features is None
    every = _all_splits(data)
    assert every["user"].nunique() == 19_445
    assert data.interactions["item"].nunique() == 7_048
    assert "19,445 users x 7,050 items" in data.DESCR


# ------------------------------------------------------------------------------------------
# The DiffMM pickles go through a restricted unpickler; named loaders check published sizes
# ------------------------------------------------------------------------------------------

from invrec.persistence import UnsafePickleError  # noqa: E402


class _Crafted:
    """Unpickles as ``func(*args)``: what a pickle crafted to run code looks like."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _crafted_payloads(marker):
    import builtins
    import os
    import subprocess

    command = f"touch {marker}"
    return {
        "os.system": _Crafted(os.system, command),
        "builtins.eval": _Crafted(builtins.eval, f"open({str(marker)!r}, 'w').close()"),
        "builtins.exec": _Crafted(builtins.exec, f"open({str(marker)!r}, 'w').close()"),
        "subprocess.call": _Crafted(subprocess.call, ["touch", str(marker)]),
    }


@pytest.mark.parametrize("name", ["os.system", "builtins.eval", "builtins.exec", "subprocess.call"])
def test_load_diffmm_refuses_a_crafted_pickle_and_runs_nothing(diffmm_dir, tmp_path, name):
    marker = tmp_path / "pwned"
    with open(diffmm_dir / "valMat.pkl", "wb") as handle:
        pickle.dump(_crafted_payloads(marker)[name], handle)
    with pytest.raises(UnsafePickleError, match=r"valMat\.pkl: refused to unpickle.*not part of a scipy\.sparse"):
        load_diffmm(diffmm_dir)
    assert not marker.exists()
    with pytest.raises(UnsafePickleError, match="Nothing from the file was run"):
        load_tiktok(diffmm_dir, verify=False)
    assert not marker.exists()
    with open(diffmm_dir / "valMat.pkl", "rb") as handle:      # the crafted file does run code
        pickle.load(handle)
    assert marker.exists()


def test_load_diffmm_refuses_code_hidden_inside_a_matrix(diffmm_dir, tmp_path):
    import builtins

    marker = tmp_path / "pwned"
    dense = f"open({str(marker)!r}, 'w').close() or [[1.0, 0.0, 0.0, 0.0, 0.0]] * {N_USERS}"
    with open(diffmm_dir / "valMat.pkl", "wb") as handle:   # coo_matrix(eval(...)): an allowed type, a refused argument
        pickle.dump(_Crafted(sp.coo_matrix, _Crafted(builtins.eval, dense)), handle)
    with pytest.raises(UnsafePickleError, match=r"names builtins\.eval"):
        load_diffmm(diffmm_dir)
    assert not marker.exists()


@pytest.mark.parametrize("form", ["csr_matrix", "csc_matrix", "lil_matrix", "dok_matrix", "bsr_matrix",
                                  "dia_matrix", "coo_array", "csr_array", "dok_array"])
def test_load_diffmm_reads_every_sparse_format(diffmm_dir, form):
    rows, cols = np.array(VALID).T
    matrix = getattr(sp, form)(sp.coo_matrix((np.ones(len(VALID)), (rows, cols)), shape=(N_USERS, N_ITEMS)))
    with open(diffmm_dir / "valMat.pkl", "wb") as handle:
        pickle.dump(matrix, handle)
    assert_frame_equal(load_diffmm(diffmm_dir).validation, _frame(sorted(VALID)))


def test_load_diffmm_truncated_or_non_numeric_pickle(diffmm_dir):
    whole = (diffmm_dir / "trnMat.pkl").read_bytes()
    (diffmm_dir / "trnMat.pkl").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ValueError, match=r"trnMat\.pkl.*looks truncated"):
        load_diffmm(diffmm_dir)
    (diffmm_dir / "trnMat.pkl").write_bytes(b"")
    with pytest.raises(ValueError, match=r"trnMat\.pkl.*looks truncated"):
        load_diffmm(diffmm_dir)
    rows, cols = np.array(TRAIN).T
    complex_values = sp.coo_matrix((np.full(len(TRAIN), 1j), (rows, cols)), shape=(N_USERS, N_ITEMS))
    with open(diffmm_dir / "trnMat.pkl", "wb") as handle:
        pickle.dump(complex_values, handle)
    with pytest.raises(ValueError, match=r"trnMat\.pkl: the matrix must hold real numbers; got dtype complex128"):
        load_diffmm(diffmm_dir)


def test_named_loaders_refuse_sizes_other_than_the_published_ones(lastfm_dir, diffmm_dir, ml_dir):
    with pytest.raises(ValueError, match=r"lfm2k\.inter looks truncated: it holds 5 / 1 / 2 train / validation / "
                                         r"test interactions, but the published dataset has 44,327 / 4,799 / 7,219"):
        load_lastfm_2k_mm(lastfm_dir)
    with pytest.raises(ValueError, match=r"looks truncated: it has 3 x 5 users x items, but the published "
                                         r"dataset has 9,308 x 6,710.*verify=False"):
        load_tiktok(diffmm_dir)
    with pytest.raises(ValueError, match=r"has 19,445 x 7,050"):
        load_amazon_baby(diffmm_dir)
    with pytest.raises(ValueError, match=r"u\.item looks truncated: it has 3 movies, but the published dataset has 1,682"):
        load_movielens_100k(ml_dir)
    with pytest.raises(TypeError, match="verify must be True or False"):
        load_tiktok(diffmm_dir, verify="no")
    # the generic loaders know no published size: the same files load
    assert len(load_mmrec(lastfm_dir, name="lfm2k").interactions) == 5
    assert len(load_diffmm(diffmm_dir).interactions) == len(TRAIN)


def test_a_text_file_cut_mid_line_is_called_truncated(lastfm_dir):
    inter = lastfm_dir / "lfm2k.inter"
    text = inter.read_text()
    inter.write_text(text[: text.rindex("\t")])  # the last row loses its x_label
    with pytest.raises(ValueError, match=r"x_label.*does not end with a line break, so it looks truncated"):
        load_lastfm_2k_mm(lastfm_dir, verify=False)
    inter.write_text(text.rstrip("\n"))  # no final line break but the last row is whole: fine
    assert len(load_lastfm_2k_mm(lastfm_dir, verify=False).test) == 2


def _copy(source, target, names):
    import shutil

    target.mkdir()
    for name in names:
        shutil.copyfile(source / name, target / name)
    return target


@pytest.mark.shared_data
def test_real_lastfm_cut_at_a_line_boundary_is_refused(shared_data, tmp_path):
    folder = _copy(shared_data / "lastfm-2k-mm", tmp_path / "lfm2k", ["all-MiniLM-L6-v2.npy", "vggish.npy"])
    lines = (shared_data / "lastfm-2k-mm" / "lfm2k.inter").read_text().splitlines(keepends=True)
    (folder / "lfm2k.inter").write_text("".join(lines[: 1 + 28_984]))
    with pytest.raises(ValueError, match=r"looks truncated: it holds 28,984 / 0 / 0 train / validation / test "
                                         r"interactions, but the published dataset has 44,327 / 4,799 / 7,219"):
        load_lastfm_2k_mm(folder)
    assert len(load_lastfm_2k_mm(folder, verify=False).interactions) == 28_984
    (folder / "lfm2k.inter").write_text("".join(lines))          # the whole file loads
    assert len(load_lastfm_2k_mm(folder).interactions) == 44_327


@pytest.mark.shared_data
def test_real_tiktok_with_a_truncated_matrix_is_refused(shared_data, tmp_path):
    names = ["trnMat.pkl", "valMat.pkl", "tstMat.pkl", "image_feat.npy", "audio_feat.npy"]
    folder = _copy(shared_data / "tiktok", tmp_path / "tiktok", names)
    whole = (folder / "tstMat.pkl").read_bytes()
    (folder / "tstMat.pkl").write_bytes(whole[: len(whole) - 4096])
    with pytest.raises(ValueError, match=r"tstMat\.pkl.*looks truncated"):
        load_tiktok(folder)


@pytest.mark.shared_data
def test_real_movielens_split_cut_at_a_line_boundary_is_refused(shared_data, tmp_path):
    folder = _copy(shared_data / "ml-100k", tmp_path / "ml-100k", ["u.item", "u1.base", "u1.test"])
    lines = (folder / "u1.base").read_text().splitlines(keepends=True)
    (folder / "u1.base").write_text("".join(lines[:50_000]))
    with pytest.raises(ValueError, match=r"u1\.base looks truncated: it has 50,000 ratings, but the published "
                                         r"dataset has 80,000"):
        load_movielens_100k(folder)
