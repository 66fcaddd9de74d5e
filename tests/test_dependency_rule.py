"""The package map of DESIGN.md: arrows point down only, and only `ml` may use TensorFlow."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "edgefleet"
PACKAGES = ("contracts", "dsp", "ml", "edge", "server", "dashboard", "cli", "enclosure")
ALLOWED: dict[str, set[str]] = {
    "contracts": set(),
    "dsp": set(),
    "enclosure": set(),
    "ml": {"dsp", "contracts"},
    "edge": {"contracts", "dsp"},
    "server": {"contracts"},
    "dashboard": {"server", "contracts"},
    "cli": {"contracts", "dsp", "ml", "edge", "server", "dashboard", "enclosure", "__root__"},
}
TRAINING_ONLY = ("tensorflow", "keras", "tf_keras")


def _imports(path: Path) -> list[tuple[int, str]]:
    """Absolute module names imported by a file (relative imports resolved)."""
    # The package a module lives in; for `__init__.py` that is its own directory either way.
    package_parts = path.relative_to(SRC.parent).with_suffix("").parts[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(package_parts[: len(package_parts) - node.level + 1])
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.append((node.lineno, module))
    return found


def _edgefleet_target(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "edgefleet":
        return None
    return parts[1] if len(parts) > 1 and parts[1] in PACKAGES else "__root__"


def _violations(package: str) -> list[str]:
    problems = []
    for path in sorted((SRC / package).rglob("*.py")):
        for line, module in _imports(path):
            target = _edgefleet_target(module)
            if target and target != package and target not in ALLOWED[package]:
                problems.append(f"{path.relative_to(SRC)}:{line} imports {module}")
            if package != "ml" and module.split(".")[0] in TRAINING_ONLY:
                problems.append(f"{path.relative_to(SRC)}:{line} imports {module} (only ml may)")
    return problems


@pytest.mark.parametrize("package", PACKAGES)
def test_package_respects_the_dependency_rule(package: str) -> None:
    assert _violations(package) == []


def test_the_checker_catches_a_violation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "edgefleet"
    (fake / "edge").mkdir(parents=True)
    (fake / "edge" / "bad.py").write_text(
        "from edgefleet.server import app\nfrom ..ml import train\nimport tensorflow\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "SRC", fake)
    assert len(_violations("edge")) == 3


def test_gateway_and_server_import_without_tensorflow() -> None:
    code = (
        "import sys, pkgutil, importlib, edgefleet\n"
        "for pkg in ('edgefleet.contracts', 'edgefleet.dsp', 'edgefleet.edge', 'edgefleet.server',"
        " 'edgefleet.dashboard', 'edgefleet.cli.main'):\n"
        "    m = importlib.import_module(pkg)\n"
        "    for info in pkgutil.walk_packages(getattr(m, '__path__', []), pkg + '.'):\n"
        "        importlib.import_module(info.name)\n"
        "bad = sorted(n for n in sys.modules if n.split('.')[0] in ('tensorflow', 'keras'))\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "", f"TensorFlow was imported: {result.stdout.strip()[:200]}"
