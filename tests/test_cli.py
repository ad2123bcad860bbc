"""The command line's demo: runs end to end and reports the shift problem."""

import subprocess
import sys

import pytest

from invrec.__main__ import main, run_demo


def test_run_demo_table_shows_the_shift():
    table = run_demo(n_users=200, n_items=150, k=(20,), random_state=0)
    ndcg = table.set_index(["model", "split"])["ndcg@20"]
    assert set(table["split"]) == {"validation (IID)", "test (IID)", "test (OOD)"}
    assert ndcg["oracle: spurious attribute", "test (IID)"] > ndcg["oracle: true preference", "test (IID)"]
    assert ndcg["oracle: true preference", "test (OOD)"] > 10 * ndcg["oracle: spurious attribute", "test (OOD)"]
    assert (table["n_users"] > 0).all()


def test_main_prints_table(capsys):
    assert main(["demo", "--n-users", "60", "--n-items", "80", "--k", "5"]) == 0
    out = capsys.readouterr().out
    assert "ndcg@5" in out and "popularity" in out and "test (OOD)" in out


def test_main_without_command_runs_demo(capsys):
    assert main(["--n-users", "40", "--n-items", "60"]) == 0
    assert "invrec demo" in capsys.readouterr().out


def test_bad_argument_is_a_clear_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--n-items", "5"])
    assert exc.value.code == 2
    assert "n_items" in capsys.readouterr().err


