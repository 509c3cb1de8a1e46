"""Every example in the documentation runs, so the pages cannot drift from the code.

The convention (also in DEVELOPERS.md, "Docs"); one test per page of ``docs/*.md``:

- Every code block fenced ```` ```python ```` is executed. The blocks of one page run in order, in
  one shared namespace (a later block may use what an earlier one defined), in a fresh temporary
  working directory, so relative paths such as ``"out"`` land there, with ``__name__`` set to
  ``"__main__"`` as in a script. Keep them cheap (small
  synthetic fields, a few frames): a page gets ``PAGE_TIMEOUT_S`` seconds in all.
- A block preceded by the line ``<!-- skip-example -->`` (blank lines between are allowed) is not
  run. Use it only for what needs a display, a GPU, a download, a cluster or a package that is not a
  dependency, never to hide a failing example.
- Shell blocks (```` ```bash ````, ```` ```console ````, ```` ```sh ````, ```` ```shell ````): every
  ``napari-sperm ...`` command in them is checked against the real argument parser
  (``napari_sperm.cli.build_parser()``) without running it: the subcommand must exist and each
  option it names must exist; a concrete command line must parse completely. A synopsis line (one
  with ``[...]``, ``A|B`` or ``INPUT...`` placeholders) is checked for its subcommand and option
  names only. In ``console`` blocks only lines starting with ``$`` are commands; in ``bash`` blocks
  a ``\\`` at the end of a line, or an indented line after a command, continues it.
- A shell block preceded by ``<!-- run-example -->`` is also executed, in order with the page's
  python blocks and in the same working directory: each ``napari-sperm`` command runs in-process
  (``napari_sperm.cli.main``) and must exit with status 0. Such a block may hold only napari-sperm
  commands and comments.
- Pages that render API docs (``::: module`` blocks) also run the doctest examples in the
  docstrings of every object they render.
"""

from __future__ import annotations

import contextlib
import doctest
import importlib
import inspect
import io
import re
import shlex
import signal
from dataclasses import dataclass
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
PAGES = sorted(DOCS.glob("*.md"))
SKIP = "<!-- skip-example -->"
RUN = "<!-- run-example -->"
PYTHON = {"python", "py"}
SHELL = {"bash", "console", "sh", "shell"}
PAGE_TIMEOUT_S = 240

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<lang>[\w+-]*)")


@dataclass
class Block:
    page: str
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    marker: str | None  # SKIP, RUN or None

    def where(self) -> str:
        return f"{self.page}:{self.line}"


def code_blocks(text: str, page: str = "<page>") -> list[Block]:
    """The fenced code blocks of a Markdown page, with the marker line that precedes each."""
    lines = text.splitlines()
    blocks, i = [], 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, lang = m["indent"], m["fence"], m["lang"].lower()
        start, body = i, []
        i += 1
        while i < len(lines) and not (
            lines[i].strip().startswith(fence) and lines[i].strip().strip(fence[0]) == ""
        ):
            line = lines[i]
            body.append(line[len(indent) :] if line.startswith(indent) else line.lstrip())
            i += 1
        i += 1  # the closing fence
        k = start - 1
        while k >= 0 and not lines[k].strip():
            k -= 1
        prev = lines[k].strip() if k >= 0 else ""
        marker = prev if prev in (SKIP, RUN) else None
        blocks.append(Block(page, start + 1, lang, "\n".join(body) + "\n", marker))
    return blocks


# ---------------------------------------------------------------------------------------- shell
def shell_commands(block: Block) -> list[list[str]]:
    """Every command of a shell block, as argument lists (program first), in order."""
    logical: list[str] = []
    continued = False
    for raw in block.code.splitlines():
        line = raw.rstrip()
        if block.lang == "console":
            if line.startswith("$"):
                line = line[1:].strip()
            elif not continued:
                continue  # output
        if continued or (logical and raw[:1] in (" ", "\t") and line.strip()):
            logical[-1] += " " + line.strip().rstrip("\\")
        elif line.strip():
            logical.append(line.strip().rstrip("\\"))
        continued = line.endswith("\\")
    commands = []
    for text in logical:
        current: list[str] = []
        for tok in [*shlex.split(text, comments=True), ";"]:
            if tok in ("&&", "||", ";", "|"):
                if current:
                    commands.append(current)
                current = []
            else:
                current.append(tok)
    return commands


