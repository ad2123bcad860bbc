"""The command line: the main job (demo), evaluate / fit / recommend for every estimator, the help text."""

import io
import json
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import invrec
from invrec.__main__ import (MODELS, build_parser, evaluate_model, json_params, load_dataset, load_model,
                             main, make_model, run_demo, summarize_demo)
from invrec.cli.demo import DEMO_MODELS, ERM, INVARIANT, ORACLES, POPULARITY
from invrec.cli.files import DEFAULT_OUT
from invrec.cli.text import plain_text
from invrec.datasets import make_multimodal_interactions
from invrec.diagnostics import oracle_ndcg
from invrec.metrics import evaluate_ranking

#: Settings that make every estimator's fit a few milliseconds (each keeps those it has).
TINY = {"max_epochs": 2, "embedding_dim": 4, "content_dim": 4, "n_negatives": 2, "n_outer_iter": 1,
        "device": "cpu", "environments__n_environments": 2, "environments__max_rounds": 1,
        "environments__epochs": 1, "mask__epochs": 2}


def _tiny_params(name, **extra):
    """``--param`` arguments of TINY (and ``extra``) for the estimator called ``name``."""
    accepted = make_model(name).get_params(deep=True)
    settings = {**TINY, "random_state": 0, **extra}
    return [f"{key}={value!r}" for key, value in settings.items() if key in accepted]


def _as_arguments(params):
    return [arg for item in params for arg in ("--param", item)]


# ---------------------------------------------------------------- the main job
@pytest.fixture(scope="module")
def tiny_demo():
    """The demo on a tiny problem with tiny fits: its table, its models and its data."""
    table, models = run_demo(n_users=40, n_items=30, k=(5, 10), random_state=0, params=TINY,
                             n_threads=None, return_models=True)
    return table, models, make_multimodal_interactions(n_users=40, n_items=30, random_state=0)


def test_demo_table_has_a_row_per_model_and_split(tiny_demo):
    table, models, _ = tiny_demo
    names = [*ORACLES, *DEMO_MODELS]
    assert list(table["model"]) == [name for name in names for _ in range(2)]
    assert list(table["split"]) == ["IID", "OOD"] * len(names)
    assert {name: type(model) for name, model in models.items()} == DEMO_MODELS
    assert table.loc[table["model"].isin(ORACLES), "fit_seconds"].isna().all()
    assert (table.loc[table["model"].isin(DEMO_MODELS), "fit_seconds"] > 0).all()
    # the demo's defaults are the estimators' own: only TINY and the seed were changed
    for name, model in models.items():
        defaults = type(model)().get_params(deep=True)
        changed = {key for key, value in model.get_params(deep=True).items()
                   if "__" in key or not hasattr(value, "get_params")
                   if key in defaults and value != defaults[key]}
        assert changed <= set(TINY) | {"random_state"}, name


def test_demo_numbers_are_those_of_its_models(tiny_demo):
    table, models, data = tiny_demo
    got = table.set_index(["model", "split"])
    for name, model in models.items():
        recs = model.recommend(model.user_ids_, n=10)
        for split, rows in (("IID", data.test), ("OOD", data.test_ood)):
            expected = evaluate_ranking(recs, rows[["user", "item"]], k=(5, 10)).loc["all"]
            for column in ("recall@5", "ndcg@5", "recall@10", "ndcg@10", "n_users"):
                assert got.loc[(name, split), column] == pytest.approx(expected[column], rel=1e-12), (name, split)
    # the true-preference oracle, by diagnostics' own implementation of that ranking
    for split, key in (("IID", "test"), ("OOD", "test_ood")):
        assert got.loc[("oracle: true preference", split), "ndcg@10"] == pytest.approx(oracle_ndcg(data, key, k=10))


