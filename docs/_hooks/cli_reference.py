"""MkDocs hook: generate the command-line reference from ``napari_sperm.cli.build_parser()``.

``docs/cli.md`` holds the marker ``<!-- cli-reference -->``; at build time it is replaced by one
section per subcommand (usage, description, arguments and options with their defaults and
choices), read from the real argument parser. A subcommand added to ``build_parser()`` shows up on
the next build; nothing is written into ``docs/`` itself.

Registered in ``mkdocs.yml`` under ``hooks:``. ``render_cli_reference()`` is also what the tests
call.
"""

from __future__ import annotations

import argparse
import html
import os
import re

MARKER = "<!-- cli-reference -->"
USAGE_WIDTH = 96  # columns for argparse's usage lines (independent of the terminal)

_MD_SPECIAL = re.compile(r"([\\`*_\[\]|])")


def _text(value: str) -> str:
    """Plain text (argparse help) as Markdown: HTML-escaped, Markdown characters escaped."""
    return _MD_SPECIAL.sub(r"\\\1", html.escape(" ".join(str(value).split()), quote=False))


def _code(value: str) -> str:
    """Inline code that is safe inside a table cell."""
    return "<code>" + html.escape(str(value), quote=False).replace("|", "&#124;") + "</code>"


def _expand_help(action: argparse.Action, prog: str) -> str:
    """``action.help`` with ``%(default)s`` and friends filled in, as argparse's own help does."""
    if not action.help:
        return ""
    params = dict(vars(action), prog=prog)
    for name in list(params):
        if params[name] is argparse.SUPPRESS:
            del params[name]
    for name, value in list(params.items()):
        if hasattr(value, "__name__"):
            params[name] = value.__name__
    if params.get("choices") is not None:
        params["choices"] = ", ".join(str(c) for c in params["choices"])
    return action.help % params


def _usage(parser: argparse.ArgumentParser) -> str:
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(USAGE_WIDTH)
    try:
        usage = parser.format_usage()
    finally:
        if old is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = old
    return usage.removeprefix("usage: ").rstrip()


def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return None


def subcommands(parser: argparse.ArgumentParser) -> dict[str, tuple[argparse.ArgumentParser, str]]:
    """``{name: (subparser, one-line help)}`` in the order the parser lists them."""
    sub = _subparsers(parser)
    if sub is None:
        return {}
    helps = {a.dest: a.help or "" for a in sub._choices_actions}
    return {name: (p, helps.get(name, "")) for name, p in sub.choices.items()}


def _argument_table(parser: argparse.ArgumentParser) -> list[str]:
    rows = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) or action.help == argparse.SUPPRESS:
            continue
        if action.option_strings:
            names = ", ".join(action.option_strings)
            if action.nargs != 0:
                metavar = action.metavar or action.dest.upper()
                names += f" {metavar}"
        else:
            metavar = action.metavar or action.dest
            names = metavar + (" ..." if action.nargs in ("+", "*") else "")
        details = []
        if action.choices is not None:
            details.append("one of " + ", ".join(_code(c) for c in action.choices))
        if action.required and action.option_strings:
            details.append("required")
        help_text = _text(_expand_help(action, parser.prog))
        if details:
            help_text = "; ".join([help_text, *details] if help_text else details)
        rows.append(f"| {_code(names)} | {help_text} |")
    if not rows:
        return []
    return ["| argument | meaning |", "|---|---|", *rows]


def render_cli_reference(parser: argparse.ArgumentParser | None = None) -> str:
    """The Markdown of the reference: global options, a table of subcommands, one section each."""
    if parser is None:
        from napari_sperm.cli import build_parser

        parser = build_parser()
    subs = subcommands(parser)
    out = [
        f"## {parser.prog}",
        "",
        _text(parser.description or ""),
        "",
        "```text",
        _usage(parser),
        "```",
        "",
        *_argument_table(parser),
        "",
        "| command | what it does |",
        "|---|---|",
    ]
    for name, (_, help_line) in subs.items():
        anchor = f"{parser.prog}-{name}".lower()
        out.append(f"| [`{name}`](#{anchor}) | {_text(help_line)} |")
    out.append("")
    for name, (sub, help_line) in subs.items():
        out += [
            f"## {parser.prog} {name}",
            "",
            f"*{_text(help_line)}*" if help_line else "",
            "",
            "```text",
            _usage(sub),
            "```",
            "",
            _text(sub.description or ""),
            "",
            *_argument_table(sub),
            "",
        ]
    return "\n".join(out)


def on_page_markdown(markdown: str, page, config, files) -> str:  # noqa: ARG001 - MkDocs API
    """MkDocs event: fill the marker of ``cli.md``."""
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, render_cli_reference())
