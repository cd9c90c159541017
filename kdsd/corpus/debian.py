"""Debian packages as a data source: fetch at a pinned version, check the hash, unpack without root.

A ``.deb`` is an ``ar`` archive (``debian-binary``, ``control.tar.*``, ``data.tar.*``); the files
a package installs are in ``data.tar.*``. Everything here is stdlib: ``ar`` is read by hand and
the tarball streamed with :mod:`tarfile` (xz, gz, bz2; zstd is not in Python 3.11's stdlib and
is refused with a clear message; every pinned package is xz).

A package is taken, in this order, from the cache folder (``<cache_dir>/debs/``), from a folder
the user filled by hand (``corpus.recorded.deb_dir``), or from ``apt-get download NAME=VERSION``
(no root needed). Whatever the origin, its sha256 must be the pinned one: a different file is an
error naming it, never a silently different corpus.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from kdsd.errors import KdsdError

AR_MAGIC = b"!<arch>\n"
AR_HEADER_BYTES = 60
TAR_MODES = {".xz": "r|xz", ".gz": "r|gz", ".bz2": "r|bz2", ".tar": "r|"}
DEB_DIR_KEY = "corpus.recorded.deb_dir"
APT_TIMEOUT_S = 600


@dataclass(frozen=True)
class DebPackage:
    """One pinned Debian package: what ``apt-get download NAME=VERSION`` must give."""
    name: str
    version: str
    sha256: str
    size: int
    licence: str

    @property
    def filename(self) -> str:
        """The file name ``apt-get download`` writes (an epoch's ``:`` is escaped as ``%3a``)."""
        return f"{self.name}_{self.version.replace(':', '%3a')}_all.deb"

    @property
    def pin(self) -> str:
        return f"{self.name}={self.version}"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(path: Path, package: DebPackage) -> Path:
    """``path`` if its sha256 is the pinned one, else a one-line error naming both hashes."""
    found = sha256_of(path)
    if found != package.sha256:
        raise KdsdError(f"{path}: sha256 {found}, expected {package.sha256} for {package.pin}; "
                        "a different file would give a different corpus (delete it, or fetch "
                        f"the pinned version: apt-get download {package.pin})")
    return path


def cached_deb(package: DebPackage, cache_dir: Path) -> Path:
    return Path(cache_dir) / "debs" / package.filename


def local_deb(package: DebPackage, cache_dir: Path, deb_dir: str | None) -> Path | None:
    """The package's ``.deb`` already on disk (cache first, then ``deb_dir``), or None."""
    candidates = [cached_deb(package, cache_dir)]
    if deb_dir:
        candidates.append(Path(deb_dir) / package.filename)
    return next((path for path in candidates if path.is_file()), None)


def apt_problems(packages: list[DebPackage]) -> dict[str, str]:
    """Why ``apt-get download`` cannot give these exact versions here, by package name (one
    ``apt-cache show`` for all of them: this runs whenever the DAG is parsed before a fetch)."""
    if not packages:
        return {}
    if shutil.which("apt-get") is None or shutil.which("apt-cache") is None:
        return {p.name: "apt-get is not installed" for p in packages}
    shown = subprocess.run(["apt-cache", "show", *(p.pin for p in packages)], capture_output=True, text=True)
    return {p.name: f"apt-cache does not know version {p.version} (run apt-get update, or another release)"
            for p in packages if f"SHA256: {p.sha256}" not in shown.stdout}



def missing_error(package: DebPackage, cache_dir: Path, deb_dir: str | None, problem: str) -> KdsdError:
    where = f"{cached_deb(package, cache_dir).parent}" + (f" nor {deb_dir}" if deb_dir else "")
    return KdsdError(f"Debian package {package.pin}: not in {where}, and {problem}; download "
                     f"{package.filename} by hand and set config {DEB_DIR_KEY} to its folder")


def check_available(packages: list[DebPackage], cache_dir: Path, deb_dir: str | None) -> None:
    """Refuse, in one line, the first package that is neither on disk nor obtainable with apt-get."""
    absent = [p for p in packages if local_deb(p, cache_dir, deb_dir) is None]
    problems = apt_problems(absent)
    for package in absent:
        if package.name in problems:
            raise missing_error(package, cache_dir, deb_dir, problems[package.name])


def fetch(package: DebPackage, cache_dir: Path, deb_dir: str | None = None) -> Path:
    """The verified ``.deb``: found on disk, or downloaded once into ``<cache_dir>/debs/``."""
    found = local_deb(package, cache_dir, deb_dir)
    if found is not None:
        return verify(found, package)
    check_available([package], cache_dir, deb_dir)
    target = cached_deb(package, cache_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".apt.", dir=target.parent) as tmp:
        run = subprocess.run(["apt-get", "download", package.pin], cwd=tmp, capture_output=True,
                             text=True, timeout=APT_TIMEOUT_S)
        got = Path(tmp) / package.filename
        if run.returncode != 0 or not got.is_file():
            last = (run.stderr.strip().splitlines() or ["no output"])[-1]
            raise missing_error(package, cache_dir, deb_dir, f"apt-get download failed ({last})")
        verify(got, package)
        os.replace(got, target)  # only a verified file ever lands in the cache
    return target


def _ar_members(f) -> Iterator[tuple[str, int, int]]:
    """(name, offset, size) of each member of an open ``ar`` archive."""
    if f.read(len(AR_MAGIC)) != AR_MAGIC:
        raise ValueError("not an ar archive")
    while True:
        header = f.read(AR_HEADER_BYTES)
        if len(header) < AR_HEADER_BYTES:
            return
        name, size = header[:16].decode().strip().rstrip("/"), int(header[48:58].decode())
        offset = f.tell()
        yield name, offset, size
        f.seek(offset + size + size % 2)  # members are padded to an even length


class _Slice:
    """A read-only file object over ``size`` bytes of ``f`` from its current position."""

    def __init__(self, f, size: int):
        self._f, self._left = f, size

    def read(self, n: int = -1) -> bytes:
        n = self._left if n is None or n < 0 else min(n, self._left)
        data = self._f.read(n)
        self._left -= len(data)
        return data


def _data_member(path: Path, f) -> tuple[str, int]:
    try:
        for name, offset, size in _ar_members(f):
            if name.startswith("data.tar"):
                f.seek(offset)
                return name, size
    except (ValueError, UnicodeDecodeError) as exc:
        raise KdsdError(f"{path}: not a Debian package ({exc})") from None
    raise KdsdError(f"{path}: not a Debian package (no data.tar member)")


def extract(path: Path, wanted: Callable[[str], bool], out_dir: Path) -> list[str]:
    """Copy the regular files of ``path``'s data tarball whose names ``wanted`` accepts to
    ``out_dir/<name>`` (names as in the tarball, ``./`` dropped); returns those names.

    The tarball is streamed once, so only the chosen members are ever written."""
    path, out_dir, names = Path(path), Path(out_dir), []
    with open(path, "rb") as f:
        member, size = _data_member(path, f)
        mode = TAR_MODES.get(Path(member).suffix)
        if mode is None:
            raise KdsdError(f"{path}: {member} is not readable by Python's tarfile "
                            f"(supported: {', '.join(TAR_MODES)}); repack it as data.tar.xz")
        try:
            with tarfile.open(fileobj=_Slice(f, size), mode=mode) as tar:
                for entry in tar:
                    name = entry.name.removeprefix("./")
                    if not entry.isfile() or not wanted(name):
                        continue
                    target = out_dir / name
                    if ".." in Path(name).parts:
                        raise KdsdError(f"{path}: member {entry.name!r} points outside the package")
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with tar.extractfile(entry) as src, open(target, "wb") as dst:
                        shutil.copyfileobj(src, dst)
                    names.append(name)
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise KdsdError(f"{path}: damaged {member} ({exc})") from None
    return names
