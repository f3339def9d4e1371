"""Optional downloads with checksum verification (used only when a caller asks for them)."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from actlab.experiments.data.core import DataError


@dataclass(frozen=True)
class RemoteFile:
    """A file to fetch: its local name, mirror URLs, and at least one checksum."""

    name: str
    urls: tuple[str, ...]
    md5: str | None = None
    sha256: str | None = None

    def __post_init__(self) -> None:
        if not self.urls:
            raise ValueError(f"RemoteFile {self.name!r} needs at least one URL")
        if self.md5 is None and self.sha256 is None:
            raise ValueError(f"RemoteFile {self.name!r} needs an md5 or sha256 checksum")


def file_digest(path: str | Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB blocks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def checksum_problem(path: str | Path, remote: RemoteFile) -> str | None:
    """``None`` if ``path`` matches the checksums of ``remote``, else what differs."""
    for algorithm, expected in (("sha256", remote.sha256), ("md5", remote.md5)):
        if expected is not None:
            got = file_digest(path, algorithm)
            if got != expected.lower():
                return f"{algorithm} is {got}, expected {expected}"
    return None


def fetch(remote: RemoteFile, directory: str | Path, timeout: float = 60.0) -> Path:
    """Download ``remote`` into ``directory`` (kept if already there with the right checksum).

    Each mirror is tried in turn; the file is written to a temporary name, verified, then
    renamed, so a failed or interrupted download never leaves a bad file behind.

    Raises:
        DataError: no mirror could be reached, or what came back fails its checksum; the
            message says where to put the file by hand.
    """
    directory = Path(directory)
    dest = directory / remote.name
    if dest.exists() and checksum_problem(dest, remote) is None:
        return dest
    directory.mkdir(parents=True, exist_ok=True)
    problems = []
    for url in remote.urls:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{remote.name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as r:
                shutil.copyfileobj(r, out, 1 << 20)
            problem = checksum_problem(tmp, remote)
            if problem is None:
                os.replace(tmp, dest)
                return dest
            problems.append(f"{url}: checksum mismatch ({problem})")
        except (urllib.error.URLError, OSError, ValueError) as e:
            reason = getattr(e, "reason", None) or e
            problems.append(f"{url}: {reason}")
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    raise DataError(
        f"could not download {remote.name} ({'; '.join(problems)}); without a network, "
        f"download it by hand from {remote.urls[0]} and put it in {directory}"
    )
