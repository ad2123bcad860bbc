"""The docs' quick start runs as written, and every example is in the gallery's index."""

import re
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _python_blocks(rst):
    """The bodies of the ``.. code-block:: python`` directives of an rst file, dedented."""
    blocks = re.findall(r"\.\. code-block:: python\n\n((?:(?:    .*)?\n)+)", rst.read_text())
    return [textwrap.dedent(block) for block in blocks]


def test_quickstart_page_runs_as_written():
    code = "\n".join(_python_blocks(ROOT / "docs" / "user_guide" / "quickstart.rst"))
    assert "PaInvRLRecommender" in code
    namespace = {}
    exec(compile(code, "quickstart.rst", "exec"), namespace)  # noqa: S102 - our own docs
    model = namespace["model"]
    assert 0 < model.score(namespace["test"]) <= 1
    assert list(model.recommend([0], n=3).columns) == ["user", "item", "score", "rank"]


def test_every_user_guide_page_is_in_the_toctree():
    index = (ROOT / "docs" / "index.rst").read_text()
    pages = sorted(p.stem for p in (ROOT / "docs" / "user_guide").glob("*.rst"))
    assert pages and all(f"user_guide/{page}" in index for page in pages)
