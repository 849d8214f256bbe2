"""Every import between matchday's parts is an arrow that docs/design.md's layer table draws, and it
goes down the layers through the imported part's public face.

The table is read from the design page itself, so the page and this test cannot disagree. Imports are
read with `ast`: at the top of a module, inside functions, and under `TYPE_CHECKING` (a type is a
dependency too; the lazy faces name their modules there). `importlib.import_module` strings are not
read.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DESIGN = ROOT / "docs" / "design.md"
SRC = ROOT / "src"
PACKAGES = ("matchday", "matchday_edge")

# Imports that break the table's rules for now, each `importer part's face → imported module` with the
# reason it stays. An exception no import needs any more fails the suite: delete it then.
KNOWN_EXCEPTIONS: dict[str, str] = {}


@dataclass(frozen=True)
class Part:
    """One row of the layer table."""

    name: str
    layer: float
    imports: tuple[str, ...]
    base: bool = False  # the base (errors, durations): any part of matchday imports it without an arrow

    @property
    def face(self) -> str:
        return self.name if self.name in PACKAGES else f"matchday.{self.name}"


@dataclass(frozen=True)
class Import:
    """One imported module, where it is imported."""

    importer: str
    target: str
    line: int


@cache
def layer_table() -> dict[str, Part]:
    """The rows of the `| layer | part | imports |` table in docs/design.md."""
    lines = DESIGN.read_text().splitlines()
    header = lines.index("| layer | part | imports |")
    parts: dict[str, Part] = {}
    for line in lines[header + 2 :]:
        if not line.startswith("|"):
            break
        layer, part, imports = (cell.strip() for cell in line.strip("|").split("|"))
        name = re.findall(r"`([^`]+)`", part)[0]
        base = layer == "base"
        parts[name] = Part(name, -1.0 if base else float(layer), tuple(re.findall(r"`([^`]+)`", imports)), base)
    return parts


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    return {module_name(path): path for package in PACKAGES for path in sorted((SRC / package).rglob("*.py"))}


@cache
def names_bound_in(module: str) -> frozenset[str]:
    """The names a module binds at its top (under `TYPE_CHECKING` too): `from package import name` reads
    these before the package's submodules (`from matchday.retrain import simulate` is a function)."""
    tree = ast.parse(modules()[module].read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and node in tree.body:
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign) and node in tree.body:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {target.id for target in targets if isinstance(target, ast.Name)}
    return frozenset(names)


def part_of(module: str) -> str | None:
    """The table's part a module belongs to: the longest part name it lies under."""
    if module in PACKAGES or module.startswith("matchday_edge."):
        return module.split(".")[0]
    inner = module.removeprefix("matchday.")
    names = [name for name in layer_table() if inner == name or inner.startswith(name + ".")]
    return max(names, key=len) if names else None


def imports_of(module: str, path: Path) -> list[Import]:
    """Every module of ours that `module` imports, wherever in it (a `from X import submodule` names it)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.level:  # relative: resolve against the importing package
                package = module if path.name == "__init__.py" else module.rpartition(".")[0]
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                node_module = f"{base}.{node.module}"
            else:
                node_module = node.module
            if node_module == "matchday" and {alias.name for alias in node.names} == {"__version__"}:
                continue  # design.md: any module may read matchday.__version__
            bound = names_bound_in(node_module) if node_module in modules() else frozenset()
            submodules = [f"{node_module}.{alias.name}" for alias in node.names if alias.name not in bound]
            targets = [name for name in submodules if name in modules()] or [node_module]
        else:
            continue
        found += [Import(module, target, node.lineno) for target in targets if target.split(".")[0] in PACKAGES]
    return found


def breaches(imported: Import) -> list[str]:
    """What is wrong with one import between two parts: an arrow the table does not draw, a reach past a face."""
    importer, target = layer_table()[part_of(imported.importer) or ""], part_of(imported.target)
    if target is None or target == importer.name:
        return []
    problems = []
    base = layer_table()[target].base and importer.name != "matchday_edge"
    if target not in importer.imports and not base:
        problems.append(f"docs/design.md draws no arrow {importer.name} → {target}")
    if imported.target != layer_table()[target].face:
        problems.append(f"{imported.target} is inside {target}: import its face {layer_table()[target].face}")
    return problems


@cache
def violations() -> dict[str, list[str]]:
    """`importer face → imported module` for every import that breaks the table, with where and why."""
    found: dict[str, list[str]] = {}
    for module, path in modules().items():
        for imported in imports_of(module, path):
            for problem in breaches(imported):
                key = f"{layer_table()[part_of(module) or ''].face} → {imported.target}"
                found.setdefault(key, []).append(f"{path.relative_to(ROOT)}:{imported.line}: {problem}")
    return found


def test_the_table_draws_every_arrow_down_to_a_part_it_names() -> None:
    table = layer_table()
    assert {"store", "registry", "monitoring", "serving", "cli", "demo", "matchday_edge"} <= set(table)
    for part in table.values():
        assert not (part.base and part.imports), f"the base part {part.name} imports nothing of ours"
        for name in part.imports:
            assert name in table, f"{part.name} imports {name}, which has no row"
            assert table[name].layer < part.layer, f"{part.name} (layer {part.layer}) → {name} ({table[name].layer})"


def test_every_module_belongs_to_a_part() -> None:
    assert [module for module in modules() if part_of(module) is None] == []


def test_the_store_and_the_edge_runtime_import_nothing_above_them() -> None:
    """DESIGN.md's two fixed ends: `store` imports nothing of ours but errors; `matchday_edge` nothing of matchday."""
    assert layer_table()["store"].imports == ()
    assert layer_table()["matchday_edge"].imports == ()
    assert {name for name, part in layer_table().items() if part.base} == {"errors", "durations"}
    store_imports = {
        part_of(imported.target)
        for module, path in modules().items()
        if part_of(module) == "store"
        for imported in imports_of(module, path)
    }
    assert store_imports <= {"store", "errors"}  # not even the rest of the base


def test_every_import_between_parts_is_drawn_and_goes_through_a_face() -> None:
    unexpected = {key: where for key, where in violations().items() if key not in KNOWN_EXCEPTIONS}
    assert unexpected == {}


def test_every_known_exception_is_still_needed() -> None:
    assert [key for key in KNOWN_EXCEPTIONS if key not in violations()] == []


@pytest.mark.parametrize("part", sorted(layer_table()), ids=str)
def test_every_arrow_the_table_draws_is_used(part: str) -> None:
    """The table says what the code does: an arrow no module draws any more leaves the row."""
    used = {
        part_of(imported.target)
        for module, path in modules().items()
        if part_of(module) == part
        for imported in imports_of(module, path)
    }
    assert [name for name in layer_table()[part].imports if name not in used] == []


def test_a_lazy_import_inside_a_function_counts(tmp_path: Path) -> None:
    """The reader sees what a line-by-line check missed: imports in functions and under TYPE_CHECKING."""
    source = tmp_path / "lazy.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from matchday.workspace import Workspace\n"
        "def f():\n    from matchday.registry.registry import Registry\n"
        "from matchday import __version__\n"
    )
    found = sorted((i.target, i.line) for i in imports_of("matchday.store.lazy", source))
    assert found == [("matchday.registry.registry", 5), ("matchday.workspace", 3)]
    assert breaches(Import("matchday.store.lazy", "matchday.registry.registry", 5)) == [
        "docs/design.md draws no arrow store → registry",
        "matchday.registry.registry is inside registry: import its face matchday.registry",
    ]