def is_napari_sperm(argv: list[str]) -> bool:
    return bool(argv) and Path(argv[0]).name == "napari-sperm"


def is_synopsis(argv: list[str]) -> bool:
    return any(("[" in t or "]" in t or "|" in t or "..." in t or "{" in t) for t in argv[1:])


def check_command(argv: list[str], where: str) -> None:
    """Fail unless ``argv`` (``napari-sperm ...``) fits the real argument parser."""
    from napari_sperm.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    args = argv[1:]
    known = set(parser._option_string_actions)
    if args and not args[0].startswith("-"):
        if args[0] not in sub.choices:
            pytest.fail(f"{where}: `{shlex.join(argv)}`: no subcommand {args[0]!r}")
        known |= set(sub.choices[args[0]]._option_string_actions)
    if is_synopsis(argv):
        names = re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", " ".join(args))
        unknown = sorted({n for n in names if n not in known})
        if unknown:
            pytest.fail(f"{where}: `{shlex.join(argv)}`: unknown option(s) {', '.join(unknown)}")
        return
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            parser.parse_args(args)
    except SystemExit as exc:
        if exc.code not in (0, None):
            pytest.fail(f"{where}: `{shlex.join(argv)}` does not parse: {err.getvalue().strip()}")


def run_command(argv: list[str], where: str) -> None:
    """Run ``napari-sperm ...`` in-process; fail unless it exits with status 0."""
    from napari_sperm.cli import main

    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = main(argv[1:])
    except SystemExit as exc:  # --help, --version
        status = exc.code or 0
    print(out.getvalue(), end="")
    if status != 0:
        pytest.fail(
            f"{where}: `{shlex.join(argv)}` exited with {status}:\n{err.getvalue().strip()}"
        )


# -------------------------------------------------------------------------------------- doctest
_API = re.compile(r"^:::\s*([\w.]+)[ \t]*$", re.M)


def api_targets(text: str) -> list[tuple[str, list[str]]]:
    """``(identifier, members)`` of each ``::: identifier`` block (members: the options list)."""
    out = []
    for m in _API.finditer(text):
        rest = text[m.end() :].splitlines()[1:]
        options, members = [], []
        for line in rest:
            if line.strip() and not line.startswith("    "):
                break
            options.append(line)
        in_members = False
        for line in options:
            stripped = line.strip()
            if stripped.startswith("members:"):
                in_members = True
            elif in_members and stripped.startswith("- "):
                members.append(stripped[2:].strip())
            elif in_members and stripped:
                in_members = False
        out.append((m.group(1), members))
    return out


def _resolve(identifier: str):
    parts = identifier.split(".")
    for k in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:k]))
        except ImportError:
            continue
        for name in parts[k:]:
            obj = getattr(obj, name)
        return obj
    raise ImportError(identifier)


def run_doctests(text: str, page: str) -> int:
    """Run the docstring examples of everything the page renders; return how many ran."""
    finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    seen: set[tuple[str | None, int | None]] = set()
    for identifier, members in api_targets(text):
        root = _resolve(identifier)
        objects = [(identifier, root)] + [
            (f"{identifier}.{m}", getattr(root, m)) for m in members if hasattr(root, m)
        ]
        for name, obj in objects:
            if not (inspect.ismodule(obj) or inspect.isclass(obj) or inspect.isroutine(obj)):
                continue  # constants: their type's docstring is not ours
            module = obj if inspect.ismodule(obj) else inspect.getmodule(obj)
            for test in finder.find(obj, name, module=module):
                if inspect.ismodule(obj) and test.name != name:
                    continue  # a module: its own docstring, not every member
                key = (test.filename, test.lineno)
                if not test.examples or key in seen:
                    continue
                seen.add(key)
                out = io.StringIO()
                result = runner.run(test, out=out.write)
                if result.failed:
                    pytest.fail(f"{page}: doctest of {test.name} failed:\n{out.getvalue()}")
    return len(seen)


