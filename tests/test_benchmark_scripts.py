"""The scale benchmark (benchmarks/scale.py) and the GPU check (benchmarks/gpu_check.py), run small.

Their helpers against hand-computed values, then each command line end to end at a size that
takes seconds: the scale table from fresh processes, and the GPU check's CPU half (its CUDA half
too when this machine has a GPU).
"""

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from invrec import PaInvRLRecommender, PopularityRecommender, all_estimators

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def scale():
    return _load("scale")


@pytest.fixture(scope="module")
def gpu_check():
    return _load("gpu_check")


# ---------------------------------------------------------------------------- scale.py helpers
def test_zipf_draws_follow_the_law(scale):
    draws = scale.zipf_draws(np.random.default_rng(0), 4, 1.0, 200_000)
    # P(k) = (1 / (k + 1)) / H_4, H_4 = 25 / 12: 0.48, 0.24, 0.16, 0.12 (sampling sd ~0.001)
    np.testing.assert_allclose(np.bincount(draws, minlength=4) / draws.size, [0.48, 0.24, 0.16, 0.12], atol=0.005)
    uniform = scale.zipf_draws(np.random.default_rng(0), 5, 0.0, 100_000)
    np.testing.assert_allclose(np.bincount(uniform, minlength=5) / uniform.size, 0.2, atol=0.005)


def test_zipf_interactions_are_distinct_pairs_of_the_stated_shape(scale):
    X, features = scale.make_zipf_interactions(5_000, random_state=0)
    assert len(X) == 5_000 and not X.duplicated().any()
    assert X["user"].between(0, 249).all() and X["item"].between(0, 49).all()      # 5000 / 20, 5000 / 100
    assert features.n_items == 50 and features.dims == {"m0": 64, "m1": 64}
    # item 0 is the most popular, as the Zipf law with ids in decreasing popularity says
    assert X["item"].value_counts().idxmax() == 0
    again, _ = scale.make_zipf_interactions(5_000, random_state=0)
    other, _ = scale.make_zipf_interactions(5_000, random_state=1)
    assert X.equals(again) and not X.equals(other)


def test_zipf_interactions_refuse_a_matrix_more_than_half_full(scale):
    with pytest.raises(ValueError, match="half density"):
        scale.make_zipf_interactions(1_000)       # 50 x 10 users x items hold 500 pairs


def test_scale_problem_holds_out_a_tenth_of_each_user(scale):
    train, validation, _ = scale.scale_problem(9_000, random_state=0)
    assert len(train) + len(validation) == 10_000
    assert len(validation) / 10_000 == pytest.approx(0.1, abs=0.02)
    pairs = set(zip(train["user"], train["item"]))
    assert not any(pair in pairs for pair in zip(validation["user"], validation["item"]))
    assert set(validation["user"]) <= set(train["user"])


def test_growth_exponent_hand_values(scale):
    assert scale.growth_exponent([1e5, 1e6], [0.5, 5.0]) == pytest.approx(1.0)
    assert scale.growth_exponent([1, 2, 4], [3, 12, 48]) == pytest.approx(2.0)
    assert scale.growth_exponent([1e5, 1e6, 1e7], [1.0, None, 0.0]) is None   # one usable point
    assert scale.growth_exponent([1e5], [1.0]) is None


