"""The README's Python quick start runs as written."""

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