# ---------------------------------------------------------------------------------------- tests
@contextlib.contextmanager
def _time_limit(seconds: int, page: str):
    def alarm(_signum, _frame):
        raise TimeoutError(f"{page}: the examples took more than {seconds} s; make them cheaper")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_page_examples(page: Path, tmp_path, monkeypatch):
    text = page.read_text(encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NAPARI_SPERM_CACHE", str(tmp_path / "cache"))  # never the user's cache
    namespace: dict = {"__name__": "__main__"}  # as a script: `if __name__ == "__main__":` runs
    with _time_limit(PAGE_TIMEOUT_S, page.name):
        for block in code_blocks(text, page.name):
            if block.marker == SKIP:
                continue
            if block.lang in PYTHON:
                code = compile(block.code, block.where(), "exec")
                try:
                    exec(code, namespace)
                except Exception as exc:
                    raise AssertionError(f"example at {block.where()} failed: {exc!r}") from exc
            elif block.lang in SHELL:
                commands = shell_commands(block)
                if block.marker == RUN:
                    others = [shlex.join(c) for c in commands if not is_napari_sperm(c)]
                    assert not others, (
                        f"{block.where()}: run-example runs only napari-sperm: {others}"
                    )
                for argv in filter(is_napari_sperm, commands):
                    check_command(argv, block.where())
                    if block.marker == RUN:
                        run_command(argv, block.where())
        run_doctests(text, page.name)


def test_every_subcommand_has_help():
    """``napari-sperm COMMAND --help`` works for every subcommand (the CLI page lists them all)."""
    from napari_sperm.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    for name in ["", *sub.choices]:
        run_command(["napari-sperm", *([name] if name else []), "--help"], f"{name} --help")


def test_the_runner_reads_the_conventions():
    page = "\n".join(
        [
            "<!-- skip-example -->",
            "",
            "```python",
            "raise SystemExit('not run')",
            "```",
            "  ```bash",
            "  napari-sperm synth out --frames 2 \\",
            "      --seed 1   # comment",
            "  napari-sperm segment INPUT... -o OUT.json [--engine classic|sam]",
            "  ```",
            "<!-- run-example -->",
            "```console",
            "$ napari-sperm info x.tif && napari-sperm --version",
            "x.tif: shape ...",
            "```",
        ]
    )
    blocks = code_blocks(page)
    assert [(b.lang, b.marker) for b in blocks] == [
        ("python", SKIP),
        ("bash", None),
        ("console", RUN),
    ]
    assert shell_commands(blocks[1]) == [
        ["napari-sperm", "synth", "out", "--frames", "2", "--seed", "1"],
        ["napari-sperm", "segment", "INPUT...", "-o", "OUT.json", "[--engine", "classic|sam]"],
    ]
    assert shell_commands(blocks[2]) == [
        ["napari-sperm", "info", "x.tif"],
        ["napari-sperm", "--version"],
    ]
    for argv in shell_commands(blocks[1]) + shell_commands(blocks[2]):
        check_command(argv, "self-test")
    with pytest.raises(pytest.fail.Exception, match="unknown option"):
        check_command(["napari-sperm", "segment", "IN...", "[--no-such-option]"], "self-test")
    with pytest.raises(pytest.fail.Exception, match="does not parse"):
        check_command(["napari-sperm", "synth", "out", "--frames", "many"], "self-test")
    with pytest.raises(pytest.fail.Exception, match="no subcommand"):
        check_command(["napari-sperm", "frobnicate"], "self-test")
