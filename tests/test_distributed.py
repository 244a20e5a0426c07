"""`synthese run --scheduler`: the same job on a real dask.distributed LocalCluster (2 worker processes).

The driver alone writes outputs and the ledger; the outputs must equal those of a local run.
"""
import shutil

import pytest

from extractor.batch.runner import RunOptions, run
from extractor.config import Settings
from helpers_runs import ledger_facts, outputs, text_corpus

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def cluster():
    from distributed import LocalCluster

    with LocalCluster(processes=True, n_workers=2, threads_per_worker=1, dashboard_address=None) as c:
        yield c


def test_a_cluster_run_writes_what_a_local_run_writes(tmp_path, cluster):
    local = text_corpus(tmp_path / "local", 4, seed=7)
    remote = tmp_path / "remote"
    shutil.copytree(local, remote)
    a = run(RunOptions(root=local, workers=2, progress=False), Settings())
    b = run(RunOptions(root=remote, scheduler=cluster.scheduler_address, progress=False), Settings())
    assert a.exit_code == b.exit_code == 0
    assert (b.dossiers_processed, b.documents_total, b.workers, b.scheduler) == (
        a.dossiers_processed, a.documents_total, 2, cluster.scheduler_address)
    assert outputs(local) == outputs(remote) and len(outputs(local)) == 4
    assert ledger_facts(local) == ledger_facts(remote)
    again = run(RunOptions(root=remote, scheduler=cluster.scheduler_address, progress=False), Settings())
    assert again.dossiers_skipped == 4  # incremental on the cluster too


def test_a_hang_or_a_crash_inside_a_dask_worker_fails_the_document_not_the_worker(tmp_path, cluster):
    root = tmp_path / "root"
    (root / "D0").mkdir(parents=True)
    (root / "D1").mkdir()
    for name in ("D0/hang.pdf", "D0/ok.pdf", "D1/abort.pdf", "D1/ok.pdf"):
        (root / name).write_bytes(b"%PDF-1.4 " + name.encode())
    workers_before = set(cluster.scheduler_info["workers"])
    rep = run(RunOptions(root=root, scheduler=cluster.scheduler_address, process="test_workers:fake_process",
                         progress=False), Settings(doc_timeout_base=1.0))
    assert rep.failures_by_reason == {"timeout": 1, "crashed": 1}
    assert (rep.documents_ok, rep.exit_code) == (2, 1)
    assert set(cluster.scheduler_info["workers"]) == workers_before  # no dask worker was lost
