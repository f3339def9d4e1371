"""The stages look only to their left: catalog -> analysis -> experiments -> bench ->
recommend -> report -> cli. No stage imports a later one, or the package root."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "actlab"
ORDER = ["catalog", "analysis", "experiments", "bench", "recommend", "report", "cli"]


def _stage(module: str) -> str | None:
    """``actlab.analysis.gain`` -> ``analysis``; ``actlab`` -> ``None`` (the root)."""
    parts = module.split(".")
    if parts[0] != "actlab" or len(parts) == 1:
        return None
    return parts[1]


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every actlab module that ``path`` imports (also inside functions), with its line."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "actlab"]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "actlab":  # from actlab import x: x may be a stage or a root name
                for a in node.names:
                    name = f"actlab.{a.name}"
                    found.append((node.lineno, name if _stage(name) in ORDER else "actlab"))
            elif node.module.split(".")[0] == "actlab":
                found.append((node.lineno, node.module))
    return found


def _files() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if p.relative_to(SRC).parts[0] != "__init__.py")


@pytest.mark.parametrize("path", _files(), ids=lambda p: str(p.relative_to(SRC)))
def test_stage_imports_only_to_its_left(path: Path) -> None:
    own = path.relative_to(SRC).parts[0].removesuffix(".py")
    if own not in ORDER:  # e.g. py.typed neighbours; every module belongs to a stage
        pytest.fail(f"{path.relative_to(SRC)} belongs to no stage of {ORDER}")
    rank = ORDER.index(own)
    for line, module in _imports(path):
        stage = _stage(module)
        assert stage is not None, (
            f"{path.relative_to(SRC)}:{line} imports the package root ({module}); "
            "import the stage module that defines the name"
        )
        assert stage in ORDER, f"{path.relative_to(SRC)}:{line}: unknown stage {stage!r}"
        assert ORDER.index(stage) <= rank, (
            f"{path.relative_to(SRC)}:{line} ({own}) imports {module} ({stage}), a later stage"
        )


def test_the_check_finds_a_backward_import(tmp_path: Path) -> None:
    bad = tmp_path / "m.py"
    bad.write_text("def f():\n    from actlab.report.html import write_report\n")
    assert _imports(bad) == [(2, "actlab.report.html")]
    root = tmp_path / "r.py"
    root.write_text("from actlab import __version__\nimport actlab\n")
    assert [_stage(m) for _, m in _imports(root)] == [None, None]
