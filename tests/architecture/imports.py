"""Reads the imports of the product's code (every `import`, those inside functions too), as text, without running it."""

import ast
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Import:
    source: Path  # the file, relative to the root
    line: int
    module: str  # the module imported, absolute ("accounts.domain.money")


def _module_of(path: Path) -> str:
    parts = list(path.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_in(root: Path, packages: Iterable[str]) -> list[Import]:
    """Every import in the .py files under root/<package> for each package (migrations included)."""
    found = []
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            relative = path.relative_to(root)
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(relative))
            here = _module_of(relative)
            is_package = relative.name == "__init__.py"
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    found += [Import(relative, node.lineno, alias.name) for alias in node.names]
                elif isinstance(node, ast.ImportFrom):
                    base = _absolute(node, here, is_package)
                    found.append(Import(relative, node.lineno, base))
                    # `from package import module` imports package.module when it is one.
                    found += [
                        Import(relative, node.lineno, f"{base}.{alias.name}")
                        for alias in node.names
                        if (root / Path(*f"{base}.{alias.name}".split("."))).with_suffix(".py").exists()
                        or (root / Path(*f"{base}.{alias.name}".split("."))).is_dir()
                    ]
    return found


def _absolute(node: ast.ImportFrom, here: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    package = here.split(".") if is_package else here.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def top_level(module: str) -> str:
    return module.split(".")[0]


def is_standard_library(module: str) -> bool:
    return top_level(module) in sys.stdlib_module_names


def package_graph(found: Iterable[Import], packages: set[str]) -> dict[str, dict[str, list[Import]]]:
    """package -> {package it imports: the imports that make the arrow}, between the given packages only."""
    graph: dict[str, dict[str, list[Import]]] = {package: {} for package in packages}
    for each in found:
        source, target = each.source.parts[0], top_level(each.module)
        if target in packages and target != source:
            graph[source].setdefault(target, []).append(each)
    return graph


def cycles(graph: dict[str, dict[str, list[Import]]]) -> list[list[str]]:
    """Each cycle once, as the packages along it (a depth-first search for back edges)."""
    found: list[list[str]] = []
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = "open"
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                found.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target)
        path.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found
