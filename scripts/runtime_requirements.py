"""Write environment.yml: the runtime packages only, pinned as in the lock.

It is the environment conda users create (``conda env create -f environment.yml``) and
the one Binder builds (repo2docker reads a top-level environment.yml as long as there is
no binder/ folder, and installs the local ``-e .`` after copying the repository). The one
package that must come without its dependencies, requirements-nodeps.txt, is installed
by the top-level postBuild (conda users run the same pip command). Both need what the chapters import, not the developer tools. This script takes the course's declared dependencies (pyproject.toml) and
the kernel, follows their requirements through the installed packages, and pins each one
at the version of requirements.txt. torch is the CPU build from PyTorch's CPU wheel index:
the default index's Linux wheel is the CUDA build, several GB of nvidia-* packages.
`make lock` runs it; tests/test_consistency.py checks that the file is up to date.
"""

import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "environment.yml"
PYTHON = "3.11"  # the version the course is tested with
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
KERNEL = ["ipykernel"]  # Jupyter itself comes with the Binder image (and conda's)
INSTALLER = {
    "pip",
    "setuptools",
    "wheel",
}  # every environment has them; not in the lock

HEADER = f"""\
# The course's runtime environment, for conda (conda env create -f environment.yml) and
# for Binder. Written by scripts/runtime_requirements.py from the lock: run `make lock`.
name: attention-step-by-step
channels:
  - conda-forge
dependencies:
  - python={PYTHON}
  - pip
  - pip:
      - --extra-index-url {TORCH_CPU_INDEX}
"""
PACKAGE = "      - -e .  # the course itself, utils/\n"


def lock_pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = version
    return pins


def runtime_closure(roots: list[str]) -> set[str]:
    """Every package the roots need on this platform, by the installed metadata."""
    environment = default_environment() | {"extra": ""}
    seen, todo = set(), [canonicalize_name(Requirement(r).name) for r in roots]
    while todo:
        name = todo.pop()
        if name in seen or name in INSTALLER:
            continue
        seen.add(name)
        for spec in metadata.requires(name) or []:
            requirement = Requirement(spec)
            if requirement.marker is None or requirement.marker.evaluate(environment):
                todo.append(canonicalize_name(requirement.name))
    return seen


def runtime_requirements() -> str:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = lock_pins()
    lines = []
    for name in sorted(runtime_closure(project["dependencies"] + KERNEL)):
        if name not in pins:
            sys.exit(
                f"{name} is needed at run time but requirements.txt does not pin it"
            )
        version = pins[name] + ("+cpu" if name == "torch" else "")
        lines.append(f"      - {name}=={version}\n")
    return HEADER + "".join(lines) + PACKAGE


if __name__ == "__main__":
    OUTPUT.write_text(runtime_requirements())
    print(f"wrote {OUTPUT.relative_to(ROOT)}")
