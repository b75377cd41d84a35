"""Content-addressed dataset versions in the DVC store."""

from __future__ import annotations

import pandas as pd
import pytest

from automl_tasks.core.errors import DatasetNotFoundError
from automl_tasks.core.settings import Workspace
from automl_tasks.data import DatasetStore


def test_same_content_same_version_new_content_new_version(workspace):
    store = DatasetStore(workspace.datasets, workspace.dvc_remote)
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0], "target": [0, 1, 0]})
    first = store.put("toy", frame)
    again = store.put("toy", frame.copy())
    assert first.created and not again.created
    assert first.version == again.version
    before = first.path.read_bytes()

    changed = store.put("toy", frame.assign(a=[1.0, 2.0, 4.0]))
    assert changed.version != first.version and changed.created
    assert store.versions("toy") == sorted([first.version, changed.version])
    assert first.path.read_bytes() == before  # the old version never changes
    pd.testing.assert_frame_equal(store.read(first.uri), frame)
    assert (workspace.datasets / "toy" / first.version / "data.parquet.dvc").exists()
    assert any(workspace.dvc_remote.rglob("*")), "versions are pushed to the DVC remote"


def test_missing_version_is_pulled_back_from_the_remote(workspace):
    store = DatasetStore(workspace.datasets, workspace.dvc_remote)
    stored = store.put("toy", pd.DataFrame({"a": [1, 2], "target": [0, 1]}))
    stored.path.unlink()
    assert store.path("toy", stored.version).exists()


def test_unknown_version_and_bad_names(workspace):
    store = DatasetStore(workspace.datasets, workspace.dvc_remote)
    with pytest.raises(DatasetNotFoundError, match="no version"):
        store.path("toy", "0" * 32)
    with pytest.raises(ValueError, match="dataset name"):
        store.put("../escape", pd.DataFrame({"a": [1]}))


def test_another_machine_sharing_the_remote_reads_a_version_by_its_uri(workspace, tmp_path):
    """A second workspace (another host: its own folder, no DVC pointers) that shares only the
    remote resolves a dataset URI it never stored; a version the remote lacks is refused and
    leaves no pointer behind."""
    frame = pd.DataFrame({"a": [1.5, 2.5, 3.5], "target": [1, 0, 1]})
    stored = DatasetStore(workspace.datasets, workspace.dvc_remote).put("toy", frame)
    other = Workspace.at(tmp_path / "host2").ensure()
    store = DatasetStore(other.datasets, workspace.dvc_remote)
    pd.testing.assert_frame_equal(store.read(stored.uri), frame)
    assert store.versions("toy") == [stored.version]
    with pytest.raises(DatasetNotFoundError, match="its DVC remote .* could not provide it"):
        store.path("toy", "f" * 32)
    assert store.versions("toy") == [stored.version]
    with pytest.raises(DatasetNotFoundError, match="32-digit MD5"):
        store.path("toy", "../../etc")


def test_two_processes_of_a_new_host_pull_one_version_at_once(workspace, tmp_path, monkeypatch):
    """Two tasks of one host (a Celery worker runs two at once) reading a version into the
    host's new repository: both get it. Without the repository lock both ran `dvc init` (made
    slow here so that both do) and pulled at once, and one failed ("'.dvc' exists" in a CI run
    of the Celery cluster, a checkout error here)."""
    import multiprocessing
    import time

    from dvc.repo import Repo

    frame = pd.DataFrame({"a": [1.5, 2.5, 3.5], "target": [1, 0, 1]})
    stored = DatasetStore(workspace.datasets, workspace.dvc_remote).put("toy", frame)
    host = tmp_path / "host2" / "datasets"
    real_init = Repo.init

    def init(*args, **kwargs):
        time.sleep(1.0)
        return real_init(*args, **kwargs)

    monkeypatch.setattr(Repo, "init", staticmethod(init))
    context = multiprocessing.get_context("fork")  # the children keep the slow init
    with context.Pool(2) as pool:
        paths = pool.starmap(_read_on_host, [(str(host), str(workspace.dvc_remote), stored.uri)] * 2)
    assert len(set(paths)) == 1
    pd.testing.assert_frame_equal(pd.read_parquet(paths[0]), frame)


def _read_on_host(root: str, remote: str, uri: str) -> str:
    from pathlib import Path

    from automl_tasks.data.versioning import parse_dataset_uri

    name, version = parse_dataset_uri(uri)
    return str(DatasetStore(Path(root), remote).path(name, version))
