"""Model selection on a Dask cluster through joblib (docs/user_guide/distributed.rst).

A LocalCluster of two single-threaded worker processes, as the page recommends, runs the
searches; each must give exactly the sequential search's results, and its fits must have run on
the cluster's workers (the task stream records them), not silently in this process.
"""

import logging

import numpy as np
import pytest
from scipy.stats import loguniform
from sklearn.model_selection import GridSearchCV, RandomizedSearchCV

pytest.importorskip("dask")
distributed = pytest.importorskip("distributed")
joblib = pytest.importorskip("joblib")

from invrec.baselines import UltraGCNRecommender  # noqa: E402
from invrec.datasets import make_multimodal_interactions  # noqa: E402
from invrec.metrics import make_ranking_scorer  # noqa: E402
from invrec.model_selection import PerUserHoldout  # noqa: E402

TINY = dict(embedding_dim=4, content_dim=4, max_epochs=2, batch_size=64, n_negatives=4,
            early_stopping=False, random_state=0, device="cpu")


@pytest.fixture(scope="module")
def client():
    """Two worker processes x one thread, on free ports; closed (workers stopped) after the module."""
    import dask

    with dask.config.set({"distributed.comm.timeouts.connect": "30s",
                          "distributed.deploy.lost-worker-timeout": "15s"}):
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                           dashboard_address=":0", silence_logs=logging.ERROR)
        try:
            with distributed.Client(cluster, timeout="30s") as dask_client:
                dask_client.wait_for_workers(2, timeout=60)
                yield dask_client
        finally:
            cluster.close(timeout=30)


@pytest.fixture(scope="module")
def data():
    return make_multimodal_interactions(n_users=30, n_items=20, interactions_per_user=4, random_state=0)


def _fit_on(search, data, dask_client=None):
    """Fit ``search`` in this process, or on ``dask_client``'s cluster; the task keys it ran there."""
    if dask_client is None:
        return search.fit(data.interactions, item_features=data.item_features), []
    with distributed.get_task_stream(client=dask_client) as stream, joblib.parallel_config(backend="dask"):
        search.fit(data.interactions, item_features=data.item_features)
    return search, stream.data


def _assert_same_search(sequential, on_dask):
    keys = [key for key in sequential.cv_results_ if key.startswith(("split", "mean_test", "rank_", "param"))]
    assert keys
    for key in keys:
        np.testing.assert_array_equal(np.asarray(on_dask.cv_results_[key]), np.asarray(sequential.cv_results_[key]),
                                      err_msg=key)
    assert on_dask.best_params_ == sequential.best_params_
    # the refitted model is the same model: the same scores for every user
    np.testing.assert_array_equal(on_dask.best_estimator_.recommend([0, 1, 2], n=5)["score"],
                                  sequential.best_estimator_.recommend([0, 1, 2], n=5)["score"])


def test_grid_search_on_dask_equals_the_sequential_search(client, data):
    def search():
        return GridSearchCV(UltraGCNRecommender(**TINY), {"embedding_dim": [4, 8]},
                            cv=PerUserHoldout(n_splits=2, random_state=0),
                            scoring=make_ranking_scorer("ndcg", k=5), n_jobs=2)

    sequential, _ = _fit_on(search().set_params(n_jobs=1), data)
    on_dask, tasks = _fit_on(search(), data, client)
    _assert_same_search(sequential, on_dask)
    # the candidates differ (else the equality above would not tell the candidates apart)
    assert sequential.cv_results_["split0_test_score"][0] != sequential.cv_results_["split0_test_score"][1]
    # 2 candidates x 2 folds ran as cluster tasks, on worker processes
    assert len(tasks) >= 4
    workers = set(client.scheduler_info()["workers"])
    assert {task["worker"] for task in tasks} <= workers


def test_randomized_search_with_scattered_data_on_dask(client, data):
    def search():
        return RandomizedSearchCV(UltraGCNRecommender(**TINY), {"learning_rate": loguniform(1e-3, 1e-1)},
                                  n_iter=2, cv=PerUserHoldout(n_splits=2, random_state=0),
                                  scoring=make_ranking_scorer("recall", k=5), random_state=0, n_jobs=2)

    sequential, _ = _fit_on(search().set_params(n_jobs=1), data)
    with distributed.get_task_stream(client=client) as stream, \
            joblib.parallel_config(backend="dask", scatter=[data.interactions, data.item_features]):
        on_dask = search().fit(data.interactions, item_features=data.item_features)
    _assert_same_search(sequential, on_dask)
    assert len(stream.data) >= 4
