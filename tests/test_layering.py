"""The layout stays true: layers import downward only, no file imports itself back through a cycle, the installed
package list matches the folders, and no module outgrows the house limit without a stated reason.

Everything here is read from the code's own import statements (``ast``), function-local and ``TYPE_CHECKING``
imports included, so a late import cannot hide an arrow that runs back up."""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# Where each folder's code is installed (pyproject.toml [tool.setuptools.package-dir]).
FOLDERS = {
    "jobfleet": "jobfleet",
    "app": "jobfleet.app",
    "workers": "jobfleet.workers",
    "middleware": "jobfleet.middleware",
}

# From the bottom up. A package may import its own floor's package and any lower floor's, never a higher one and
# never its sibling on the same floor (broker and middleware both sit on the store; workers and app both on those).
FLOORS: list[set[str]] = [
    {"jobfleet.core"},
    {"jobfleet.store"},
    {"jobfleet.broker", "jobfleet.middleware"},
    {"jobfleet.workers", "jobfleet.app"},
    {"jobfleet.ops"},
]

# Files allowed past the house limit of ~300 lines, each with its reason. Keep this list short.
LONG_FILES: dict[str, str] = {}
LINE_LIMIT = 300


def _module_name(path: Path) -> str:
    relative = path.relative_to(REPO)
    head, *rest = relative.with_suffix("").parts
    parts = [FOLDERS[head], *rest]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _source_files() -> Iterator[Path]:
    for folder in FOLDERS:
        yield from sorted((REPO / folder).rglob("*.py"))


MODULES = {_module_name(path): path for path in _source_files()}


def _imports(module: str, path: Path) -> set[str]:
    """Every jobfleet module ``module`` imports (a name imported from a package counts as its submodule if any)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in MODULES else base)
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _floor(module: str) -> tuple[int, str] | None:
    for level, packages in enumerate(FLOORS):
        for package in packages:
            if module == package or module.startswith(package + "."):
                return level, package
    return None


def test_every_module_lives_on_a_floor() -> None:
    homeless = sorted(m for m in MODULES if m != "jobfleet" and _floor(m) is None)
    assert homeless == [], f"modules outside every layer (add them to a floor in {__name__}): {homeless}"


def test_no_layer_imports_a_higher_layer_or_its_sibling() -> None:
    wrong = []
    for module, imported in sorted(GRAPH.items()):
        here = _floor(module)
        for target in sorted(imported):
            there = _floor(target)
            if here is None or there is None:
                continue
            if there[0] > here[0] or (there[0] == here[0] and there[1] != here[1]):
                wrong.append(f"{module} -> {target}")
    assert wrong == [], "imports that run up or sideways:\n" + "\n".join(wrong)


def test_code_imports_jobfleet_never_the_bare_folder_names() -> None:
    # `import app` works from the repository root by accident (the folder is on sys.path) and would load a second
    # copy of every module under another name.
    bare = sorted(
        f"{m} -> {t}" for m, ts in GRAPH.items() for t in ts if t.split(".")[0] in {"app", "workers", "middleware"}
    )
    assert bare == []


def test_no_import_cycles_between_files() -> None:
    # A package's __init__ that hands its submodules' names on is not a cycle with them.
    edges = {
        m: {
            t
            for t in ts
            if t in MODULES and t != m and not (MODULES[t].name == "__init__.py" and m.startswith(t + "."))
        }
        for m, ts in GRAPH.items()
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    assert cycles == []


def test_the_installed_package_list_is_the_folders_on_disk() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    on_disk = sorted(_module_name(p) for p in _source_files() if p.name == "__init__.py")
    assert sorted(config["packages"]) == on_disk
    assert config["package-dir"] == {name: folder for folder, name in FOLDERS.items()}


@pytest.mark.parametrize("suffix", [".py", ".lua"])
def test_no_module_outgrows_the_house_limit(suffix: str) -> None:
    too_long = {}
    for folder in (*FOLDERS, "bench", "grafana"):
        for path in (REPO / folder).rglob(f"*{suffix}"):
            relative = str(path.relative_to(REPO))
            lines = len(path.read_text().splitlines())
            if lines > LINE_LIMIT and relative not in LONG_FILES:
                too_long[relative] = lines
    assert too_long == {}, f"over {LINE_LIMIT} lines (split it, or give the reason in LONG_FILES): {too_long}"
