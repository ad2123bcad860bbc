"""The README's Python quick start runs as written; its main-job and command-line lines hold."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_snippets_run():
    code = "\n".join(re.findall(r"```python\n(.*?)```", README.read_text(), re.S))
    assert "GridSearchCV" in code
    namespace = {}
    exec(compile(code, str(README), "exec"), namespace)  # noqa: S102 - our own README
    assert namespace["search"].best_params_["embedding_dim"] in (16, 32)
    assert list(namespace["model"].recommend([0], n=3).columns) == ["user", "item", "score", "rank"]


def test_readme_main_job_names_the_demo_models_and_quotes_no_figure():
    from invrec.cli.demo import DEMO_MODELS

    text = README.read_text()
    assert "pip install -e . && python -m invrec\n" in text           # the newcomer's first command
    paragraph = re.search(r"`python -m invrec` is the main job:(.*?)\n\n", text, re.S).group(1)
    for name in DEMO_MODELS:
        assert name.split()[0] in paragraph, name
    # the numbers are the run's to print: the README states none of them
    assert not re.search(r"\d\.\d|\d+(\.\d+)?x\b|%", paragraph), paragraph


def test_readme_command_line_fit_then_recommend(tmp_path, monkeypatch):
    """The README's fit and recommend lines work in sequence (the model file is found in the output folder)."""
    import pandas as pd

    from invrec.__main__ import main
    from invrec.cli.files import DEFAULT_OUT

    block = re.search(r"## Command line\n\n```bash\n(.*?)```", README.read_text(), re.S).group(1)
    commands = [line.split("#")[0].split() for line in block.splitlines()]
    fit = next(words for words in commands if words[:2] == ["invrec", "fit"])
    recommend = next(words for words in commands if words[:2] == ["invrec", "recommend"])
    assert "max_epochs=20" in fit
    fit = ["max_epochs=1" if word == "max_epochs=20" else word for word in fit]   # the same flow, one epoch
    monkeypatch.chdir(tmp_path)
    assert main(fit[1:]) == 0 and main(recommend[1:]) == 0
    recs = pd.read_csv(tmp_path / DEFAULT_OUT / "recs.csv")
    assert recs.groupby("user").size().to_dict() == {0: 10, 1: 10, 2: 10}
    assert [p.name for p in tmp_path.iterdir()] == [DEFAULT_OUT]      # nothing in the working folder
