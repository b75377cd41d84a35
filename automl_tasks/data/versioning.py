"""Content-addressed dataset versions kept in a DVC repository inside the workspace.

A version is the MD5 of the canonical Parquet bytes (the hash DVC itself records), so
the same content always gets the same version and a new content a new one. Each version
lives at `<name>/<version>/data.parquet`, tracked by its own `.dvc` file and pushed to
the workspace's local DVC remote; a stored version is never rewritten.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from automl_tasks.core.errors import DatasetNotFoundError, InvalidValueError
from automl_tasks.core.file_lock import file_lock

log = logging.getLogger(__name__)

_DATA_FILE = "data.parquet"


@dataclass(frozen=True)
class DatasetVersion:
    """A stored dataset version and where to read it."""

    name: str
    version: str
    path: Path
    created: bool  # False when the content was already stored

    @property
    def uri(self) -> str:
        return dataset_uri(self.name, self.version)


DATASET_URI_PREFIX = "dataset://"


def dataset_uri(name: str, version: str) -> str:
    return f"{DATASET_URI_PREFIX}{name}@{version}"


def parse_dataset_uri(uri: str) -> tuple[str, str]:
    """Split `dataset://name@version` into its parts."""
    if not uri.startswith(DATASET_URI_PREFIX) or "@" not in uri:
        raise DatasetNotFoundError(f"{uri!r} is not a dataset URI (dataset://NAME@VERSION)")
    name, version = uri[len(DATASET_URI_PREFIX) :].rsplit("@", 1)
    if not name or not version:
        raise DatasetNotFoundError(f"{uri!r} is not a dataset URI (dataset://NAME@VERSION)")
    return name, version


def canonical_bytes(frame: pd.DataFrame) -> bytes:
    """Deterministic Parquet bytes of a frame (no index, fixed compression)."""
    buffer = io.BytesIO()
    frame.reset_index(drop=True).to_parquet(buffer, index=False, compression="zstd")
    return buffer.getvalue()


def _open_repo(root: Path, remote: Path | str):  # -> dvc.repo.Repo
    from dvc.repo import Repo

    if not (root / ".dvc").exists():
        Repo.init(str(root), no_scm=True)
        repo = Repo(str(root))
        with repo.config.edit() as conf:
            # an HTTP remote (e.g. MLflow's artifact proxy, `mlflow server --serve-artifacts`)
            # takes uploads by PUT, as the proxy and WebDAV servers expect; DVC's default is POST
            http = str(remote).startswith(("http://", "https://"))
            conf["remote"]["workspace"] = {"url": str(remote), **({"method": "PUT"} if http else {})}
            conf["core"]["remote"] = "workspace"
            conf["core"]["autostage"] = False
        with repo.config.edit() as conf:
            conf["core"]["analytics"] = False
        return repo
    return Repo(str(root))


#: the file that makes one process at a time use a machine's DVC repository
REPO_LOCK_FILE = ".loopml-dvc.lock"


class DatasetStore:
    """Versioned dataset storage backed by DVC: one repository per machine, one remote (a
    folder, or any DVC remote URL) that every machine of the workspace reaches.

    Each `put` and `path` holds the machine's repository lock: two tasks of one host (a
    Celery worker runs two at once) both pulling a version into a new repository both ran
    `dvc init` and pulled at once, and one failed ("'.dvc' exists", or a checkout error)."""

    def __init__(self, root: Path, remote: Path | str) -> None:
        self.root = root
        self.remote = remote

    def _repo_lock(self):  # -> a context manager
        return file_lock(self.root / REPO_LOCK_FILE)

    def _files(self, name: str, version: str) -> tuple[Path, Path, Path]:
        """(folder, data file, DVC pointer) of a version in this machine's repository."""
        folder = self.root / name / version
        return folder, folder / _DATA_FILE, folder / f"{_DATA_FILE}.dvc"

    def put(self, name: str, frame: pd.DataFrame) -> DatasetVersion:
        """Store `frame` as a version of dataset `name` and push it to the remote."""
        _check_name(name)
        payload = canonical_bytes(frame)
        version = hashlib.md5(payload).hexdigest()
        _, target, pointer = self._files(name, version)
        if pointer.exists():
            log.info("dataset %s version %s already stored; reusing it", name, version)
            return DatasetVersion(name, version, target, created=False)
        os.environ.setdefault("DVC_NO_ANALYTICS", "1")
        with self._repo_lock():
            return self._put_locked(name, version, payload)

    def _put_locked(self, name: str, version: str, payload: bytes) -> DatasetVersion:
        folder, target, pointer = self._files(name, version)
        if pointer.exists():  # stored by another process meanwhile
            return DatasetVersion(name, version, target, created=False)
        repo = _open_repo(self.root, self.remote)
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{_DATA_FILE}.tmp"
        tmp.write_bytes(payload)
        tmp.replace(target)
        try:
            repo.add(str(target))
            repo.push(targets=[str(target)])
        except Exception:
            # leave no half-tracked version behind: the next put retries cleanly
            for leftover in (target, pointer, folder / ".gitignore"):
                leftover.unlink(missing_ok=True)
            raise
        finally:
            repo.close()
        log.info("stored dataset %s version %s at %s", name, version, target)
        return DatasetVersion(name, version, target, created=True)

    def path(self, name: str, version: str) -> Path:
        """Local path of a stored version, pulling it from the remote if needed.

        A version this repository has not seen (stored by another machine sharing the
        remote) is pulled by its content hash: the version *is* the file's MD5, which is
        where DVC keeps it in the remote."""
        _, target, pointer = self._files(name, version)
        if target.exists() and pointer.exists():
            return target
        _check_name(name)
        if not _is_md5(version):
            raise DatasetNotFoundError(f"dataset {name!r} has no version {version!r}: a version is a 32-digit MD5")
        with self._repo_lock():
            if target.exists() and pointer.exists():  # pulled by another process meanwhile
                return target
            return self._pull_locked(name, version)

    def _pull_locked(self, name: str, version: str) -> Path:
        folder, target, pointer = self._files(name, version)
        adopted = not pointer.exists()
        if adopted:
            folder.mkdir(parents=True, exist_ok=True)
            pointer.write_text(f"outs:\n- md5: {version}\n  hash: md5\n  path: {_DATA_FILE}\n")
        repo = _open_repo(self.root, self.remote)
        try:
            repo.pull(targets=[str(target)])
        except Exception as exc:
            if adopted:  # leave no pointer to a version the remote does not hold
                pointer.unlink(missing_ok=True)
            reason = (str(exc).strip().splitlines() or [""])[0][:200]
            raise DatasetNotFoundError(
                f"dataset {name!r} has no version {version!r} in {self.root}, and its DVC remote {self.remote}"
                f" could not provide it ({type(exc).__name__}: {reason})"
            ) from None
        finally:
            repo.close()
        return target

    def read(self, uri: str) -> pd.DataFrame:
        name, version = parse_dataset_uri(uri)
        return pd.read_parquet(self.path(name, version))

    def versions(self, name: str) -> list[str]:
        folder = self.root / name
        if not folder.exists():
            return []
        return sorted(p.name for p in folder.iterdir() if (p / f"{_DATA_FILE}.dvc").exists())


def _is_md5(text: str) -> bool:
    return len(text) == 32 and all(c in "0123456789abcdef" for c in text)


def _check_name(name: str) -> None:
    if not name or not all(c.isalnum() or c in "-_." for c in name) or name.startswith("."):
        raise InvalidValueError(f"dataset name must use letters, digits, '-', '_' or '.'; got {name!r}")
