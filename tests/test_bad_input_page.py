"""Every row of the "bad input" page raises the documented error (docs/user_guide/bad_input.rst).

The page lists each kind of bad input with one line of code, the exception type and the start of
its message. Here its setup blocks run as written, then every row's code: it must raise exactly
the documented type, from invrec's own code, with a message that starts with the documented text
(``<folder>`` standing for the temporary folder of the setup). Nothing of the setup's objects may
change, and the crafted files must run nothing.
"""

import re
import shutil
import textwrap
import traceback
import warnings
from pathlib import Path

import pandas as pd
import pytest

PAGE = Path(__file__).resolve().parents[1] / "docs" / "user_guide" / "bad_input.rst"

#: Rows whose error is scikit-learn's own (raised by the code invrec inherits from it).
FROM_SCIKIT_LEARN = {"An unknown parameter"}

_ROW = re.compile(
    r"^   \* - (?P<kind>.+)\n"
    r"     - ``(?P<code>.+)``\n"
    r"     - ``(?P<error>\w+)``\n"
    r"     - ``(?P<start>.+)``(?P<more> \.\.\.)?\n",
    re.MULTILINE,
)


def _python_blocks(text):
    blocks = re.findall(r"\.\. code-block:: python\n\n((?:(?:    .*)?\n)+)", text)
    return [textwrap.dedent(block) for block in blocks]


def _rows():
    text = PAGE.read_text()
    return [match.groupdict() for match in _ROW.finditer(text)]


ROWS = _rows()


def test_the_page_documents_at_least_40_kinds_in_the_user_guide():
    kinds = [row["kind"] for row in ROWS]
    assert len(kinds) >= 40 and len(set(kinds)) == len(kinds)
    # every table row was parsed: one match per "* -" row below a header
    assert PAGE.read_text().count("\n   * - ") == len(ROWS) + PAGE.read_text().count("* - Bad input")
    assert "user_guide/bad_input" in (PAGE.parents[1] / "index.rst").read_text()


@pytest.fixture(scope="module")
def namespace():
    """The page's setup blocks, run as written; the temporary folder removed afterwards."""
    namespace = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for block in _python_blocks(PAGE.read_text()):
            exec(compile(block, str(PAGE), "exec"), namespace)  # noqa: S102 - our own docs
    snapshot = {"X": namespace["X"].copy(), "ratings": namespace["ratings"].copy(),
                "visual": namespace["features"]["visual"].copy(),
                "recommendations": namespace["model"].recommend([0, 1, 2], n=3)}
    yield namespace, snapshot
    shutil.rmtree(namespace["folder"], ignore_errors=True)


@pytest.mark.parametrize("row", ROWS, ids=[row["kind"] for row in ROWS])
def test_each_row_raises_the_documented_error(row, namespace, capfd):
    namespace, snapshot = namespace
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            exec(compile(row["code"], "bad_input.rst", "exec"), namespace)  # noqa: S102
        except Exception as exc:  # noqa: BLE001 - every row must raise; which one is checked below
            error = exc
        else:
            pytest.fail(f"{row['code']} raised nothing; the page says {row['error']}")
    message = str(error).replace(str(namespace["folder"]), "<folder>")
    assert type(error).__name__ == row["error"], (
        f"{row['code']} raised {type(error).__name__}: {message}")
    assert message.startswith(row["start"]), (
        f"the message of {row['code']} changed; the page says\n  {row['start']}\nit is now\n  {message}")
    assert bool(row["more"]) == (len(message) > len(row["start"])), "'...' must mark a longer message"
    origin = traceback.extract_tb(error.__traceback__)[-1].filename
    expected = "sklearn" if row["kind"] in FROM_SCIKIT_LEARN else "invrec"
    assert f"/{expected}/" in origin.replace("\\", "/"), f"raised in {origin}, not in {expected}'s code"
    # nothing of the caller's objects changed, and no crafted file ran its gadget
    pd.testing.assert_frame_equal(namespace["X"], snapshot["X"])
    assert (namespace["ratings"] == snapshot["ratings"]).all()
    assert (namespace["features"]["visual"] == snapshot["visual"]).all()
    pd.testing.assert_frame_equal(namespace["model"].recommend([0, 1, 2], n=3), snapshot["recommendations"])
    assert "this must never run" not in capfd.readouterr().out
