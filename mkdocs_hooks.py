"""MkDocs hook: the package tree the API reference is generated from.

massdyn installs its libraries under one namespace from top-level folders
(``tracker/`` is ``massdyn.tracker``; see ``[tool.setuptools.package-dir]`` in
pyproject.toml), a layout that static analysis cannot follow. Before the build, this hook
lays the installed layout out as links under ``build/api-src/massdyn``, the path
mkdocs.yml gives mkdocstrings.
"""

from __future__ import annotations

from pathlib import Path

try:
    import tomllib
except ImportError:  # Python 3.10: the same parser, as a package (pytest brings it there)
    import tomli as tomllib

ROOT = Path(__file__).parent
TREE = ROOT / "build" / "api-src" / "massdyn"


def on_startup(command, dirty):
    """Link each package folder of the installed layout into ``build/api-src``.

    At startup, before mkdocstrings resolves its paths (it drops one that does not exist).
    """
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    mapped = project["tool"]["setuptools"]["package-dir"]
    TREE.mkdir(parents=True, exist_ok=True)
    for child in (ROOT / "massdyn").iterdir():
        _link(TREE / child.name, child)
    for package, folder in mapped.items():
        _link(TREE / package.split(".", 1)[1], ROOT / folder)


def _link(link: Path, target: Path) -> None:
    if link.is_symlink() or link.exists():
        if link.is_symlink() and link.resolve() == target.resolve():
            return
        link.unlink()
    link.symlink_to(target.resolve(), target_is_directory=target.is_dir())
