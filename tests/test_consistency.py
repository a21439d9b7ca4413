"""The descriptions of the environment agree: requirements.txt (the lock), pyproject.toml
(the package) and binder/ (Binder's runtime environment)."""

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


def test_binder_python_is_in_the_supported_range():
    runtime = (ROOT / "binder" / "runtime.txt").read_text().strip()
    assert re.fullmatch(r"python-3\.\d+", runtime), runtime
    assert _requires_python().contains(runtime.removeprefix("python-") + ".0")


def test_lock_has_no_cuda_packages():
    cuda = [name for name in _lock() if name.startswith("nvidia-") or name == "triton"]
    assert not cuda, f"the lock pins CUDA packages {cuda}: torch was not the CPU build"


def test_binder_requirements_are_the_runtime_part_of_the_lock():
    sys.path.insert(0, str(ROOT / "scripts"))
    from runtime_requirements import runtime_requirements

    written = (ROOT / "binder" / "requirements.txt").read_text()
    assert written == runtime_requirements(), (
        "binder/requirements.txt is out of date: run `make lock` "
        "(or python scripts/runtime_requirements.py)"
    )
    assert "\ntorch==" in written and "+cpu" in written
    assert not any(tool in written for tool in ("\npytest==", "\nruff==", "\njupyter-book="))


def test_binder_installs_the_package():
    post_build = (ROOT / "binder" / "postBuild").read_text()
    assert "pip install --no-deps" in post_build and "-e ." in post_build


def test_makefile_and_ci_use_the_lock():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"pip install .*-r requirements\.txt", makefile)
    assert "make test" in (ROOT / ".ci" / "run").read_text()
