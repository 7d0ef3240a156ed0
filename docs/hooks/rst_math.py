"""MkDocs hook: the docstrings' reStructuredText math and roles, rendered on the API page.

wsagg's docstrings are numpydoc, which writes math as reStructuredText (``:math:`x```,
``.. math::`` blocks) and cross-references as roles (``:func:`name```). mkdocstrings renders
docstrings as Markdown, which leaves ``:math:<code>x</code>`` and a ``.. math::`` paragraph
followed by a code block in the HTML. This hook turns them into the spans and divs that
``pymdownx.arithmatex`` produces for the Markdown pages, so the bundled KaTeX renders them
too, and drops the role prefixes (``:func:``, ``:class:``, ...), keeping the code.
"""

from __future__ import annotations

import re
from typing import Any

_INLINE = re.compile(r":math:<code>(.*?)</code>", re.S)
_BLOCK = re.compile(
    r"<p>\.\. math::</p>\s*<div class=\"highlight\"><pre><span></span><code>(.*?)"
    r"</code></pre></div>",
    re.S,
)
_ROLE = re.compile(r":(?:func|class|meth|mod|attr|data|obj|exc|ref|py:\w+):<code>~?(.*?)</code>")
_TAG = re.compile(r"<[^>]+>")


def rst_to_arithmatex(html: str) -> str:
    """``html`` with reStructuredText math as arithmatex markup and roles as plain code."""
    html = _BLOCK.sub(
        lambda m: f'<div class="arithmatex">\\[{_TAG.sub("", m.group(1)).strip()}\\]</div>', html
    )
    html = _INLINE.sub(lambda m: f'<span class="arithmatex">\\({m.group(1)}\\)</span>', html)
    return _ROLE.sub(lambda m: f"<code>{m.group(1)}</code>", html)


def on_page_content(html: str, page: Any, config: Any, files: Any) -> str:
    return rst_to_arithmatex(html)
