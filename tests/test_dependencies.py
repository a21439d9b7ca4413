"""Every package that `utils/` or a chapter imports is a declared runtime dependency, so a
chapter opened alone (Colab, a download) gets it from `pip install` of the course."""

import ast
import importlib.metadata
import json
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent


def _top_level_imports(source: str) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _imported_modules() -> dict[str, str]:
    """module -> the first file that imports it."""
    found = {}
    for path in sorted((ROOT / "utils").rglob("*.py")):
        for name in _top_level_imports(path.read_text()):
            found.setdefault(name, str(path.relative_to(ROOT)))
    for path in sorted((ROOT / "chapters").glob("*.ipynb")):
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] == "code":
                source = "".join(cell["source"])
                for name in _top_level_imports(source):
                    found.setdefault(name, str(path.relative_to(ROOT)))
    return found


def test_every_imported_package_is_a_declared_dependency():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {canonicalize_name(Requirement(d).name) for d in project["dependencies"]}
    distributions = importlib.metadata.packages_distributions()
    missing = []
    for module, where in sorted(_imported_modules().items()):
        # the course package, and the appendix's launcher in scripts/ (the repository's)
        if module in sys.stdlib_module_names or module in ("utils", "train_ddp"):
            continue
        owners = {canonicalize_name(d) for d in distributions.get(module, [])}
        assert owners, f"{where} imports {module}, which no installed package provides"
        if not owners & declared:
            missing.append(f"{module} ({', '.join(sorted(owners))}), imported in {where}")
    assert not missing, "not in pyproject.toml's dependencies: " + "; ".join(missing)


def test_the_check_sees_the_imports():
    modules = _imported_modules()
    assert {"torch", "transformers", "myst_nb", "ipywidgets", "utils"} <= set(modules)
