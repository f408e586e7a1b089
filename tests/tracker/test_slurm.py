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
def mixed(suite_sources, hub, tmp_path_factory):
    """Three series: a local Llama one and two served by olah (one with a duplicate)."""
    cache = tmp_path_factory.mktemp("hfcache")
    env = {"HF_ENDPOINT": hub.url, "HF_HUB_CACHE": str(cache), "HF_HUB_DISABLE_XET": "1"}
    return [suite_sources[1], "tiny/neox", "tiny/neox-lfs"], env


@pytest.fixture(scope="module")
def one_process(mixed, text_file, tmp_path_factory):
    sources, env = mixed
    out = tmp_path_factory.mktemp("one") / "o"
    done = run_cli("walk", *sources, *walk_args(text_file), "--out", out, env=env)
    assert done.returncode == 0, done.stderr
    return tables(out)[1]


def array_walk(cluster, mixed, text_file, out):
    """``massdyn walk`` arguments of the mixed suite as a 3-task array, and its environment."""
    sources, env = mixed
    args = [*sources, *walk_args(text_file), "--out", out, "--slurm", "--jobs", 3]
    return args, {**cluster.env(), **env}


def done(table) -> bool:
    return table["state"].str.startswith("done").all()


def test_a_three_task_array_merges_to_the_one_process_walk(
    cluster, mixed, text_file, tmp_path, one_process
):
    out = tmp_path / "o"
    args, env = array_walk(cluster, mixed, text_file, out)
    sub = run_cli("walk", *args, env=env)
    assert sub.returncode == 0, sub.stderr
    assert "3 task(s) for 13 unit(s)" in sub.stdout and "massdyn status" in sub.stdout
    cluster.wait(submitted_job(sub.stdout))
    assert done(merge(out))
    pd.testing.assert_frame_equal(tables(out)[1], one_process)
    again = run_cli("walk", *args, env=env)
    assert "nothing to submit" in again.stdout


def test_a_cancelled_task_is_resubmitted_alone_by_the_same_command(
    cluster, mixed, text_file, tmp_path, one_process
):
    out = tmp_path / "o"
    args, env = array_walk(cluster, mixed, text_file, out)
    sub = run_cli("walk", *args, "--max-parallel", 1, env=env)
    assert sub.returncode == 0, sub.stderr
    job = submitted_job(sub.stdout)
    # The last task still waits behind the first (one at a time): scancel it.
    subprocess.run(["scancel", f"{job}_2"], env=env, check=True)
    cluster.wait(job)
    before = status(out)
    assert (before["state"] == "pending").sum() >= 1
    n_pending = int((before["state"] == "pending").sum())
    again = run_cli("walk", *args, env=env)
    assert again.returncode == 0, again.stderr
    assert f"for {n_pending} unit(s)" in again.stdout
    cluster.wait(submitted_job(again.stdout))
    assert done(merge(out))
    pd.testing.assert_frame_equal(tables(out)[1], one_process)
