"""Help text: reStructuredText docstrings rendered as plain text for ``--help``."""

from __future__ import annotations

import re
import textwrap

# :role:`target`, :role:`~pkg.mod.name`, :role:`title <target>`
_ROLE = re.compile(r":[A-Za-z][\w:.+-]*:`(~?)([^`<]*?)\s*(?:<[^>]*>)?`")
# ``literal``, `title <url>`_ / `name`_, **strong**, *emphasis*, `default role`
_LITERAL = re.compile(r"``(.+?)``")
_LINK = re.compile(r"`([^`<]+?)\s*(?:<[^>]*>)?`__?")
_STRONG = re.compile(r"\*\*(.+?)\*\*")
_EMPHASIS = re.compile(r"(?<![\w*])\*(?![\s*])(.+?)(?<![\s*])\*(?![\w*])")
_DEFAULT_ROLE = re.compile(r"`([^`]+)`")
_BULLET = re.compile(r"^([-*+]|\d+\.)\s+")


def _role(match):
    shorten, target = match.groups()
    return target.rsplit(".", 1)[-1] if shorten else target


def plain_inline(text):
    """``text`` without reStructuredText inline markup (roles, literals, links, emphasis).

    Parameters
    ----------
    text : str

    Returns
    -------
    str
        A role becomes its target (its last dotted part when the target starts with ``~``),
        a literal, a link, strong or emphasised text becomes its bare text.

    Examples
    --------
    >>> plain_inline("saved with :func:`invrec.save`, read by ``invrec recommend``, **safe**")
    'saved with invrec.save, read by invrec recommend, safe'
    """
    text = _ROLE.sub(_role, text)
    text = _LITERAL.sub(r"\1", text)
    text = _LINK.sub(r"\1", text)
    text = _STRONG.sub(r"\1", text)
    text = _EMPHASIS.sub(r"\1", text)
    return _DEFAULT_ROLE.sub(r"\1", text)


def plain_text(docstring, width=79):
    """A reStructuredText docstring as plain paragraphs and bullets, wrapped to ``width``.

    Parameters
    ----------
    docstring : str
        Paragraphs separated by blank lines; ``-``, ``*`` or ``1.`` items start bullets.
    width : int, default=79
        Line width of the result.

    Returns
    -------
    str
        The text without inline markup (:func:`plain_inline`), each paragraph and bullet refilled,
        bullets shown with ``-`` and their continuation lines indented.

    Examples
    --------
    >>> print(plain_text("Read ``--help``.\\n\\n- one\\n  item\\n- two", width=30))
    Read --help.
    <BLANKLINE>
    - one item
    - two
    """
    blocks = []
    for paragraph in re.split(r"\n\s*\n", textwrap.dedent(docstring).strip()):
        items, current = [], []
        for line in paragraph.splitlines():
            stripped = line.strip()
            if _BULLET.match(stripped) and current:
                items.append(current)
                current = []
            current.append(stripped)
        items.append(current)
        lines = []
        for item in items:
            joined = plain_inline(" ".join(item))
            if _BULLET.match(joined):
                joined = _BULLET.sub("- ", joined)
                lines.append(textwrap.fill(joined, width, subsequent_indent="  "))
            else:
                lines.append(textwrap.fill(joined, width))
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)
