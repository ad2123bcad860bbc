"""The evaluation protocol shared by every benchmarked model.

One dataset is read once per worker process through the invrec loaders. Every model, invrec's or
Cornac's, is ranked by the same kernel (:func:`invrec.utils.ranking.chunked_top_k`, which calls
:func:`~invrec.utils.ranking.top_k` on user chunks): full ranking over the whole catalog, each
user's training and validation items set to ``-inf`` at test (training items only on the
validation split), then :func:`invrec.metrics.evaluate_ranking`.

Users without any training interaction cannot be scored by the id-based models; they are left
without a list for *every* model, so they count as 0 in the averages (TikTok: 5 of the test users;
Last.fm-2K-MM: none).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from invrec.datasets import load_lastfm_2k_mm, load_tiktok
from invrec.metrics import evaluate_ranking
from invrec.utils.ranking import chunked_top_k, rankings_to_frame

#: Benchmark name -> (loader, folder under the data directory).
DATASETS = {
    "tiktok": (load_tiktok, "tiktok"),
    "lastfm": (load_lastfm_2k_mm, "lastfm-2k-mm"),
}

#: Cut-offs and metrics of the report.
KS = (10, 20)
METRICS = ("recall", "ndcg")


@dataclass
class Split:
    """One dataset, ready for every model.

    Attributes
    ----------
    name : str
        Benchmark name of the dataset.
    train, valid, test : DataFrame
        ``user`` / ``item`` interactions (raw integer ids).
    item_features : ItemFeatures
        Content of every catalog item.
    item_ids : ndarray
        The catalog, in the order of ``item_features``: column ``j`` of every score matrix.
    user_ids : ndarray
        Users with at least one training interaction: row ``i`` of every id-based model.
    """

    name: str
    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame
    item_features: object
    item_ids: np.ndarray
    user_ids: np.ndarray

    def user_index(self, users):
        """Row indices of raw ``users`` (-1 for users without training interactions)."""
        return pd.Index(self.user_ids).get_indexer(users)

    def item_index(self, items):
        """Column indices of raw ``items`` (-1 outside the catalog)."""
        return pd.Index(self.item_ids).get_indexer(items)

    def eval_users(self, frame):
        """Raw ids of the users of ``frame`` that can be ranked (known in training), in order."""
        users = pd.unique(frame["user"].to_numpy())
        return users[self.user_index(users) >= 0]

    def interaction_matrix(self, *frames):
        """0/1 CSR (n_users, n_items) of the known (user, item) pairs of ``frames``."""
        table = pd.concat([f[["user", "item"]] for f in frames], ignore_index=True)
        rows, cols = self.user_index(table["user"]), self.item_index(table["item"])
        keep = (rows >= 0) & (cols >= 0)
        shape = (len(self.user_ids), len(self.item_ids))
        out = sp.csr_array((np.ones(int(keep.sum()), np.float32), (rows[keep], cols[keep])), shape=shape)
        out.sum_duplicates()
        out.data[:] = 1.0
        return out


def dataset_folder(name, data_dir):
    """The folder holding dataset ``name`` under ``data_dir``."""
    return Path(data_dir) / DATASETS[name][1]


def load_split(name, data_dir):
    """Read dataset ``name`` with its invrec loader and fix the catalog and user order.

    Parameters
    ----------
    name : {"tiktok", "lastfm"}
    data_dir : str or Path
        Folder holding ``tiktok/`` and ``lastfm-2k-mm/``.

    Returns
    -------
    Split
    """
    loader, _ = DATASETS[name]
    bunch = loader(dataset_folder(name, data_dir))
    keep = ["user", "item"]
    train, valid, test = (frame[keep].reset_index(drop=True)
                          for frame in (bunch.interactions, bunch.validation, bunch.test))
    return Split(
        name=name, train=train, valid=valid, test=test, item_features=bunch.item_features,
        item_ids=np.asarray(bunch.item_features.item_ids),
        user_ids=np.sort(pd.unique(train["user"].to_numpy())),
    )


def chunk_size(n_items):
    """Users scored at once: about 2**24 scores per chunk (as invrec's own ``recommend``)."""
    return max(1, min(4096, (1 << 24) // max(n_items, 1)))


def rank(split, score_fn, users, exclude, k=None):
    """Top-``k`` lists of raw ``users`` from a full score function, with ``exclude`` masked.

    Parameters
    ----------
    split : Split
    score_fn : callable
        ``score_fn(rows)`` returns the ``(len(rows), n_items)`` score tensor of user rows ``rows``.
    users : array-like
        Raw ids of the users to rank (all known in training).
    exclude : sparse matrix of shape (n_users, n_items)
        Pairs never ranked (indexed by user row).
    k : int, default=None
        Length of each list; None is the largest cut-off reported (``max(KS)``).

    Returns
    -------
    DataFrame
        ``user``, ``item``, ``score``, ``rank`` with raw ids, as ``recommend`` returns.
    """
    k = max(KS) if k is None else k
    rows = split.user_index(users)
    top, values = chunked_top_k(score_fn, rows, k, exclude=exclude, chunk_size=chunk_size(len(split.item_ids)))
    return rankings_to_frame(users, top, values, item_ids=split.item_ids)


def evaluate(recommendations, relevant):
    """Recall and NDCG at 10 and 20 of ``recommendations`` against the ``relevant`` rows.

    Returns
    -------
    dict
        ``{"recall@10": ..., "recall@20": ..., "ndcg@10": ..., "ndcg@20": ..., "n_users": ...}``.
    """
    table = evaluate_ranking(recommendations, relevant, k=KS, metrics=METRICS)
    row = table.loc["all"]
    out = {f"{m}@{k}": float(row[f"{m}@{k}"]) for m in METRICS for k in KS}
    out["n_users"] = int(row["n_users"])
    return out


def validation_ndcg(split, score_fn, exclude_train):
    """NDCG@20 on the validation split, training items excluded (the model-selection metric)."""
    recs = rank(split, score_fn, split.eval_users(split.valid), exclude_train)
    table = evaluate_ranking(recs, split.valid, k=20, metrics="ndcg")
    return float(table.loc["all", "ndcg@20"])


def dense_score_fn(user_vectors, item_vectors):
    """``score_fn(rows) = user_vectors[rows] @ item_vectors.T`` as float32 torch tensors."""
    users = torch.as_tensor(np.ascontiguousarray(user_vectors, dtype=np.float32))
    items_t = torch.as_tensor(np.ascontiguousarray(item_vectors, dtype=np.float32)).T.contiguous()

    def score_fn(rows):
        return users[torch.as_tensor(rows, dtype=torch.long)] @ items_t

    return score_fn