def test_summary_puts_the_splits_side_by_side_with_the_ratios(tiny_demo):
    table, _, _ = tiny_demo
    summary = summarize_demo(table)
    ndcg = table.set_index(["model", "split"])["ndcg@10"]
    assert list(summary.index) == [*ORACLES, *DEMO_MODELS]
    assert list(summary.columns) == ["IID recall@10", "IID ndcg@10", "OOD recall@10", "OOD ndcg@10",
                                     "OOD / ERM", "OOD / popularity"]
    assert summary.loc["EIOR", "IID ndcg@10"] == ndcg["EIOR", "IID"]
    for name in INVARIANT:
        assert summary.loc[name, "OOD / ERM"] == pytest.approx(ndcg[name, "OOD"] / ndcg[ERM, "OOD"])
        assert summary.loc[name, "OOD / popularity"] == pytest.approx(ndcg[name, "OOD"] / ndcg[POPULARITY, "OOD"])
    others = [name for name in summary.index if name not in INVARIANT]
    assert summary.loc[others, ["OOD / ERM", "OOD / popularity"]].isna().all().all()
    assert list(summarize_demo(table, k=5).columns)[:2] == ["IID recall@5", "IID ndcg@5"]


def test_summary_ratio_by_hand():
    table = pd.DataFrame({"model": [ERM, ERM, "MILK", "MILK"], "split": ["IID", "OOD"] * 2,
                          "recall@20": [.5, .1, .4, .2], "ndcg@20": [.4, .125, .3, 0.5]})
    summary = summarize_demo(table)
    assert summary.loc["MILK", "OOD / ERM"] == 4.0
    assert np.isnan(summary.loc["MILK", "OOD / popularity"])       # popularity was not run
    zero = table.assign(**{"ndcg@20": [.4, 0.0, .3, .5]})
    assert summarize_demo(zero).loc["MILK", "OOD / ERM"] == np.inf


def test_oracles_show_the_shift():
    table = run_demo(n_users=200, n_items=150, k=(20,), random_state=0, models=["popularity"])
    ndcg = table.set_index(["model", "split"])["ndcg@20"]
    assert ndcg["oracle: spurious attribute", "IID"] > ndcg["oracle: true preference", "IID"]
    assert ndcg["oracle: true preference", "OOD"] > 10 * ndcg["oracle: spurious attribute", "OOD"]
    assert (table["n_users"] > 0).all()


@pytest.mark.parametrize("kwargs, message", [
    ({"models": ["bpr"]}, "unknown demo model"),
    ({"params": {"nope": 1}}, r"no demo model has the parameter \['nope'\]"),
    ({"params": {"max_epochs": -1}}, "'max_epochs' parameter of UltraGCNRecommender"),
    ({"k": ()}, "at least one cut-off"),
    ({"n_threads": 0}, "n_threads"),
])
def test_run_demo_refuses_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        run_demo(40, 30, **kwargs)


def test_demo_prints_what_it_measured(capsys):
    argv = ["demo", "--n-users", "40", "--n-items", "30", "--k", "5", "--no-progress",
            "--models", "popularity", "ultragcn", "painvrl", *_as_arguments(f"{k}={v!r}" for k, v in TINY.items())]
    assert main(argv) == 0
    out = capsys.readouterr().out
    table = run_demo(40, 30, k=(5,), models=list(DEMO_MODELS)[:3], params=TINY)
    summary = summarize_demo(table)
    assert "OOD ndcg@5" in out.splitlines()[3] and "OOD / ERM" in out.splitlines()[3]
    for name in summary.index:
        line = next(line for line in out.splitlines() if line.startswith(name + " "))
        expected = [f"{value:.4f}" for value in summary.loc[name].dropna()]
        assert line.split()[-len(expected):] == expected, name
    assert "EIOR" not in out.split("\n\n")[1]        # only the models asked for