def test_summary_ratios_exponents_and_table(scale):
    rows = [{"library": "invrec", "n_interactions": 100_000, "n_train": 100_000, "epoch": 2.0, "prep": 0.1,
             "validation": 1.0, "recommend": 0.5, "peak_mib": 500.0, "peak_mib_after_data": 400.0, "n_users": 5000, "n_items": 1000,
             "recommend_users": 10},
            {"library": "invrec", "n_interactions": 1_000_000, "n_train": 1_000_000, "epoch": 20.0, "prep": 1.0,
             "validation": 10.0, "recommend": 0.5, "peak_mib": 500.0, "peak_mib_after_data": 400.0, "n_users": 50000, "n_items": 10000,
             "recommend_users": 10},
            {"library": "implicit", "n_interactions": 100_000, "n_train": 100_000, "epoch": 0.5, "prep": 0.01,
             "validation": None, "recommend": 0.1, "peak_mib": 300.0, "peak_mib_after_data": 250.0, "n_users": 5000, "n_items": 1000,
             "recommend_users": 10},
            {"library": "implicit", "n_interactions": 1_000_000, "n_train": 1_000_000, "epoch": 2.0, "prep": 0.1,
             "validation": None, "recommend": 0.1, "peak_mib": 300.0, "peak_mib_after_data": 250.0, "n_users": 50000, "n_items": 10000,
             "recommend_users": 10}]
    exponents, ratios = scale.summarize(rows)
    assert ratios == {100_000: 4.0, 1_000_000: 10.0}
    assert exponents["invrec/epoch"] == pytest.approx(1.0) and exponents["invrec/recommend"] == pytest.approx(0.0)
    assert exponents["implicit/epoch"] == pytest.approx(math.log10(4), abs=1e-3)
    assert "implicit/validation" not in exponents
    table = scale.report(rows, exponents, ratios)
    assert "| 1e+05 | invrec |" in table and "4.0x" in table and "10.0x" in table
    assert table.index("| 1e+05 | invrec |") < table.index("| 1e+05 | implicit |")


def test_parse_size(scale):
    import argparse

    assert scale.parse_size("1e6") == 1_000_000 and scale.parse_size("20000000") == 20_000_000
    for bad in ("1e3", "abc", "15000.5", "inf"):
        with pytest.raises(argparse.ArgumentTypeError):
            scale.parse_size(bad)


