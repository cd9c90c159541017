"""Write environment.yml from requirements.lock, so that conda's route gets the locked tree.

`make lock` runs it after re-resolving the lock; tests/test_packaging.py checks that
environment.yml is what it would write.
"""
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PIN = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")

HEADER = """\
# Conda route to the environment that `make install` builds. Written from requirements.lock by
# `make lock` (tools/environment_from_lock.py): edit pyproject.toml and run it, not this file.
#   conda env create -f environment.yml && conda activate kdsd
# The pip section pins every package of the lock to its locked version rather than pointing at
# the lock (-r requirements.lock): the lock's hashes put pip in hash-checking mode, which refuses
# `-e .`, so a conda user would need a second command for kdsd itself. Here one command gives the
# same versions; only the hash check of each download is left to `make install`.
"""


def normalize(name: str) -> str:
    """The name as PyPI compares it (PEP 503): case, '-', '_' and '.' do not matter."""
    return re.sub(r"[-_.]+", "-", name).lower()


def locked_versions(requirements: str) -> dict[str, str]:
    """{normalized name: version} of each `name==version` line of a requirements file."""
    return {normalize(m[1]): m[2] for line in requirements.splitlines() if (m := PIN.match(line))}


def environment_yml(locked: dict[str, str], python: str) -> str:
    pins = "".join(f"      - {name}=={version}\n" for name, version in sorted(locked.items()))
    return (HEADER + "name: kdsd\nchannels:\n  - conda-forge\ndependencies:\n"
            f"  - python={python}\n  - pip\n  - pip:\n{pins}      - -e .\n")


def main(argv: list[str]) -> None:
    (python,) = argv
    lock = (REPO / "requirements.lock").read_text()
    (REPO / "environment.yml").write_text(environment_yml(locked_versions(lock), python))


if __name__ == "__main__":
    main(sys.argv[1:])
