"""Progress and logging over every stage: quiet by default, the stages and the final loop at INFO,
every epoch at DEBUG, tqdm bars over the stages and the epochs with ``verbose``."""

import logging
import subprocess
import sys
import textwrap

import pytest

from invrec import PaInvRLRecommender
from invrec.baselines import UltraGCNRecommender
from invrec.datasets import make_multimodal_interactions
from invrec.invariance import EnvironmentInference, MaskLearning
from invrec.invariance.stages import stage_count

TINY = dict(max_epochs=3, batch_size=64, embedding_dim=4, content_dim=4, n_negatives=4, device="cpu",
            random_state=0)


def _painvrl(**kwargs):
    return PaInvRLRecommender(**TINY, environments=EnvironmentInference(2, max_rounds=1, epochs=1),
                              mask=MaskLearning(epochs=2), n_outer_iter=2, **kwargs)


@pytest.fixture(scope="module")
def data():
    return make_multimodal_interactions(n_users=40, n_items=30, random_state=0)


def _fit(model, data):
    return model.fit(data.interactions[["user", "item"]], item_features=data.item_features)


def test_info_names_every_stage_in_order(data, caplog):
    with caplog.at_level(logging.INFO, logger="invrec"):
        _fit(_painvrl(), data)
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("invrec")]
    heads = [m.split(":")[0].split(" (")[0] for m in messages]
    assert heads == ["PaInvRLRecommender", "environments", "mask", "environments", "mask", "final",
                     "PaInvRLRecommender"]
    assert "fitting on" in messages[0] and "(40 users, 30 items, with content)" in messages[0]
    assert "outer iteration 2/2" in messages[3] and "of 40 gates above 0.5" in messages[4]
    assert "3 epoch(s)" in messages[5] and "best valid_ndcg@20" in messages[5]
    assert messages[-1].startswith("PaInvRLRecommender: fitted in")
    assert not [r for r in caplog.records if r.levelno == logging.DEBUG]


def test_debug_has_one_line_per_epoch(data, caplog):
    with caplog.at_level(logging.DEBUG, logger="invrec"):
        model = _fit(UltraGCNRecommender(**TINY, early_stopping=False), data)
    epochs = [r.getMessage() for r in caplog.records if r.name == "invrec.training" and " epoch " in r.getMessage()]
    assert len(epochs) == len(model.history_) == 3
    assert epochs[0].startswith("final epoch 1: train_loss=")


def test_quiet_without_logging_configured():
    """The library adds only a NullHandler: an application that configures nothing sees nothing."""
    code = textwrap.dedent("""
        from invrec.baselines import UltraGCNRecommender
        from invrec.datasets import make_multimodal_interactions
        d = make_multimodal_interactions(n_users=30, n_items=30, random_state=0)
        UltraGCNRecommender(max_epochs=2, embedding_dim=4, content_dim=4, n_negatives=4, device="cpu",
                            random_state=0).fit(d.interactions[["user", "item"]], item_features=d.item_features)
        print("done")
    """)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout == "done\n" and run.stderr == ""


def test_verbose_draws_a_bar_over_the_stages(data, capsys):
    _fit(_painvrl(verbose=1), data)
    err = capsys.readouterr().err
    assert "PaInvRLRecommender stages" in err and "4/4" in err
    assert "PaInvRLRecommender epochs" in err
    _fit(_painvrl(verbose=0), data)
    assert capsys.readouterr().err == ""


class _Data:
    def __init__(self, width, environments=None):
        import torch
        self.features = torch.zeros(3, width)
        self.environments = environments


@pytest.mark.parametrize("width, given, inferred, expected", [
    (4, None, True, 6),      # environments and mask in each of 3 outer iterations
    (4, [0, 1], True, 3),    # the user's labels: the mask only
    (0, None, True, 1),      # no content: one environment run
    (0, [0, 1], True, 0),    # no content, labels given: nothing to run
])
def test_stage_count(width, given, inferred, expected):
    assert stage_count(EnvironmentInference() if inferred else None, 3, _Data(width, given)) == expected
