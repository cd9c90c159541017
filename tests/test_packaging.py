"""The two install routes (pip via pyproject.toml, conda via environment.yml) pin the same set."""
import tomllib

import yaml

from conftest import REPO


def test_environment_yml_pins_the_same_packages_as_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pip_pins = set(project["dependencies"]) | set(project["optional-dependencies"]["test"])
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    conda_pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert {p for p in conda_pip if "==" in p} == pip_pins
    assert all("==" in p for p in pip_pins)  # exact pins only
    assert "python=3.11" in env["dependencies"]