def test_python_dash_m_invrec_runs():
    done = subprocess.run([sys.executable, "-m", "invrec", "--n-users", "50", "--n-items", "60"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "oracle: true preference" in done.stdout


# ---------------------------------------------------------------- evaluate / fit / recommend
import json  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from invrec.__main__ import load_dataset, load_model, make_model  # noqa: E402


def _write_mmrec(folder, seed=0):
    """A tiny MMRec-layout folder whose popularity ranking has no ties among candidates.

    Users 0..23 fall in groups g = u // 3: they train on items 0..g, validate on g + 1 and are
    tested on a random item of g + 2..9. Users 24 and 25 only train (items 8, 9 and 8), so the
    training counts 24, 21, ..., 3, 2, 1 of items 0..9 are all distinct. 12 items, one modality.
    """
    rng = np.random.default_rng(seed)
    rows = [(24, 8, 0), (24, 9, 0), (25, 8, 0)]
    for user in range(24):
        group = user // 3
        rows += [(user, item, 0) for item in range(group + 1)]
        rows += [(user, group + 1, 1), (user, int(rng.integers(group + 2, 10)), 2)]
    frame = pd.DataFrame(rows, columns=["userID", "itemID", "x_label"])
    folder.mkdir()
    frame.to_csv(folder / "tiny.inter", sep="\t", index=False)
    np.save(folder / "image_feat.npy", rng.normal(size=(12, 3)).astype(np.float32))
    return frame


def test_evaluate_popularity_matches_hand_count(tmp_path, capsys):
    frame = _write_mmrec(tmp_path / "tiny")
    out = tmp_path / "metrics.json"
    assert main(["evaluate", str(tmp_path / "tiny"), "--model", "popularity", "--k", "5",
                 "--json", str(out)]) == 0
    assert "recall@5" in capsys.readouterr().out
    got = json.loads(out.read_text())["metrics"]
    # By hand: the unseen items of user u in popularity order are g + 2, g + 3, ..., so the
    # test item t sits at rank t - g - 1; a hit at 5 when that rank is <= 5.
    test = frame[frame.x_label == 2]
    ranks = test.itemID.to_numpy() - test.userID.to_numpy() // 3 - 1
    assert got["recall@5"] == pytest.approx(np.mean(ranks <= 5))
    assert got["ndcg@5"] == pytest.approx(np.mean(np.where(ranks <= 5, 1 / np.log2(ranks + 1), 0)))
    assert got["n_users"] == 24


def test_fit_then_recommend_csv(tmp_path, capsys):
    model_file = tmp_path / "model.invrec"
    assert main(["fit", "--model", "ultragcn", "--param", "max_epochs=2", "--param", "embedding_dim=8",
                 "--param", "random_state=0", "-o", str(model_file)]) == 0
    capsys.readouterr()
    assert main(["recommend", str(model_file), "--users", "0", "3", "--n", "4"]) == 0
    table = pd.read_csv(__import__("io").StringIO(capsys.readouterr().out))
    assert list(table.columns) == ["user", "item", "score", "rank"]
    assert table.groupby("user").size().to_dict() == {0: 4, 3: 4}
    expected = load_model(model_file).recommend([0, 3], n=4)
    np.testing.assert_array_equal(table["item"], expected["item"])


def test_fit_on_a_folder_and_recommend_from_users_file(tmp_path):
    _write_mmrec(tmp_path / "tiny")
    model_file = tmp_path / "pop.joblib"
    assert main(["fit", str(tmp_path / "tiny"), "--model", "popularity", "-o", str(model_file)]) == 0
    (tmp_path / "users.txt").write_text("1\n2\n")
    out = tmp_path / "recs.csv"
    assert main(["recommend", str(model_file), "--users-file", str(tmp_path / "users.txt"),
                 "--n", "3", "-o", str(out)]) == 0
    recs = pd.read_csv(out)
    assert recs["user"].tolist() == [1, 1, 1, 2, 2, 2]
    # the model saw items 0 (training) and 1 (validation) of these users: both left out
    assert recs["item"].tolist() == [2, 3, 4, 2, 3, 4]


@pytest.mark.parametrize("argv, message", [
    (["evaluate", "/no/such/folder"], "does not exist"),
    (["recommend", "/no/such/model.joblib", "--users", "1"], "does not exist"),
    (["fit", "--model", "popularity", "-o", "/no/such/dir/m.joblib"], "does not exist"),
    (["fit", "--model", "ultragcn", "--param", "nope=1", "-o", "m.joblib"], "no parameter ['nope']"),
    (["fit", "--model", "ultragcn", "--param", "oops", "-o", "m.joblib"], "key=value"),
])
def test_bad_paths_and_params_are_clear_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_unknown_layout_and_non_model_file(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no known dataset layout"):
        load_dataset(tmp_path / "empty")
    junk = tmp_path / "junk.joblib"
    junk.write_text("not a model")
    with pytest.raises(ValueError, match="is not an invrec model file"):
        load_model(junk)
    with pytest.raises(ValueError, match="neither an invrec model file nor a joblib/pickle file"):
        load_model(junk, trusted=True)
    import joblib

    joblib.dump({"a": 1}, tmp_path / "dict.joblib")
    with pytest.raises(ValueError, match="not a zip archive.*--trusted"):
        load_model(tmp_path / "dict.joblib")
    with pytest.raises(ValueError, match="not an invrec estimator"):
        load_model(tmp_path / "dict.joblib", trusted=True)


def test_make_model_parses_literals():
    model = make_model("ultragcn", ["learning_rate=3e-3", "loss_weights=(1, 0, 1, 1)", "device=cpu"])
    assert model.learning_rate == 3e-3 and model.loss_weights == (1, 0, 1, 1) and model.device == "cpu"
    with pytest.raises(ValueError, match="unknown model"):
        make_model("bpr")


@pytest.mark.shared_data
def test_evaluate_popularity_reproduces_lastfm_benchmark(shared_data):
    from invrec.__main__ import evaluate_model

    data = load_dataset(shared_data / "lastfm-2k-mm")
    table = evaluate_model(make_model("popularity"), data)
    # benchmarks/README.md, Latest results: invrec Popularity on Last.fm, R@20 .1254, N@20 .0777.
    assert table.loc["all", "recall@20"] == pytest.approx(0.1254, abs=5e-5)
    assert table.loc["all", "ndcg@20"] == pytest.approx(0.0777, abs=5e-5)


@pytest.mark.shared_data
def test_evaluate_matches_the_benchmark_runner(shared_data, monkeypatch):
    """``invrec evaluate`` and ``benchmarks/run.py`` score the same fit identically on Last.fm."""
    from pathlib import Path

    from invrec.__main__ import evaluate_model

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import protocol
    import runners

    settings = {"max_epochs": 2, "embedding_dim": 16, "content_dim": 8, "random_state": 0, "device": "cpu"}
    split = protocol.load_split("lastfm", shared_data)
    fitted = runners.run_ultragcn(split, settings)
    bench = protocol.evaluate(fitted.recommend(split.eval_users(split.test)), split.test)
    table = evaluate_model(make_model("ultragcn", [f"{k}={v!r}" for k, v in settings.items()]),
                           load_dataset(shared_data / "lastfm-2k-mm"))
    for metric in ("recall@10", "recall@20", "ndcg@10", "ndcg@20"):
        assert table.loc["all", metric] == pytest.approx(bench[metric], rel=1e-9), metric
    assert bench["ndcg@20"] > 0.05  # a trained model, not two empty rankings that agree


# ---------------------------------------------------------------- --model names
def test_model_names_are_the_discovered_estimators():
    from invrec.__main__ import MODELS, build_parser
    from invrec.utils.discovery import all_estimators, estimator_aliases

    assert MODELS == estimator_aliases()
    assert set(MODELS.values()) == {cls for _, cls in all_estimators()}
    assert {"popularity", "ultragcn", "painvrl", "milk", "eior"} <= set(MODELS)  # old names kept
    for name in MODELS:
        args = build_parser().parse_args(["fit", "--model", name, "-o", "m.joblib"])
        assert args.model == name and type(make_model(name)) is MODELS[name]


def test_fit_eior_from_the_command_line(tmp_path, capsys):
    _write_mmrec(tmp_path / "tiny")
    model_file = tmp_path / "eior.joblib"
    tiny = ["max_epochs=2", "embedding_dim=4", "content_dim=4", "n_negatives=2", "n_outer_iter=1", "random_state=0"]
    argv = ["fit", str(tmp_path / "tiny"), "--model", "eior", "-o", str(model_file)]
    assert main(argv + [arg for p in tiny for arg in ("--param", p)]) == 0
    assert "fitted EIORRecommender" in capsys.readouterr().out
    model = load_model(model_file)
    assert type(model).__name__ == "EIORRecommender" and model.n_outer_iter == 1
    assert model.recommend([0, 3], n=3).groupby("user").size().to_dict() == {0: 3, 3: 3}
    with pytest.raises(SystemExit) as exc:
        main(["fit", "--model", "no-such-model", "-o", str(model_file)])
    assert exc.value.code == 2 and "eior" in capsys.readouterr().err


# ---------------------------------------------------------------- safe model files, --trusted
def _fit_popularity(tmp_path, name="pop.invrec"):
    _write_mmrec(tmp_path / "tiny")
    model_file = tmp_path / name
    assert main(["fit", str(tmp_path / "tiny"), "--model", "popularity", "-o", str(model_file)]) == 0
    return model_file


def test_fit_writes_an_invrec_archive_that_loads_without_trust(tmp_path, capsys):
    import zipfile

    from invrec.persistence import read_manifest

    model_file = _fit_popularity(tmp_path)
    assert zipfile.is_zipfile(model_file)
    assert read_manifest(model_file)["estimator"] == "invrec.baselines.PopularityRecommender"
    capsys.readouterr()
    assert main(["recommend", str(model_file), "--users", "1", "--n", "2"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "user,item,score,rank"


def test_a_pickle_model_file_needs_trusted(tmp_path, capsys):
    import joblib

    from invrec.persistence import load

    old = tmp_path / "old.joblib"
    joblib.dump(load(_fit_popularity(tmp_path)), old)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(["recommend", str(old), "--users", "1"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "--trusted" in err and "runs code" in err and "Traceback" not in err
    assert main(["recommend", str(old), "--users", "1", "--n", "3", "--trusted"]) == 0
    assert len(pd.read_csv(__import__("io").StringIO(capsys.readouterr().out))) == 3


def test_recommend_refuses_a_crafted_model_file_and_runs_nothing(tmp_path, capsys):
    import hashlib
    import os
    import pickle
    import zipfile

    model_file = _fit_popularity(tmp_path)
    marker = tmp_path / "pwned"

    class Crafted:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    payload = pickle.dumps(Crafted())
    with zipfile.ZipFile(model_file) as archive:
        content = {name: archive.read(name) for name in archive.namelist()}
    manifest = json.loads(content.pop("manifest.json"))
    content["payload.pkl"] = payload
    manifest["members"]["payload.pkl"] = {"sha256": hashlib.sha256(payload).hexdigest(), "size": len(payload)}
    crafted = tmp_path / "crafted.invrec"
    with zipfile.ZipFile(crafted, "w") as archive:
        for name, data in {**content, "manifest.json": json.dumps(manifest).encode()}.items():
            archive.writestr(name, data)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(["recommend", str(crafted), "--users", "1"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "refers to" in err and "system" in err and "--trusted" in err
    assert "Traceback" not in err and not marker.exists()


def test_recommend_help_documents_trusted():
    done = subprocess.run([sys.executable, "-m", "invrec", "recommend", "--help"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    assert "--trusted" in text and "RUNS CODE" in text


@pytest.mark.parametrize("param, name", [("random_state=foo", "random_state"), ("max_epochs=-1", "max_epochs"),
                                         ("device=3", "device"), ("loss_weights=(1, 2)", "loss_weights")])
def test_a_bad_param_value_is_one_line_without_traceback(param, name, tmp_path):
    done = subprocess.run([sys.executable, "-m", "invrec", "fit", "--model", "ultragcn", "--param", param,
                           "-o", str(tmp_path / "m.invrec")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert f"'{name}' parameter" in done.stderr and f"--param {param}" in done.stderr
    assert not (tmp_path / "m.invrec").exists()


def test_make_model_checks_values_before_any_data_is_read():
    with pytest.raises(ValueError, match=r"'random_state' parameter of UltraGCNRecommender.*--param random_state=foo"):
        make_model("ultragcn", ["random_state=foo"])
    with pytest.raises(ValueError, match=r"'n_environments' parameter of EnvironmentInference.*"
                                         r"--param environments__n_environments=0"):
        make_model("painvrl", ["environments__n_environments=0"])
    assert make_model("painvrl", ["environments__n_environments=3"]).environments.n_environments == 3
