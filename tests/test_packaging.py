"""The install routes agree: requirements.lock (make install) holds pyproject.toml's exact pins and
every package it pulls in, hashed; environment.yml (conda) pins the same versions as the lock."""
import importlib.util
import re
import tomllib

import yaml
from packaging.requirements import Requirement

from conftest import REPO

_spec = importlib.util.spec_from_file_location("environment_from_lock",
                                               REPO / "tools" / "environment_from_lock.py")
env_from_lock = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(env_from_lock)

LOCK = (REPO / "requirements.lock").read_text()
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def direct_pins(pyproject: dict) -> dict[str, str]:
    """{normalized name: version} of the dependencies and the test extra, all exact pins."""
    project = pyproject["project"]
    pins = {}
    for line in project["dependencies"] + project["optional-dependencies"]["test"]:
        req = Requirement(line)
        (spec,) = req.specifier  # one specifier, and it is ==
        assert spec.operator == "==", line
        pins[env_from_lock.normalize(req.name)] = spec.version
    return pins


def lock_disagreements(pins: dict[str, str], locked: dict[str, str]) -> dict[str, tuple]:
    """{name: (pinned, locked)} for each pin the lock lacks or holds at another version."""
    return {name: (version, locked.get(name)) for name, version in pins.items()
            if locked.get(name) != version}


def test_lock_holds_every_direct_pin_at_its_version():
    locked = env_from_lock.locked_versions(LOCK)
    pins = direct_pins(PYPROJECT)
    assert "torch" in pins and "cython" in locked  # the parsers found direct and transitive packages
    assert lock_disagreements(pins, locked) == {}
    # The check sees a bumped pin and a missing package (what `make lock` would fix).
    bumped = {**pins, "numpy": "0.0.1", "not-in-the-lock": "1.0"}
    assert lock_disagreements(bumped, locked) == {"numpy": ("0.0.1", locked["numpy"]),
                                                  "not-in-the-lock": ("1.0", None)}


def test_every_locked_package_is_pinned_and_hashed():
    # pip's hash-checking mode (make install) refuses a lock entry without a hash.
    entries = re.findall(r"^[^#\s].*(?:\n[ \t].*)*", LOCK, re.MULTILINE)  # a line and its indented ones
    assert len(entries) == len(env_from_lock.locked_versions(LOCK))
    for entry in entries:
        assert env_from_lock.PIN.match(entry) and "--hash=sha256:" in entry, entry


def test_lock_builds_kdsd_itself():
    # make install builds kdsd with --no-build-isolation: the lock must hold its build backend.
    locked = env_from_lock.locked_versions(LOCK)
    for line in PYPROJECT["build-system"]["requires"]:
        req = Requirement(line)
        assert req.specifier.contains(locked[env_from_lock.normalize(req.name)]), line


def test_environment_yml_is_written_from_the_lock():
    text = (REPO / "environment.yml").read_text()
    env = yaml.safe_load(text)
    assert "python=3.11" in env["dependencies"]
    conda_pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    conda_pins = env_from_lock.locked_versions("\n".join(conda_pip))
    assert conda_pins == env_from_lock.locked_versions(LOCK)
    assert conda_pip[-1] == "-e ."
    assert text == env_from_lock.environment_yml(conda_pins, "3.11")  # as make lock writes it
