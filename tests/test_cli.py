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
