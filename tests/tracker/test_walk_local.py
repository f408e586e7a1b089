import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from massdyn.testing.synthetic import planted_model, tiny_config, write_series
from massdyn.tracker.inputs import InputSpec
from massdyn.tracker.schedule import StepSelection
from massdyn.tracker.sources import LocalSource, step_of
from massdyn.tracker.walker import WalkConfig, walk
from tests.conftest import MEASURED, run_cli


def config(out, text_file, **kw):
    inputs = InputSpec(n_seqs=3, seq_len=24, text=str(text_file), prepend_bos=True)
    return WalkConfig(out=str(out), inputs=inputs, progress=False, **kw)


def test_local_walk_records_every_layer_seq_and_checkpoint(series, text_file, tmp_path):
    summary = walk(LocalSource(series), config(tmp_path, text_file))
    assert summary.ok == [0, 10, 100, 1000] and not summary.failed
    m = pd.read_csv(tmp_path / "measurements.csv")
    assert {"model", *MEASURED} <= set(m.columns)
    assert len(m) == 4 * 2 * 3
    assert (m["model"] == "tiny-neox").all()
    ck = pd.read_csv(tmp_path / "checkpoints.csv")
    assert list(ck["status"]) == ["ok"] * 4
    assert {"seconds", "dtype", "device", "weights_sha256"} <= set(ck.columns)
    assert (ck["dtype"] == "float32").all() and (ck["device"] == "cpu").all()
    # The planted activation grows over the steps in the last layer.
    last = m[m["layer"] == 1].groupby("step")["top1"].mean()
    assert last.is_monotonic_increasing and last.iloc[-1] > 10 * last.iloc[0]
    assert (tmp_path / "inputs.npy").exists()


def test_checkpoint_folder_names(tmp_path, tokenizer, text_file):
    root = write_series(
        tmp_path / "trainer", (500, 1000), tokenizer=tokenizer, naming="checkpoint-{}"
    )
    (root / "global_step1500").mkdir()
    shutil.copytree(root / "checkpoint-1000", root / "global_step1500", dirs_exist_ok=True)
    (root / "runs").mkdir()  # trainer logs: not a checkpoint
    assert LocalSource(root).list_steps() == {
        500: "checkpoint-500",
        1000: "checkpoint-1000",
        1500: "global_step1500",
    }
    summary = walk(LocalSource(root), config(tmp_path / "out", text_file))
    assert summary.ok == [500, 1000, 1500]
    ck = pd.read_csv(tmp_path / "out" / "checkpoints.csv").set_index("step")
    assert ck.loc[1500, "duplicate_of"] == 1000  # byte-identical weights are flagged


def test_step_names():
    assert [step_of(n) for n in ["step64", "step_7", "checkpoint-500", "global_step9", "runs"]] == [
        64,
        7,
        500,
        9,
        None,
    ]


def test_sharded_bin_checkpoints_load_safely(tmp_path, tokenizer, text_file):
    root = write_series(tmp_path / "bins", (0, 10), tokenizer=tokenizer, bin_shards=2)
    assert (root / "step0" / "pytorch_model-00002-of-00002.bin").exists()
    safe = walk(LocalSource(root), config(tmp_path / "a", text_file))
    assert safe.ok == [0, 10]


def test_bad_checkpoints_are_recorded_and_the_walk_goes_on(tmp_path, tokenizer, text_file):
    root = write_series(tmp_path / "bad", (0, 10, 20, 30), tokenizer=tokenizer)
    weights = root / "step10" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # truncated
    shutil.rmtree(root / "step20")
    (root / "step20").mkdir()
    (root / "step20" / "notes.txt").write_text("not a model")
    nan_model = planted_model(tiny_config(), 30)
    with torch.no_grad():
        nan_model.base_model.layers[0].mlp.dense_4h_to_h.bias[1] = float("nan")
    nan_model.save_pretrained(root / "step30")
    cfg = config(tmp_path / "out", text_file, steps=StepSelection.parse("0,10,20,30,40"))
    summary = walk(LocalSource(root), cfg)
    assert summary.ok == [0]
    assert set(summary.failed) == {10, 20, 30, 40}
    ck = pd.read_csv(tmp_path / "out" / "checkpoints.csv").set_index("step")
    assert "not a model folder" in ck.loc[20, "reason"]
    assert "non-finite activations" in ck.loc[30, "reason"]
    assert "not in the series" in ck.loc[40, "reason"]
    assert ck.loc[10, "reason"]  # the loader's own message about the truncated file
    assert set(pd.read_csv(tmp_path / "out" / "measurements.csv")["step"]) == {0}


