"""Suite walks on a real one-node Slurm cluster (munged, slurmctld and slurmd on this host)."""

import subprocess

import pandas as pd
import pytest

from massdyn.testing import slurm as local_slurm
from massdyn.tracker.suite import merge, status
from tests.conftest import run_cli
from tests.tracker.test_suite import tables

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    reason = local_slurm.missing()
    if reason:
        pytest.skip(f"no local Slurm cluster: {reason}")
    c = local_slurm.LocalSlurm(tmp_path_factory.mktemp("slurm")).start()
    yield c
    c.stop()


def walk_args(text_file):
    return ["--text", text_file, "--seqs", 2, "--seq-len", 16, "--bos", "--device", "cpu"]


def submitted_job(stdout: str) -> str:
    line = next(x for x in stdout.splitlines() if x.startswith("submitted job array"))
    return line.split()[3].rstrip(":")


@pytest.fixture(scope="module")
def one_process(suite_sources, text_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("one") / "o"
    done = run_cli("walk", *suite_sources, *walk_args(text_file), "--out", out)
    assert done.returncode == 0, done.stderr
    return tables(out)[1]


def test_a_three_task_array_merges_to_the_one_process_walk(
    cluster, suite_sources, text_file, tmp_path, one_process
):
    out = tmp_path / "o"
    args = [*suite_sources, *walk_args(text_file), "--out", out, "--slurm", "--jobs", 3]
    sub = run_cli("walk", *args, env=cluster.env())
    assert sub.returncode == 0, sub.stderr
    assert "3 task(s) for 7 unit(s)" in sub.stdout and "massdyn status" in sub.stdout
    cluster.wait(submitted_job(sub.stdout))
    assert (merge(out)["state"] == "done").all()
    pd.testing.assert_frame_equal(tables(out)[1], one_process)
    again = run_cli("walk", *args, env=cluster.env())
    assert "nothing to submit" in again.stdout


def test_a_cancelled_task_is_resubmitted_alone_by_the_same_command(
    cluster, suite_sources, text_file, tmp_path, one_process
):
    out = tmp_path / "o"
    args = [*suite_sources, *walk_args(text_file), "--out", out, "--slurm", "--jobs", 3]
    sub = run_cli("walk", *args, "--max-parallel", 1, env=cluster.env())
    assert sub.returncode == 0, sub.stderr
    job = submitted_job(sub.stdout)
    # The last task still waits behind the first (one at a time): scancel it.
    subprocess.run(["scancel", f"{job}_2"], env=cluster.env(), check=True)
    cluster.wait(job)
    before = status(out)
    assert (before["state"] == "pending").sum() >= 1
    n_pending = int((before["state"] == "pending").sum())
    again = run_cli("walk", *args, env=cluster.env())
    assert again.returncode == 0, again.stderr
    assert f"for {n_pending} unit(s)" in again.stdout
    cluster.wait(submitted_job(again.stdout))
    assert (merge(out)["state"] == "done").all()
    pd.testing.assert_frame_equal(tables(out)[1], one_process)
