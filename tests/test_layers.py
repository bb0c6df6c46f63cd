"""Imports point down the floors only (DESIGN.md): an import-graph check over `src/dipo`.

Every module-level or function-level `import dipo.X` is an arrow; lazy imports count too, since a lazy
import up the floors is the same dependency, only later. A failure names the file and the arrow.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "dipo"

# floor of each package (higher imports lower; packages on one floor do not import each other)
FLOORS = {
    "core": 0,
    "data": 1, "rewards": 1,
    "eval": 2, "analysis": 2,
    "testbed": 3,
    "engines.kit": 4,
    "engines.trl": 5, "engines.verl": 5,
    "commands": 6,  # the top-level modules: cli.py (the `dipo` dispatcher), demo.py, probe.py
}
# `dipo/__init__.py` and the private top-level helpers (`_cli_util`, `_progress`, `_cache`): every floor may
# use them; they import nothing of dipo but each other


def is_support(name: str) -> bool:
    return name == "dipo" or name.startswith("_")


def unit(module: str) -> str:
    """The floor unit of a dotted `dipo.…` module name."""
    parts = module.split(".")[1:]
    if not parts:
        return "dipo"
    if parts[0] == "engines":
        return "engines." + parts[1] if len(parts) > 1 else "engines"
    if is_support(parts[0]):
        return parts[0]
    return parts[0] if (SRC / parts[0]).is_dir() else "commands"


def module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) of every `dipo` import in a file, relative imports resolved."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                found.append((node.lineno, ".".join(base + ([node.module] if node.module else []))))
            elif node.module == "dipo":  # `from dipo import rewards`: the names are modules
                found += [(node.lineno, f"dipo.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, node.module or ""))
    return [(line, mod) for line, mod in found if mod == "dipo" or mod.startswith("dipo.")]


def upward_arrows() -> list[str]:
    bad = []
    for path in sorted(SRC.rglob("*.py")):
        source = unit(module_name(path))
        for line, target_module in imported_modules(path):
            target = unit(target_module)
            if target == source or target == "dipo":
                continue
            where = f"{path.relative_to(SRC.parent)}:{line}: {source} -> {target} ({target_module})"
            if is_support(source):
                if not is_support(target):
                    bad.append(where + ": a support module imports a floor")
            elif is_support(target):
                continue
            elif source not in FLOORS or target not in FLOORS:
                bad.append(where + ": a package with no floor (add it to FLOORS)")
            elif FLOORS[target] >= FLOORS[source]:
                bad.append(where + ": points up or sideways")
    return bad


def test_every_import_points_down_the_floors():
    assert upward_arrows() == []


def test_every_package_has_a_floor():
    units = {u for u in (unit(module_name(p)) for p in SRC.rglob("*.py")) if not is_support(u)} - {"engines"}
    assert units <= set(FLOORS), units - set(FLOORS)


@pytest.mark.parametrize("source, arrow", [
    ("core/x.py", "from dipo.engines.kit import RunLog"),
    ("eval/x.py", "from dipo.testbed import build_testbed"),
    ("testbed/x.py", "import dipo.engines.trl.cli"),
    ("data/x.py", "from dipo import rewards"),  # sideways: data and rewards share a floor
    ("eval/x.py", "from ..engines.kit import run_dir"),  # relative imports resolve too
])
def test_the_check_catches_an_arrow_that_points_up(tmp_path, monkeypatch, source, arrow):
    tree = tmp_path / "dipo"
    for package in ("core", "data", "rewards", "eval", "testbed", "engines/kit", "engines/trl"):
        (tree / package).mkdir(parents=True, exist_ok=True)
        (tree / package / "__init__.py").write_text("")
    (tree / source).write_text(arrow + "\n")
    monkeypatch.setitem(globals(), "SRC", tree)
    assert len(upward_arrows()) == 1 and source in upward_arrows()[0]