def test_non_neox_family_through_the_walker(tmp_path, tokenizer, text_file):
    root = write_series(
        tmp_path / "llama", (0, 100), config=tiny_config(family="llama"), tokenizer=tokenizer
    )
    summary = walk(LocalSource(root), config(tmp_path / "out", text_file))
    assert summary.ok == [0, 100]
    m = pd.read_csv(tmp_path / "out" / "measurements.csv")
    assert sorted(m["layer"].unique()) == [0, 1]


def test_prefetch_does_not_change_results(series, text_file, tmp_path):
    walk(LocalSource(series), config(tmp_path / "a", text_file, prefetch=True, parquet=True))
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "a/measurements.parquet"),
        pd.read_csv(tmp_path / "a/measurements.csv"),
    )
    walk(LocalSource(series), config(tmp_path / "b", text_file, prefetch=False))
    pd.testing.assert_frame_equal(
        pd.read_csv(tmp_path / "a/measurements.csv"), pd.read_csv(tmp_path / "b/measurements.csv")
    )


def test_resume_skips_done_and_retries_failed(series, text_file, tmp_path):
    walk(LocalSource(series), config(tmp_path, text_file, steps=StepSelection.parse("0,10")))
    summary = walk(
        LocalSource(series), config(tmp_path, text_file, steps=StepSelection.parse("all"))
    )
    assert summary.already_done == [0, 10] and summary.ok == [100, 1000]
    full = pd.read_csv(tmp_path / "measurements.csv")
    assert sorted(full["step"].unique()) == [0, 10, 100, 1000]
    assert not full.duplicated(["step", "layer", "seq"]).any()


def test_a_checkpoint_failing_max_attempts_walks_in_a_row_is_left_failed(
    tmp_path, tokenizer, text_file
):
    root = write_series(tmp_path / "s", (0, 10), tokenizer=tokenizer)
    weights = next((root / "step10").glob("*.safetensors"))
    saved = weights.read_bytes()
    weights.unlink()
    out = tmp_path / "o"
    for attempt in (1, 2):
        summary = walk(LocalSource(root), config(out, text_file, max_attempts=2))
        assert 10 in summary.failed
        ck = pd.read_csv(out / "checkpoints.csv").set_index("step")
        assert ck.loc[10, "attempts"] == attempt and "no model weights" in ck.loc[10, "reason"]
    weights.write_bytes(saved)  # repaired, but given up on: not tried a third time
    summary = walk(LocalSource(root), config(out, text_file, max_attempts=2))
    assert summary.ok == [] and 10 not in summary.failed and 10 in summary.given_up
    assert "step 10 failed in --max-attempts walks in a row" in summary.describe()
    assert pd.read_csv(out / "checkpoints.csv").set_index("step").loc[10, "status"] == "failed"
    # Asking for more attempts tries it again, and it now succeeds.
    summary = walk(LocalSource(root), config(out, text_file, max_attempts=3))
    assert summary.ok == [10]


@pytest.mark.slow
def test_kill_9_at_random_points_then_resume_gives_the_uninterrupted_table(
    tmp_path, tokenizer, text_file
):
    root = write_series(tmp_path / "long", tuple(range(0, 160, 10)), tokenizer=tokenizer)
    args = [root, "--text", text_file, "--seqs", 3, "--seq-len", 24, "--bos", "--device", "cpu"]
    run_cli("walk", *args, "--out", tmp_path / "reference", check=True)
    reference = (tmp_path / "reference" / "measurements.csv").read_bytes()
    rng = random.Random(1234)
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "massdyn.cli", "walk", *map(str, args), "--out", str(out)]
    kills = 0
    # Killed once a random number of parts is written, a random fraction of a checkpoint
    # later: at any point of the measure-write-rename cycle, however fast the machine.
    for target in sorted(rng.sample(range(1, 14), 3)):
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_parts(out, target, proc)
        time.sleep(rng.uniform(0.0, 0.3))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
    assert kills >= 2
    run_cli("walk", *args, "--out", out, check=True)
    assert (out / "measurements.csv").read_bytes() == reference
    ck = pd.read_csv(out / "checkpoints.csv")
    assert list(ck["step"]) == list(range(0, 160, 10)) and (ck["status"] == "ok").all()


@pytest.fixture(scope="module")
def long_series(tmp_path_factory, tokenizer):
    return write_series(
        tmp_path_factory.mktemp("long") / "long", tuple(range(0, 300, 10)), tokenizer=tokenizer
    )


