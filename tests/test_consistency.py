"""The three descriptions of the environment agree: requirements.txt (the lock),
pyproject.toml (the package) and environment.yml (Binder)."""

import re
import sys
import tomllib
from pathlib import Path

import yaml
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


def test_python_version_agrees():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    python = next(
        d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python=")
    )
    version = python.split("=")[1]
    assert Requirement(f"python{project['requires-python']}").specifier.contains(
        version + ".0"
    )
    assert sys.version_info[:2] == tuple(map(int, version.split(".")))


def test_environment_yml_installs_the_lock_and_the_package():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "-r requirements.txt" in pip and "-e ." in pip


def test_makefile_and_ci_use_the_lock():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"pip install .*-r requirements\.txt", makefile)
    assert "make test" in (ROOT / ".ci" / "run").read_text()
