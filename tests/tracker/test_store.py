import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from massdyn.tracker.store import ResultStore, StoreError, atomic_csv


def rows(step):
    return pd.DataFrame(
        {
            "model": "m",
            "step": step,
            "layer": [0, 1],
            "seq": 0,
            "top1": [1.5, 2.5],
            "top2": 1.0,
            "top3": 0.5,
            "median": 0.1,
        }
    )


def test_record_and_assemble(tmp_path):
    store = ResultStore(tmp_path, {"model": "m"}).open()
    store.record(rows(10), {"model": "m", "step": 10, "status": "ok", "weights_sha256": "a"})
    store.record(None, {"model": "m", "step": 20, "status": "failed", "reason": "boom"})
    store.record(rows(30), {"model": "m", "step": 30, "status": "ok", "weights_sha256": "a"})
    table = store.assemble()
    assert sorted(table["step"].unique()) == [10, 30]
    ck = pd.read_csv(tmp_path / "checkpoints.csv")
    assert ck.set_index("step").loc[30, "duplicate_of"] == 10
    assert ck.set_index("step").loc[20, "reason"] == "boom"
    again = ResultStore(tmp_path, {"model": "m"}).open()
    assert again.done_steps() == {10, 30}


def test_other_walk_is_refused(tmp_path):
    store = ResultStore(tmp_path, {"model": "m", "inputs": 1}).open()
    store.record(rows(10), {"model": "m", "step": 10, "status": "ok"})
    store.close()
    with pytest.raises(StoreError, match="differs in: inputs"):
        ResultStore(tmp_path, {"model": "m", "inputs": 2}).open()


def test_a_folder_whose_walk_measured_nothing_counts_as_empty(tmp_path):
    first = ResultStore(tmp_path, {"model": "m", "inputs": 1}).open()
    first.record(None, {"model": "m", "step": 10, "status": "failed", "reason": "typo"})
    (tmp_path / "inputs.json").write_text("{}")  # inputs of the failed start
    first.close()
    again = ResultStore(tmp_path, {"model": "m", "inputs": 2}).open()
    assert again.checkpoint(10) is None
    assert not (tmp_path / "inputs.json").exists() and not (tmp_path / "walk.json").exists()
    again.commit()
    assert json.loads((tmp_path / "walk.json").read_text()) == {"model": "m", "inputs": 2}


def test_measurements_are_current_after_every_checkpoint(tmp_path):
    store = ResultStore(tmp_path, {"model": "m"}).open()
    store.record(rows(10), {"model": "m", "step": 10, "status": "ok"})
    assert sorted(pd.read_csv(tmp_path / "measurements.csv")["step"].unique()) == [10]
    store.record(rows(30), {"model": "m", "step": 30, "status": "ok"})
    assert sorted(pd.read_csv(tmp_path / "measurements.csv")["step"].unique()) == [10, 30]


def test_files_follow_the_umask_not_mkstemps_0600(tmp_path):
    store = ResultStore(tmp_path, {"model": "m"}).open()
    store.record(rows(10), {"model": "m", "step": 10, "status": "ok"})
    mask = os.umask(0)
    os.umask(mask)
    for name in ("measurements.csv", "checkpoints.csv", "walk.json", "parts/step000000010.csv"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~mask, name


LOCK_HOLDER = """
import sys, time
from massdyn.tracker.store import ResultStore
ResultStore(sys.argv[1], {"model": "m"}).open()
print("locked", flush=True)
time.sleep(60)
"""


def test_a_second_process_is_refused_while_one_writes_the_folder(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(StoreError, match=f"pid {holder.pid} on .* wait for that walk"):
            ResultStore(tmp_path, {"model": "m"}).open()
    finally:
        holder.kill()
        holder.wait()
    ResultStore(tmp_path, {"model": "m"}).open().close()  # free again once the holder is gone


def test_crash_during_write_leaves_old_file_whole(tmp_path, monkeypatch):
    path = tmp_path / "t.csv"
    atomic_csv(rows(1), path)
    before = path.read_bytes()

    def crash(*a, **k):
        raise KeyboardInterrupt  # as if killed between write and rename

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        atomic_csv(rows(2), path)
    assert path.read_bytes() == before
    assert not list(tmp_path.glob(".*.tmp"))


def test_temporaries_of_a_killed_walk_are_dropped(tmp_path):
    store = ResultStore(tmp_path, {"model": "m"}).open()
    (store.parts / ".step000000010.csv.abc.tmp").write_text("half")
    ResultStore(tmp_path, {"model": "m"}).open()
    assert not list(store.parts.glob(".*.tmp"))


def test_ctrl_c_while_a_checkpoint_is_recorded_lands_after_the_tables(tmp_path, monkeypatch):
    # Ctrl-C right after the part is written, before measurements.csv shows it: the
    # interrupt must wait for the tables, so no part is on disk that the table lacks.
    import signal

    from massdyn.tracker import store as store_module

    real = store_module.atomic_csv

    def write_then_interrupt(df, path):
        real(df, path)
        if path.parent.name == "parts":
            os.kill(os.getpid(), signal.SIGINT)

    store = ResultStore(tmp_path, {"model": "m"}).open()
    store.record(rows(10), {"model": "m", "step": 10, "status": "ok"})
    monkeypatch.setattr(store_module, "atomic_csv", write_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        store.record(rows(20), {"model": "m", "step": 20, "status": "ok"})
    parts = sorted(p.name for p in (tmp_path / "parts").glob("step*.csv"))
    measured = sorted(pd.read_csv(tmp_path / "measurements.csv")["step"].unique())
    assert len(parts) == 2 and measured == [10, 20]
    assert list(pd.read_csv(tmp_path / "checkpoints.csv")["step"]) == [10, 20]


def test_the_walker_writes_the_columns_the_fitting_library_reads():
    """The schema is declared by its writer and its reader (neither imports the other)."""
    from massdyn.fitting.series import MEASUREMENT_COLUMNS as READ
    from massdyn.tracker.store import MEASUREMENT_COLUMNS as WRITTEN

    assert tuple(WRITTEN) == tuple(READ)