def test_demo_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    assert main(["demo", "--n-users", "40", "--n-items", "30", "--models", "popularity", "--no-progress",
                 "--plot", "demo.png", "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "demo.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"figure written to {tmp_path / 'out' / 'demo.png'}" in capsys.readouterr().out


def test_demo_plot_without_matplotlib_says_so_before_fitting(monkeypatch, capsys, tmp_path):
    import invrec.cli.demo

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    monkeypatch.setattr(invrec.cli.demo, "run_demo", lambda *a, **k: pytest.fail("fitted before the check"))
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--plot", "demo.png", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "pip install 'invrec[plot]'" in err and len(err.splitlines()) == 1


def test_main_without_command_runs_demo(capsys):
    assert main(["--n-users", "40", "--n-items", "60", "--models", "popularity", "--no-progress"]) == 0
    assert "invrec demo" in capsys.readouterr().out


def test_bad_argument_is_a_clear_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--n-items", "5", "--models", "popularity"])
    assert exc.value.code == 2
    assert "n_items" in capsys.readouterr().err


def test_python_dash_m_invrec_runs():
    done = subprocess.run([sys.executable, "-m", "invrec", "--n-users", "50", "--n-items", "60",
                           "--models", "popularity"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "oracle: true preference" in done.stdout and "popularity" in done.stdout


# ---------------------------------------------------------------- --version, --help
def test_version(capsys):
    for flag in ("--version", "-V"):
        with pytest.raises(SystemExit) as exc:
            main([flag])
        assert exc.value.code == 0 and capsys.readouterr().out == f"invrec {invrec.__version__}\n"
    done = subprocess.run([sys.executable, "-m", "invrec", "--version"], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == f"invrec {invrec.__version__}"


def _subparsers(parser):
    import argparse

    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


RST = re.compile(r"``|`|:[a-z]+:|\*\*|^\s*\.\. ", re.M)


@pytest.mark.parametrize("command", [[], ["demo"], ["evaluate"], ["fit"], ["recommend"]])
def test_help_is_plain_text(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*command, "--help"])
    text = capsys.readouterr().out
    assert exc.value.code == 0 and "usage: invrec" in text
    assert not RST.search(text), RST.search(text)


def test_every_demo_option_has_help():
    demo = _subparsers(build_parser())["demo"]
    options = [action for action in demo._actions if action.option_strings and action.dest != "help"]
    assert {a.dest for a in options} >= {"n_users", "n_items", "k", "seed", "models", "param", "plot", "out"}
    for action in options:
        assert action.help and len(action.help) > 10, action.dest


def test_plain_text_by_hand():
    rst = """Read with :func:`invrec.load` (or :class:`~invrec.persistence.ModelFileError`), see
    :doc:`the guide <user_guide/cli>`; ``--trusted`` **runs code**, *beware*.

    - one
      item
    - `two`_"""
    assert plain_text(rst, width=200) == (
        "Read with invrec.load (or ModelFileError), see the guide; --trusted runs code, beware.\n\n"
        "- one item\n- two")


# ---------------------------------------------------------------- evaluate / fit / recommend




def _write_mmrec(folder, seed=0):
    """A tiny MMRec-layout folder whose popularity ranking has no ties among candidates.

    Users 0..23 fall in groups g = u // 3: they train on items 0..g, validate on g + 1 and are
    tested on a random item of g + 2..9. Users 24 and 25 only train (items 8, 9 and 8), so the
    training counts 24, 21, ..., 3, 2, 1 of items 0..9 are all distinct. 12 items, one modality,
    and a rating 1 + (user + 2 item) mod 5 on every row (for the rating regressor).
    """
    rng = np.random.default_rng(seed)
    rows = [(24, 8, 0), (24, 9, 0), (25, 8, 0)]
    for user in range(24):
        group = user // 3
        rows += [(user, item, 0) for item in range(group + 1)]
        rows += [(user, group + 1, 1), (user, int(rng.integers(group + 2, 10)), 2)]
    frame = pd.DataFrame(rows, columns=["userID", "itemID", "x_label"])
    frame["rating"] = 1 + (frame.userID + 2 * frame.itemID) % 5
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


# ---------------------------------------------------------------- every estimator, end to end
@pytest.mark.parametrize("name", sorted(MODELS))
def test_fit_recommend_evaluate_round_trip(name, tmp_path, capsys):
    """fit -> recommend -> evaluate from the command line for every estimator, checked against Python."""
    _write_mmrec(tmp_path / "tiny")
    folder, out = str(tmp_path / "tiny"), str(tmp_path / "out")
    params = _tiny_params(name)
    assert main(["fit", folder, "--model", name, *_as_arguments(params), "-o", "m.invrec", "--out", out]) == 0
    model = load_model(tmp_path / "out" / "m.invrec")
    assert type(model) is MODELS[name] and json_params(model) == json_params(make_model(name, params))
    assert main(["recommend", "m.invrec", "--out", out, "--users", "0", "3", "--n", "3", "-o", "recs.csv"]) == 0
    recs = pd.read_csv(tmp_path / "out" / "recs.csv")
    expected = model.recommend([0, 3], n=3)
    np.testing.assert_array_equal(recs[["user", "item", "rank"]], expected[["user", "item", "rank"]])
    np.testing.assert_allclose(recs["score"], expected["score"], rtol=1e-6)

    assert main(["evaluate", folder, "--model", name, *_as_arguments(params), "--k", "3",
                 "--json", "e.json", "--out", out]) == 0
    capsys.readouterr()
    report = json.loads((tmp_path / "out" / "e.json").read_text())
    assert report["estimator"] == MODELS[name].__name__ and report["invrec_version"] == invrec.__version__
    again = evaluate_model(make_model(name, params), load_dataset(folder), k=(3,))
    assert set(report["metrics"]) == set(again.columns)
    for column, value in report["metrics"].items():
        assert value == pytest.approx(float(again.loc["all", column]), rel=1e-9), column
    assert ("rmse" in report["metrics"]) == name.endswith("-regressor")


def test_parameters_are_typed_json_and_round_trip(tmp_path, capsys):
    _write_mmrec(tmp_path / "tiny")
    params = _tiny_params("painvrl", handle_unknown="ignore", loss_weights=(1, 0, 1, 1), learning_rate=3e-3)
    assert main(["evaluate", str(tmp_path / "tiny"), "--model", "painvrl", *_as_arguments(params),
                 "--json", str(tmp_path / "e.json")]) == 0
    text = (tmp_path / "e.json").read_text()
    report = json.loads(text)
    got = report["params"]
    assert got["handle_unknown"] == "ignore" and "\"'ignore'\"" not in text
    assert got["loss_weights"] == [1, 0, 1, 1] and got["learning_rate"] == 3e-3
    assert got["random_state"] == 0 and got["early_stopping"] is True and got["fusion"] is None
    assert got["environments__n_environments"] == 2 and "environments" not in got   # a part: its own params
    assert isinstance(report["metrics"]["n_users"], int) and isinstance(report["metrics"]["ndcg@20"], float)
    # each value passed back as --param name=<its JSON> builds the same estimator
    rebuilt = make_model("painvrl", [f"{key}={json.dumps(value)}" for key, value in got.items()])
    assert json_params(rebuilt) == got
    assert rebuilt.loss_weights == [1, 0, 1, 1] and rebuilt.environments.n_environments == 2


# ---------------------------------------------------------------- the output folder
def test_outputs_go_to_the_output_folder(tmp_path, monkeypatch, capsys):
    from pathlib import Path

    _write_mmrec(tmp_path / "tiny")
    monkeypatch.chdir(tmp_path)
    assert main(["fit", "tiny", "--model", "popularity", "-o", "pop.invrec"]) == 0
    assert main(["evaluate", "tiny", "--model", "popularity", "--json", "metrics.json"]) == 0
    assert main(["recommend", "pop.invrec", "--users", "1", "--n", "2", "-o", "recs.csv"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["tiny", DEFAULT_OUT])
    assert sorted(p.name for p in (tmp_path / DEFAULT_OUT).iterdir()) == ["metrics.json", "pop.invrec", "recs.csv"]
    assert pd.read_csv(tmp_path / DEFAULT_OUT / "recs.csv")["item"].tolist() == [2, 3]
    gitignore = (Path(__file__).resolve().parents[1] / ".gitignore").read_text().split()
    assert f"{DEFAULT_OUT}/" in gitignore      # the default folder never lands in a commit


def test_recommend_names_both_places_when_the_model_is_missing(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["recommend", "m.invrec", "--out", str(tmp_path / "o"), "--users", "1"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "'m.invrec' does not exist" in err and str(tmp_path / "o" / "m.invrec") in err


# ---------------------------------------------------------------- recommend: --items, --exclude, --handle-unknown
@pytest.fixture
def popularity_file(tmp_path):
    """Popularity on the tiny folder: user 1 saw items 0 (training) and 1 (validation); the
    other items rank 2, 3, 4, ... by their distinct training counts."""
    return _fit_popularity(tmp_path)


def _recommend(argv, capsys):
    assert main(["recommend", *argv]) == 0
    return pd.read_csv(io.StringIO(capsys.readouterr().out))


def test_recommend_items_restricts_the_candidates(popularity_file, tmp_path, capsys):
    capsys.readouterr()
    recs = _recommend([str(popularity_file), "--users", "1", "--items", "5", "3", "9", "--n", "2"], capsys)
    assert recs["item"].tolist() == [3, 5]
    (tmp_path / "items.txt").write_text("9\n7\n")
    recs = _recommend([str(popularity_file), "--users", "1", "--items-file", str(tmp_path / "items.txt")], capsys)
    assert recs["item"].tolist() == [7, 9]


def test_recommend_exclude_reads_a_pairs_file(popularity_file, tmp_path, capsys):
    capsys.readouterr()
    previous = _recommend([str(popularity_file), "--users", "1", "2", "--n", "2"], capsys)
    previous.to_csv(tmp_path / "shown.csv", index=False)             # user, item, score, rank
    recs = _recommend([str(popularity_file), "--users", "1", "2", "--n", "2", "--exclude",
                       str(tmp_path / "shown.csv")], capsys)
    assert recs["item"].tolist() == [4, 5, 4, 5]
    (tmp_path / "bad.csv").write_text("u,i\n1,2\n")
    with pytest.raises(SystemExit) as exc:
        main(["recommend", str(popularity_file), "--users", "1", "--exclude", str(tmp_path / "bad.csv")])
    assert exc.value.code == 2 and "header naming 'user' and 'item'" in capsys.readouterr().err


def test_recommend_handle_unknown(popularity_file, capsys):
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(["recommend", str(popularity_file), "--users", "1", "999"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "999" in err and "handle_unknown" in err and len(err.splitlines()) == 1
    recs = _recommend([str(popularity_file), "--users", "1", "999", "--n", "2", "--handle-unknown", "ignore"], capsys)
    assert recs["user"].tolist() == [1, 1] and recs["item"].tolist() == [2, 3]
    recs = _recommend([str(popularity_file), "--users", "1", "--items", "5", "777", "--handle-unknown", "ignore"],
                      capsys)
    assert recs["item"].tolist() == [5]


def test_a_rating_regressor_needs_ratings(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:             # the synthetic default has no ratings
        main(["fit", "--model", "eior-regressor", "--param", "max_epochs=1", "-o", str(tmp_path / "m.invrec")])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "'rating' column" in err and not (tmp_path / "m.invrec").exists()


def _demo_table(scores):
    return pd.DataFrame([{"model": m, "split": split, "recall@20": v, "ndcg@20": v}
                         for m, pair in scores.items() for split, v in zip(("IID", "OOD"), pair)])


def test_demo_plot_draws_the_front_with_popularity_and_the_oracle(tmp_path):
    pytest.importorskip("matplotlib")
    from invrec.cli.demo import plot_demo

    scores = {"oracle: true preference": (.27, .39), "oracle: spurious attribute": (.38, .004),
              "popularity": (.075, .091), "UltraGCN (ERM)": (.43, .011), "PaInvRL": (.23, .28)}
    ax = plot_demo(_demo_table(scores), tmp_path / "front.svg").axes[0]
    points = {c.get_label(): tuple(c.get_offsets()[0]) for c in ax.collections}
    assert points == {"UltraGCN (ERM)": (.43, .011), "PaInvRL": (.23, .28)}
    labels = [line.get_label() for line in ax.lines if not line.get_label().startswith("_")]
    assert labels == ["trade-off front", "popularity: OOD 0.091, IID 0.075", "oracle: OOD 0.39, IID 0.27"]
    assert (tmp_path / "front.svg").read_text().lstrip().startswith("<?xml")
    # Popularity alone is a point, not a reference line.
    only = plot_demo(_demo_table({"popularity": (.075, .091)}), tmp_path / "pop.png").axes[0]
    assert [c.get_label() for c in only.collections] == ["popularity"]
    assert not [line for line in only.lines if line.get_label().startswith("popularity")]
