"""MkDocs hook: render the Sphinx roles of our docstrings (``:func:`x```) on the API pages.

mkdocstrings renders ``:func:`load_detector``` as the text ``:func:`` followed by ``load_detector``
in code. This hook turns each such pair into the code alone, linked to the object's section when
the page documents it (a heading id equal to the target or ending in ``.target``). ``~`` (show
only the last name) and a leading ``.`` (relative target) are understood.

Registered in ``mkdocs.yml`` under ``hooks:``.
"""

from __future__ import annotations

import re

_ROLE = re.compile(
    r":(?:py:)?(?:func|meth|class|mod|attr|data|exc|obj|const):<code>(?P<target>[^<]+)</code>"
)
_IDS = re.compile(r'id="(napari_sperm[\w.]*)"')


def render_roles(html: str) -> str:
    """``html`` with every ``:role:<code>target</code>`` replaced (see the module docstring)."""
    ids = sorted(set(_IDS.findall(html)), key=len)

    def replace(m: re.Match) -> str:
        target = m["target"].strip()
        short = target.startswith("~")
        name = target.lstrip("~").lstrip(".")
        shown = name.rsplit(".", 1)[-1] if short else name
        anchor = next((i for i in ids if i == name or i.endswith("." + name)), None)
        code = f"<code>{shown}</code>"
        return f'<a href="#{anchor}">{code}</a>' if anchor else code

    return _ROLE.sub(replace, html)


def on_page_content(html: str, page, config, files) -> str:  # noqa: ARG001 - MkDocs API
    """MkDocs event: the page's HTML, after Markdown and mkdocstrings."""
    return render_roles(html) if ":<code>" in html else html