def test_scale_command_line_end_to_end(scale, tmp_path):
    """Both libraries in fresh processes at 1e4 rows: every phase timed, the same data, the ratio."""
    out = tmp_path / "scale.json"
    assert scale.main(["--sizes", "1e4", "--recommend-users", "50", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    rows = {row["library"]: row for row in result["rows"]}
    expected = {"invrec", "implicit"} if importlib.util.find_spec("implicit") else {"invrec"}
    assert set(rows) == expected
    invrec = rows["invrec"]
    for phase in ("prep", "epoch", "validation", "recommend", "warm_up_s"):
        assert invrec[phase] > 0, phase
    assert invrec["recommend_rows"] == 50 * 20 and invrec["n_train"] > 9_000
    assert invrec["peak_mib"] >= invrec["peak_mib_after_data"] > 0
    assert len(invrec["epoch_times"]) == 1 and invrec["epoch"] == invrec["epoch_times"][0]
    if "implicit" in rows:
        bpr = rows["implicit"]
        assert bpr["n_train"] == invrec["n_train"] and bpr["validation"] is None and bpr["epoch"] > 0
        assert result["epoch_ratios"]["10000"] == round(invrec["epoch"] / bpr["epoch"], 2)


# ---------------------------------------------------------------------------- gpu_check.py
def test_within_noise_hand_values(gpu_check):
    # the same +0.01 on every seed: no spread, so the floor (0.005) is the tolerance: a real shift
    shifted = gpu_check.within_noise([0.40, 0.42, 0.41], [0.41, 0.43, 0.42])
    assert shifted["mean_diff"] == pytest.approx(0.01) and shifted["se"] == pytest.approx(0.0, abs=1e-12)
    assert shifted["tolerance"] == 0.005 and not shifted["ok"]
    # differences +.005, -.005, +.010: mean .00333, sd .007638, se .004410, tolerance 3 se = .01323
    noisy = gpu_check.within_noise([0.40, 0.42, 0.41], [0.405, 0.415, 0.42])
    assert noisy["mean_diff"] == pytest.approx(0.01 / 3)
    assert noisy["se"] == pytest.approx(0.007638 / math.sqrt(3), rel=1e-3)
    assert noisy["tolerance"] == pytest.approx(0.01323, rel=1e-3) and noisy["ok"]
    with pytest.raises(ValueError, match="one score per seed"):
        gpu_check.within_noise([0.4, 0.4], [0.4])


def test_compare_loaded_flags_changed_scores_and_tensors_left_on_the_gpu(gpu_check):
    saved = [{"name": "A", "device_": "cuda:0", "predict": [1.0, 2.0], "items": [3, 4], "scores": [0.5, 0.25]}]

    def loaded(predict, devices):
        return {"models": {"A": {"predict": predict, "items": [3, 4], "scores": [0.5, 0.25],
                                 "tensor_devices": devices, "warnings": []}}}

    assert gpu_check.compare_loaded(saved, loaded([1.0, 2.0 + 1e-6], ["cpu"]))[0]["ok"]
    assert not gpu_check.compare_loaded(saved, loaded([1.0, 2.001], ["cpu"]))[0]["ok"]
    assert not gpu_check.compare_loaded(saved, loaded([1.0, 2.0], ["cuda:0"]))[0]["ok"]
    assert not gpu_check.compare_loaded(saved, {"models": {}})[0]["ok"]
    # ratings near 4: the tolerance is relative (1e-5 x 4 = 4e-5)
    ratings = [{**saved[0], "predict": [3.0, 4.0]}]
    assert gpu_check.compare_loaded(ratings, loaded([3.0, 4.0 + 3e-5], ["cpu"]))[0]["ok"]
    assert not gpu_check.compare_loaded(ratings, loaded([3.0, 4.0 + 5e-5], ["cpu"]))[0]["ok"]


def test_tiny_estimator_sets_only_the_parameters_an_estimator_has(gpu_check):
    assert gpu_check.tiny_estimator(PopularityRecommender, "cpu").get_params() == PopularityRecommender().get_params()
    params = gpu_check.tiny_estimator(PaInvRLRecommender, "cpu").get_params()
    assert params["max_epochs"] == 2 and params["environments__n_environments"] == 2
    assert params["mask__epochs"] == 1 and params["device"] == "cpu"


def test_gpu_check_smoke_runs_the_half_this_machine_has(gpu_check, tmp_path):
    out = tmp_path / "gpu.json"
    assert gpu_check.main(["--smoke", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    cuda = torch.cuda.is_available()
    assert result["cuda"] is cuda and result["ok"]
    portability = result["portability"]
    assert portability["child_saw_cuda"] is False
    assert {row["estimator"] for row in portability["rows"]} == {name for name, _ in all_estimators()}
    for row in portability["rows"]:
        assert row["ok"] and row["loaded_on"] == ["cpu"]
        if not cuda:   # CPU fit, CPU load in another process: float32 rounding of the reductions only
            assert row["max_score_diff"] <= 1e-6 and row["lists_identical"]
    quality = result["quality"]["rows"]
    assert {(r["seed"], r["device"]) for r in quality} >= {(0, "cpu"), (1, "cpu")}
    assert all(0 < r["test_ndcg@20"] <= 1 for r in quality)
    (epochs,) = result["epochs"]["rows"]
    assert epochs["n_interactions"] == 10_000 and epochs["cpu"]["epoch_s"] > 0
    assert ("cuda" in epochs) is cuda


# ---------------------------------------------------------------------------- shift.py --defaults
def test_shift_defaults_builds_every_estimator_exactly_as_a_user_calls_it():
    from invrec import EIORRecommender
    from invrec.baselines import UltraGCNRecommender

    shift = _load("shift")
    for name, cls in [("painvrl", PaInvRLRecommender), ("eior", EIORRecommender),
                      ("ultragcn", UltraGCNRecommender)]:
        built = shift.build(name, 3, defaults=True).get_params(deep=False)
        plain = cls(random_state=3, device="cpu").get_params(deep=False)
        assert {k: repr(v) for k, v in built.items()} == {k: repr(v) for k, v in plain.items()}
        # without the flag the laptop settings apply (a smaller width, the laptop batch)
        laptop = shift.build(name, 3).get_params(deep=False)
        assert laptop["batch_size"] == 256 and laptop["embedding_dim"] == 32
    assert shift.parse_args(["--defaults"]).defaults
