"""Fetch the official CIFAR and STL-10 archives once into a cache, verified by MD5.

The file is streamed to a temporary name and renamed only after its checksum matches, so an
interrupted or tampered download never looks like a usable archive. Offline machines get one
clear line naming the URL to fetch by hand.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.error import URLError
from urllib.request import urlopen

from ..progress import track
from .errors import DatasetError

CHUNK = 1 << 20


@dataclass(frozen=True)
class Archive:
    url: str
    md5: str

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


ARCHIVES = {
    "cifar10": Archive(
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        "c58f30108f718f92721af3b95e74349a",
    ),
    "cifar100": Archive(
        "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        "eb9058c3a382ffc7106e4002c42a8d85",
    ),
    "stl10": Archive(
        "http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz",
        "91f7769df0f17e558f3565bffb0c7dfb",
    ),
}


def default_cache_dir() -> Path:
    """``~/.cache/splitbrain``, or ``$SPLITBRAIN_CACHE`` when set."""
    return Path(os.environ.get("SPLITBRAIN_CACHE", "~/.cache/splitbrain")).expanduser()


def md5sum(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(dataset: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """The verified archive of ``dataset`` in ``cache_dir``, downloading it when absent."""
    archive = ARCHIVES[dataset]
    folder = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    target = folder / archive.filename
    verified = target.with_name(target.name + ".md5-ok")  # skips re-hashing 2.6 GB every run
    if target.is_file() and (verified.is_file() or md5sum(target) == archive.md5):
        verified.touch()
        return target
    folder.mkdir(parents=True, exist_ok=True)
    manual = (
        f"could not download {archive.url} ({{}}); download it manually and pass its path, "
        f"e.g. open_source('{dataset}:/path/to/{archive.filename}')"
    )
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{archive.filename}.", suffix=".part")
    try:
        digest = hashlib.md5(usedforsecurity=False)
        with os.fdopen(fd, "wb") as out, urlopen(archive.url, timeout=60) as response:
            length = response.headers.get("Content-Length")
            total = int(length) / 1e6 if length else None
            with track(total=total, desc=f"downloading {archive.filename}", unit="MB") as bar:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk) / 1e6)
        if digest.hexdigest() != archive.md5:
            raise DatasetError(
                f"{archive.url}: MD5 {digest.hexdigest()} != expected {archive.md5} "
                "(corrupted download; try again or download it manually)"
            )
        os.replace(tmp, target)
    except (URLError, OSError, http.client.HTTPException) as error:
        raise DatasetError(manual.format(getattr(error, "reason", error))) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    verified.touch()
    return target


def extract_stl10(archive: Path, cache_dir: str | os.PathLike | None = None) -> Path:
    """Unpack ``stl10_binary/`` from its tarball once (memory maps need plain files)."""
    folder = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    done = folder / "stl10_binary" / ".complete"
    if not done.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        try:
            with tarfile.open(archive, "r:*") as tar:
                members = [m for m in tar if m.isfile() and m.name.startswith("stl10_binary/")]
                tar.extractall(folder, members=members, filter="data")
        except (tarfile.TarError, OSError, EOFError) as error:
            raise DatasetError(f"{archive}: unreadable STL-10 archive ({error})") from None
        done.touch()
    return done.parent
