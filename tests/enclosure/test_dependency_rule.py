"""The enclosure package imports nothing else of edgefleet."""

import ast
from pathlib import Path

import edgefleet.enclosure

PACKAGE = Path(edgefleet.enclosure.__file__).parent


def test_imports_stay_inside_the_package() -> None:
    offenders = []
    for path in sorted(PACKAGE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [
                f"{path.name}: {n}"
                for n in names
                if n.startswith("edgefleet") and not n.startswith("edgefleet.enclosure")
            ]
    assert offenders == []
