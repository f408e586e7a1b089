"""The README and the guide: every `massdyn` command they show parses, every page is built.

An example line (no placeholders) must parse as the command line would parse it; a
synopsis line (with ``[``, ``|`` or ``...``) must name an existing command and only
options that command has.
"""

import argparse
import re
import shlex
from pathlib import Path

import pytest

from massdyn.cli import build_parser
from massdyn.commands import COMMANDS

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
SYNOPSIS = re.compile(r"\[|\||\.\.\.")
PLACEHOLDER = re.compile(r"[A-Z][A-Z0-9_]*")  # STEP, N, DIR: a value to fill in


def command_lines(path: Path) -> list[tuple[int, str]]:
    """``(line number, command)`` of every ``massdyn ...`` in code blocks and code spans."""
    found = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i, fenced = 0, False
    while i < len(lines):
        line, number = lines[i], i + 1
        if line.strip().startswith("```"):
            fenced = not fenced
        while line.rstrip().endswith("\\") and i + 1 < len(lines):  # shell continuation
            i += 1
            line = line.rstrip()[:-1] + " " + lines[i].strip()
        stripped = line.strip()
        in_code = fenced or line.startswith("    ")
        if in_code and stripped.startswith("massdyn "):
            found.append((number, stripped.split(" #", 1)[0].strip()))
        else:
            for span in re.findall(r"`(massdyn [^`]+)`", line):
                found.append((number, span.replace("\\|", "|")))
        i += 1
    return found


def _subparser(command: str) -> argparse.ArgumentParser:
    parser = build_parser([command])
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[command]


CASES = [(p, n, c) for p in PAGES for n, c in command_lines(p)]


def test_the_pages_show_commands_at_all():
    assert len(CASES) > 60
    assert {p.name for p, _, _ in CASES} >= {"README.md", "getting-started.md", "mechanisms.md"}


@pytest.mark.parametrize(
    "path, number, line",
    CASES,
    ids=[f"{p.relative_to(ROOT)}:{n}" for p, n, _ in CASES],
)
def test_every_command_shown_parses(path, number, line):
    words = shlex.split(line)[1:]
    assert words, f"{path.name}:{number}: a bare 'massdyn'"
    command = words[0]
    if command.isupper() or command.startswith("-"):  # 'massdyn COMMAND --help', '--version'
        return
    assert command in COMMANDS, f"{path.name}:{number}: no command {command!r}"
    sub = _subparser(command)
    if SYNOPSIS.search(line) or any(PLACEHOLDER.fullmatch(w) for w in words[1:]):
        known = set(sub._option_string_actions)
        for word in words[1:]:
            for option in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", word):
                assert option in known, f"{path.name}:{number}: {command} has no {option}"
        return
    try:
        sub.parse_args(words[1:])
    except SystemExit:
        pytest.fail(f"{path.name}:{number}: `{line}` does not parse")


def test_the_site_lists_every_guide_page_and_every_figure():
    """mkdocs.yml's navigation holds every page; the figures page shows every figure."""
    from massdyn.figures import FIGURES

    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    pages = {p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md")}
    missing = [p for p in pages if p not in nav]
    assert not missing, f"pages not in mkdocs.yml's nav: {missing}"
    figures = (ROOT / "docs" / "figures.md").read_text(encoding="utf-8")
    for name in FIGURES:
        assert f"figures/{name}.png" in figures, name
        assert (ROOT / "docs" / "figures" / f"{name}.png").exists(), name