def long_walk(root, text_file, out):
    args = [root, "--text", text_file, "--seqs", 3, "--seq-len", 24, "--bos", "--device", "cpu"]
    return [sys.executable, "-m", "massdyn.cli", "walk", *map(str, args), "--out", str(out)]


def wait_for_parts(out, n, proc, limit=120):
    t0 = time.monotonic()
    while len(list((out / "parts").glob("step*.csv"))) < n:
        assert proc.poll() is None, "the walk ended before it could be interrupted"
        assert time.monotonic() - t0 < limit
        time.sleep(0.05)


@pytest.mark.slow
def test_ctrl_c_ends_cleanly_with_one_line_and_the_tables_current(long_series, text_file, tmp_path):
    out = tmp_path / "o"
    proc = subprocess.Popen(
        long_walk(long_series, text_file, out),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for_parts(out, 2, proc)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr + stdout
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("massdyn walk: interrupted: ") and "rerun the same command" in last
    measured = pd.read_csv(out / "measurements.csv")
    done = sorted(step_of(p.stem) for p in (out / "parts").glob("step*.csv"))
    assert sorted(measured["step"].unique()) == done and len(done) >= 2
    assert f", {len(done)} in " in last
    again = subprocess.run(long_walk(long_series, text_file, out), capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert sorted(pd.read_csv(out / "measurements.csv")["step"].unique()) == list(range(0, 300, 10))


@pytest.mark.slow
def test_a_second_walk_into_a_busy_folder_is_refused_and_no_row_is_lost(
    long_series, text_file, tmp_path
):
    out = tmp_path / "o"
    first = subprocess.Popen(
        long_walk(long_series, text_file, out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for_parts(out, 1, first)
        second = run_cli(
            "walk",
            long_series,
            "--text",
            text_file,
            "--seqs",
            3,
            "--seq-len",
            24,
            "--bos",
            "--steps",
            "20,30",
            "--out",
            out,
        )
        assert second.returncode == 2
        assert f"is being written by pid {first.pid}" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        assert first.wait(timeout=300) == 0
    m = pd.read_csv(out / "measurements.csv")
    assert sorted(m["step"].unique()) == list(range(0, 300, 10))


@pytest.mark.slow
def test_cli_walk_exit_status_and_summary(tmp_path, tokenizer, text_file):
    root = write_series(tmp_path / "s", (0, 10), tokenizer=tokenizer)
    ok = run_cli(
        "walk", root, "--text", text_file, "--seqs", 2, "--seq-len", 16, "--out", tmp_path / "o1"
    )
    assert ok.returncode == 0, ok.stderr
    assert "2 measured now, 0 failed" in ok.stdout
    bad = run_cli(
        "walk",
        root,
        "--text",
        text_file,
        "--seqs",
        2,
        "--seq-len",
        16,
        "--steps",
        "0,5",
        "--out",
        tmp_path / "o2",
    )
    assert bad.returncode == 1 and "failed step 5" in bad.stdout
    nothing = run_cli("walk", tmp_path / "no-such-dir", "--out", tmp_path / "o3")
    assert nothing.returncode == 2 and "no such folder" in nothing.stderr
    odd = run_cli("walk", "not a repo", "--out", tmp_path / "o4")
    assert odd.returncode == 2 and "neither a checkpoint folder, a Hub repo id" in odd.stderr
    assert "nor a shipped suite (amber, " in odd.stderr


def test_token_ids_input_through_the_walker(series, tmp_path):
    ids = np.random.default_rng(0).integers(0, 300, size=(2, 12))
    np.save(tmp_path / "ids.npy", ids)
    cfg = WalkConfig(
        out=str(tmp_path / "o"),
        inputs=InputSpec(token_ids=str(tmp_path / "ids.npy")),
        progress=False,
    )
    walk(LocalSource(series), cfg)
    np.testing.assert_array_equal(np.load(tmp_path / "o" / "inputs.npy"), ids)
    assert pd.read_csv(tmp_path / "o" / "measurements.csv")["seq"].max() == 1


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_on_cpu(series, text_file, tmp_path, dtype):
    summary = walk(
        LocalSource(series),
        config(tmp_path, text_file, dtype=dtype, steps=StepSelection.parse("1000")),
    )
    assert summary.ok == [1000]
    assert pd.read_csv(tmp_path / "checkpoints.csv")["dtype"].item() == dtype


def test_walk_writes_its_resolved_settings_reusable_as_config(series, text_file, tmp_path, capsys):
    import yaml

    from massdyn.cli import main

    walk(LocalSource(series, name="my-series"), config(tmp_path / "o", text_file))
    written = yaml.safe_load((tmp_path / "o" / "config.yaml").read_text())
    assert written["source"] == [str(series.resolve())] and written["name"] == "my-series"
    assert written["inputs"]["n_seqs"] == 3 and written["inputs"]["prepend_bos"] is True
    assert written["out"] == str(tmp_path / "o")
    # The file is a --config of massdyn walk that resolves to the same settings.
    assert main(["walk", "--config", str(tmp_path / "o" / "config.yaml"), "--print-config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    # Besides the walk's settings the command has its suite options, at their defaults.
    assert {k: v for k, v in printed.items() if k in written} == written
    assert printed["shard"] is None and printed["jobs"] == 1 and printed["slurm"] is False


def test_measured_duplicates_are_flagged_in_the_measurements(tmp_path, tokenizer, text_file):
    root = write_series(tmp_path / "series", (500, 1000), tokenizer=tokenizer)
    shutil.copytree(root / "step1000", root / "step1500")
    walk(LocalSource(root), config(tmp_path / "out", text_file))
    m = pd.read_csv(tmp_path / "out" / "measurements.csv")
    flags = m.groupby("step")["duplicate_of"].first()
    assert flags.loc[1500] == 1000
    assert flags.loc[[500, 1000]].isna().all()
    # The copy's rows are measured all the same: the same numbers as its original.
    cols = ["layer", "seq", "top1", "median"]
    a = m[m["step"] == 1000][cols].reset_index(drop=True)
    b = m[m["step"] == 1500][cols].reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)


def test_a_series_named_like_olmo2_gets_cumulative_steps_tokens_and_stages(
    tmp_path, tokenizer, text_file
):
    root = tmp_path / "olmo2"
    tokenizer.save_pretrained(root)
    names = {
        "stage1-step0-tokens0B": 0,
        "step10-tokens1B": 10,  # OLMo 2's unprefixed early names: stage 1
        "stage1-step100-tokens2B": 100,
        "stage2-step50-tokens1B": 50,  # stage 2 restarts: step 150, 3B tokens
        "stage2-ingredient1-step50-tokens1B": 50,  # a parallel mix: set aside
    }
    for name, step in names.items():
        planted_model(tiny_config(), step).save_pretrained(root / name)
    (root / "logs").mkdir()
    out = run_cli(
        "walk", root, "--text", text_file, "--seqs", 2, "--seq-len", 16, "--out", tmp_path / "o"
    )
    assert out.returncode == 0, out.stderr
    assert "not walked: 2 name(s)" in out.stdout and "logs" in out.stdout
    ck = pd.read_csv(tmp_path / "o" / "checkpoints.csv", keep_default_na=False).set_index("step")
    assert list(ck.index) == [0, 10, 100, 150]
    assert ck.loc[150, "revision"] == "stage2-step50-tokens1B" and ck.loc[150, "stage"] == "2"
    assert list(ck["tokens"]) == [0, 10**9, 2 * 10**9, 3 * 10**9]
    m = pd.read_csv(tmp_path / "o" / "measurements.csv")
    assert dict(zip(m["step"], m["tokens"], strict=True))[150] == 3 * 10**9


def test_tokens_per_step_fills_the_tokens_of_plain_step_names(series, text_file, tmp_path):
    out = run_cli(
        "walk", series, "--text", text_file, "--seqs", 2, "--seq-len", 16,
        "--tokens-per-step", 2048, "--out", tmp_path / "o",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    m = pd.read_csv(tmp_path / "o" / "measurements.csv")
    assert (m["tokens"] == m["step"] * 2048).all()
    ck = pd.read_csv(tmp_path / "o" / "checkpoints.csv")
    assert (ck["tokens"] == ck["step"] * 2048).all() and ck["stage"].isna().all()
    bad = run_cli("walk", series, "--tokens-per-step", 0, "--out", tmp_path / "p")
    assert bad.returncode == 2 and "--tokens-per-step must be a positive" in bad.stderr
    pat = run_cli("walk", series, "--revision-pattern", "^x(\\d+)$", "--out", tmp_path / "q")
    assert pat.returncode == 2 and "no (?P<step>...) group" in pat.stderr
    assert not (tmp_path / "p").exists() and not (tmp_path / "q").exists()


@pytest.mark.slow
def test_ctrl_c_during_jobs_prints_one_line(long_series, text_file, tmp_path):
    """The shards of --jobs get the terminal's Ctrl-C too; only the parent speaks."""
    twin = tmp_path / "twin"
    shutil.copytree(long_series, twin)
    out = tmp_path / "o"
    args = [long_series, twin, "--text", text_file, "--seqs", 3, "--seq-len", 24, "--bos"]
    cmd = [sys.executable, "-m", "massdyn.cli", "walk", *map(str, args), "--jobs", "2"]
    cmd += ["--device", "cpu", "--out", str(out)]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    t0 = time.monotonic()
    while len(list(out.glob("*/shards/*/parts/step*.csv"))) < 2:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() - t0 < 180
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal does: the whole process group
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    lines = [line for line in stderr.splitlines() if "interrupted" in line]
    assert len(lines) == 1 and "every shard stopped" in lines[0], stderr
    assert "Traceback" not in stderr


def test_a_disk_that_fills_mid_walk_exits_1_with_one_line_and_keeps_what_was_recorded(
    series, text_file, tmp_path, monkeypatch, capsys
):
    import errno

    import massdyn.tracker.store as store
    from massdyn.cli import main

    real, parts = store.atomic_csv, []

    def filling(df, path):
        if path.parent.name == "parts":
            parts.append(path)
            if len(parts) > 2:  # the third checkpoint's rows no longer fit
                raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(df, path)

    monkeypatch.setattr(store, "atomic_csv", filling)
    out = tmp_path / "o"
    args = ["walk", str(series), "--text", str(text_file), "--seqs", "2", "--seq-len", "16"]
    assert main([*args, "--out", str(out)]) == 1
    text = capsys.readouterr().err.replace("\r", "\n")  # the progress bar redraws with \r
    err = [x for x in text.splitlines() if x.startswith("massdyn walk:")]
    assert len(err) == 1 and "No space left on device (ENOSPC)" in err[0], err
    assert "run the same command to resume" in err[0]
    assert sorted(pd.read_csv(out / "measurements.csv")["step"].unique()) == [0, 10]
    monkeypatch.setattr(store, "atomic_csv", real)
    assert main([*args, "--out", str(out)]) == 0  # resumes: the two others are measured now
    assert sorted(pd.read_csv(out / "measurements.csv")["step"].unique()) == [0, 10, 100, 1000]


def test_a_ctrl_c_that_python_drops_in_a_callback_still_stops_the_walk(
    series, text_file, tmp_path, monkeypatch, capsys
):
    """A KeyboardInterrupt raised inside a weakref callback is printed and dropped by Python."""
    import weakref

    import massdyn.tracker.walker as walker
    from massdyn.cli import main

    real, calls = walker._measure_checkpoint, []

    class Dying:
        pass

    def in_a_callback(_):
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(100_000):  # the handler runs here, inside the callback
            pass

    def measure(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            obj = Dying()
            ref = weakref.ref(obj, in_a_callback)
            del obj
            assert ref() is None
        return real(*args, **kwargs)

    monkeypatch.setattr(walker, "_measure_checkpoint", measure)
    out = tmp_path / "o"
    args = ["walk", str(series), "--text", str(text_file), "--seqs", "2", "--seq-len", "16"]
    assert main([*args, "--out", str(out)]) == 130
    err = capsys.readouterr().err.replace("\r", "\n")
    assert "Traceback" not in err and "Exception ignored" not in err, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("massdyn walk: interrupted: 2 checkpoint(s) measured"), last
    # The checkpoint in hand when the Ctrl-C came is kept; the walk went no further.
    assert sorted(pd.read_csv(out / "measurements.csv")["step"].unique()) == [0, 10]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.slow
def test_a_ctrl_c_to_one_shard_of_jobs_is_an_interrupted_walk(long_series, text_file, tmp_path):
    """The parent does not merge as if done when a shard was interrupted alone."""
    out = tmp_path / "o"
    twin = tmp_path / "twin"
    shutil.copytree(long_series, twin)
    args = [long_series, twin, "--text", text_file, "--seqs", 3, "--seq-len", 24, "--bos"]
    cmd = [sys.executable, "-m", "massdyn.cli", "walk", *map(str, args), "--jobs", "2"]
    cmd += ["--device", "cpu", "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t0 = time.monotonic()
    while len(list(out.glob("*/shards/*/parts/step*.csv"))) < 2:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() - t0 < 180
        time.sleep(0.05)
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    assert len(children) == 2
    os.kill(int(children[0]), signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 130, stderr
    lines = [line for line in stderr.splitlines() if "interrupted" in line]
    assert len(lines) == 1 and "rerun the same command to resume" in lines[0], stderr
    assert "merged:" not in stdout and "Traceback" not in stderr
