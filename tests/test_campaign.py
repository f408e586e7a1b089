"""The mistakes users make, through the CLI: each exits 2 with one line and loses nothing.

Every case runs ``massdyn`` in a subprocess, as a user would, next to a results folder of
a good walk (and a good parameters table); afterwards those files must be byte-for-byte
what they were.
"""

import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
import torch

from tests.conftest import run_cli
from tests.fitting.synth import measurements_table

# Seconds to minutes each (training, servers, subprocesses): outside make test-fast.
pytestmark = pytest.mark.slow

GOOD = ["--seqs", 2, "--seq-len", 16, "--bos"]


def hub_env(hub, cache):
    return {"HF_ENDPOINT": hub.url, "HF_HUB_CACHE": str(cache), "HF_HUB_DISABLE_XET": "1"}


def snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory, series, text_file, hub):
    """A good walk, a good measurements and parameters table, and the bad inputs."""
    root = tmp_path_factory.mktemp("campaign")
    walked = root / "walked"
    out = run_cli("walk", series, "--text", text_file, *GOOD, "--out", walked, check=True)
    assert out.returncode == 0
    m = measurements_table(models=("m",), layers=2)
    m.to_csv(root / "m.csv", index=False)
    run_cli("fit", root / "m.csv", "--out", root / "params.csv", "--jobs", 1, check=True)
    bad = m.astype({"top1": object})
    bad.loc[3, "top1"] = "oops"
    bad.to_csv(root / "strings.csv", index=False)
    m.head(0).to_csv(root / "header.csv", index=False)
    (root / "nothing.csv").write_text("")
    (root / "binary.parquet").write_bytes(bytes(range(256)))
    (root / "bad-suite.json").write_text('{"sources": [')
    pd.read_csv(root / "params.csv").assign(model="other").to_csv(root / "other.csv", index=False)
    negative = m.copy()
    negative.loc[5, "top2"] = -1.0
    negative.to_csv(root / "negative.csv", index=False)
    pd.concat([m, m.head(3)]).to_csv(root / "repeated.csv", index=False)
    # A second walk with one sequence at steps the first never measured, same model name.
    other = m[m["seq"] == 0].assign(step=lambda d: d["step"] + 1_000_000)
    pd.concat([m, other]).to_csv(root / "mixed.csv", index=False)
    (root / "a-file").write_text("not a folder")
    (root / "empty").mkdir()
    np.save(root / "big-ids.npy", np.full((2, 16), 10_000, dtype=np.int64))
    np.save(root / "ids.npy", np.ones((2, 16), dtype=np.int64))
    sio.dump({"predictor": exec, "schema": {}, "info": {}}, root / "evil.skops")
    (root / "cfg.json").write_text((series / "step0" / "config.json").read_text())
    cfg = json.loads((series / "step0" / "config.json").read_text())
    (root / "heads.json").write_text(json.dumps({**cfg, "num_attention_heads": 5}))
    (root / "deep.json").write_text(json.dumps({**cfg, "num_hidden_layers": 1_000_000}))
    fake = root / "no-pyarrow" / "pyarrow"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('pyarrow is not installed')\n")
    return {"root": root, "walked": walked, "series": series, "text": text_file, "hub": hub}


CASES = {
    "tokenizer path missing": lambda w: [
        "walk",
        w["series"],
        "--text",
        w["text"],
        *GOOD,
        "--tokenizer",
        "/missing/path",
        "--out",
        w["walked"],
    ],
    "device gpu": lambda w: [
        "walk",
        w["series"],
        "--text",
        w["text"],
        *GOOD,
        "--device",
        "gpu",
        "--out",
        w["walked"],
    ],
    "out is a file": lambda w: [
        "walk",
        w["series"],
        "--text",
        w["text"],
        *GOOD,
        "--out",
        w["root"] / "a-file",
    ],
    "seq-len past the positions": lambda w: [
        "walk",
        w["series"],
        "--text",
        w["text"],
        "--seqs",
        2,
        "--seq-len",
        600,
        "--out",
        w["root"] / "long",
    ],
    "ids past the vocabulary": lambda w: [
        "walk",
        w["series"],
        "--token-ids",
        w["root"] / "big-ids.npy",
        "--out",
        w["root"] / "vocab",
    ],
    "mistyped local path": lambda w: ["walk", "./no/such/series", "--out", w["walked"]],
    "empty folder": lambda w: [
        "walk",
        w["root"] / "empty",
        "--text",
        w["text"],
        *GOOD,
        "--out",
        w["walked"],
    ],
    "single model folder": lambda w: [
        "walk",
        w["series"] / "step0",
        "--text",
        w["text"],
        *GOOD,
        "--out",
        w["walked"],
    ],
    "min-step above max-step": lambda w: [
        "walk",
        w["series"],
        "--text",
        w["text"],
        *GOOD,
        "--min-step",
        100,
        "--max-step",
        10,
        "--out",
        w["walked"],
    ],
    "no step selected": lambda w: [
        "walk",
        w["series"],
        "--text",
        w["text"],
        *GOOD,
        "--min-step",
        5000,
        "--out",
        w["walked"],
    ],
    "bos with token ids": lambda w: [
        "walk",
        w["series"],
        "--token-ids",
        w["root"] / "ids.npy",
        "--bos",
        "--out",
        w["walked"],
    ],
    "batch size 0": lambda w: [
        "walk",
        w["series"],
        "--text",
        w["text"],
        *GOOD,
        "--batch-size",
        0,
        "--out",
        w["walked"],
    ],
    "text file missing": lambda w: [
        "walk",
        w["series"],
        "--text",
        w["root"] / "nope.txt",
        *GOOD,
        "--out",
        w["walked"],
    ],
    "steps spec": lambda w: ["walk", w["series"], "--steps", "every:x", "--out", w["walked"]],
    "fit strings in a numeric column": lambda w: [
        "fit",
        w["root"] / "strings.csv",
        "--out",
        w["root"] / "params.csv",
    ],
    "fit empty file": lambda w: ["fit", w["root"] / "nothing.csv", "--out", w["root"] / "e.csv"],
    "fit damaged parquet": lambda w: [
        "fit",
        w["root"] / "binary.parquet",
        "--out",
        w["root"] / "e.csv",
    ],
    "fit header-only table": lambda w: [
        "fit",
        w["root"] / "header.csv",
        "--out",
        w["root"] / "params.csv",
    ],
    "fit starts 0": lambda w: [
        "fit",
        w["root"] / "m.csv",
        "--starts",
        0,
        "--out",
        w["root"] / "params.csv",
    ],
    "fit missing table": lambda w: [
        "fit",
        w["root"] / "nope.csv",
        "--out",
        w["root"] / "params.csv",
    ],
    "fit jobs -1": lambda w: [
        "fit",
        w["root"] / "m.csv",
        "--jobs",
        -1,
        "--out",
        w["root"] / "q.csv",
    ],
    "walk seed -1": lambda w: [
        "walk",
        w["series"],
        "--text",
        w["text"],
        *GOOD,
        "--seed",
        -1,
        "--out",
        w["root"] / "seed",
    ],
    "malformed suite file": lambda w: ["walk", w["root"] / "bad-suite.json", "--out", w["walked"]],
    "figures with another table's params": lambda w: [
        "figures",
        "--measurements",
        w["root"] / "m.csv",
        "--params",
        w["root"] / "other.csv",
        "--out",
        w["root"] / "figs",
    ],
    "fit negative magnitude": lambda w: [
        "fit",
        w["root"] / "negative.csv",
        "--out",
        w["root"] / "p2.csv",
    ],
    "fit repeated keys": lambda w: [
        "fit",
        w["root"] / "repeated.csv",
        "--out",
        w["root"] / "p2.csv",
    ],
    "fit two walks under one name": lambda w: [
        "fit",
        w["root"] / "mixed.csv",
        "--out",
        w["root"] / "p2.csv",
    ],
    "fit out is its input": lambda w: ["fit", w["root"] / "m.csv", "--out", w["root"] / "m.csv"],
    "fit compare path is its input": lambda w: [
        "fit",
        w["root"] / "m.csv",
        "--out",
        w["root"] / "p2.csv",
        "--compare",
        w["root"] / "m.csv",
    ],
    "forecast out is its input": lambda w: [
        "forecast",
        w["root"] / "m.csv",
        "--until",
        100000,
        "--out",
        w["root"] / "sub" / ".." / "m.csv",
    ],
    "predict out is its config": lambda w: [
        "predict",
        w["root"] / "cfg.json",
        "--out",
        w["root"] / "cfg.json",
    ],
    "predict heads that do not divide the width": lambda w: [
        "predict",
        w["root"] / "heads.json",
        "--out",
        w["root"] / "pred.csv",
    ],
    "predict a million layers": lambda w: [
        "predict",
        w["root"] / "deep.json",
        "--out",
        w["root"] / "pred.csv",
    ],
    "predict one config twice": lambda w: [
        "predict",
        w["root"] / "cfg.json",
        w["root"] / "cfg.json",
        "--out",
        w["root"] / "pred.csv",
    ],
    "predict outside the training ranges": lambda w: [
        "predict",
        w["root"] / "cfg.json",
        "--out",
        w["root"] / "pred.csv",
    ],
    "predictor trusting builtins.exec": lambda w: [
        "predict",
        w["root"] / "cfg.json",
        "--predictor",
        w["root"] / "evil.skops",
        "--out",
        w["root"] / "pred.csv",
    ],
}

HUB_CASES = {
    "mistyped hub repo": lambda w: [
        "walk",
        "tiny/neox-typo",
        "--text",
        w["text"],
        *GOOD,
        "--out",
        w["walked"],
    ],
    "mistyped pythia name": lambda w: [
        "walk",
        "EleutherAI/pythia-160n",
        "--text",
        w["text"],
        *GOOD,
        "--out",
        w["walked"],
    ],
    "dataset that does not exist": lambda w: [
        "walk",
        "tiny/neox",
        "--dataset",
        "nosuch/dataset",
        *GOOD,
        "--out",
        w["root"] / "ds",
    ],
}

EXPECTED = {
    "tokenizer path missing": "no such folder",
    "device gpu": "unknown device 'gpu'",
    "out is a file": "is a file, not a folder",
    "seq-len past the positions": "max_position_embeddings = 512",
    "ids past the vocabulary": "vocab_size = 300",
    "mistyped local path": "no such folder: ./no/such/series",
    "empty folder": "holds no checkpoint folders",
    "single model folder": "single model folder",
    "min-step above max-step": "--min-step 100 is above --max-step 10",
    "no step selected": "no checkpoint of",
    "bos with token ids": "--bos applies to text inputs",
    "batch size 0": "--batch-size must be at least 1",
    "text file missing": "no such file",
    "steps spec": "every:K needs an integer",
    "fit strings in a numeric column": "column 'top1' must be numeric",
    "fit header-only table": "no rows",
    "fit empty file": "nothing.csv is empty (not even a header)",
    "fit damaged parquet": "binary.parquet is not a readable parquet table",
    "fit starts 0": "n_starts must be at least 1",
    "fit missing table": "no such table",
    "predictor trusting builtins.exec": "builtins.exec",
    "predict heads that do not divide the width": "not a multiple of the 5 attention heads",
    "predict a million layers": "massdyn predicts at most 1024",
    "predict one config twice": "two CONFIGs name the model",
    "predict outside the training ranges": "outside what the predictor learned from",
    "fit negative magnitude": "negative magnitude",
    "fit jobs -1": "--jobs must be at least 1",
    "walk seed -1": "--seed must be a non-negative integer",
    "malformed suite file": "bad-suite.json is not a valid suite file",
    "figures with another table's params": "the parameters table fits none of the measured",
    "fit repeated keys": "repeat a (model, step, layer, seq) key",
    "fit two walks under one name": "model m mixes walks",
    "fit out is its input": "is one of this command's inputs",
    "fit compare path is its input": "is one of this command's inputs",
    "forecast out is its input": "is one of this command's inputs",
    "predict out is its config": "is one of this command's inputs",
    "mistyped hub repo": "repository not found: tiny/neox-typo",
    "mistyped pythia name": "repository not found: EleutherAI/pythia-160n",
    "dataset that does not exist": "cannot read dataset nosuch/dataset",
}


def check_refused(world, args, expected, env=None):
    before = snapshot(world["root"])
    out = run_cli(*args, env=env, timeout=120)
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert out.returncode == 2, (out.returncode, out.stdout, out.stderr)
    assert "Traceback" not in out.stderr + out.stdout
    assert len(lines) == 1 and lines[0].startswith(f"massdyn {args[0]}: error: "), lines
    assert expected in lines[0], lines[0]
    after = snapshot(world["root"])
    assert {k: v for k, v in after.items() if k in before} == before, "recorded results changed"
    return lines[0]


@pytest.mark.parametrize("case", sorted(CASES))
def test_refused_with_one_line_and_nothing_lost(world, case):
    check_refused(world, CASES[case](world), EXPECTED[case])


@pytest.mark.parametrize("case", sorted(HUB_CASES))
def test_hub_mistakes_refused_once(world, case, tmp_path):
    check_refused(
        world, HUB_CASES[case](world), EXPECTED[case], env=hub_env(world["hub"], tmp_path)
    )


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda(world):
    args = [
        "walk",
        world["series"],
        "--text",
        world["text"],
        *GOOD,
        "--device",
        "cuda",
        "--out",
        world["walked"],
    ]
    check_refused(world, args, "has no CUDA device")


def test_parquet_without_pyarrow_is_refused_before_walking(world):
    env = {"PYTHONPATH": os.pathsep.join([str(world["root"] / "no-pyarrow"), *sys.path])}
    out_dir = world["root"] / "parquet-walk"
    args = ["walk", world["series"], "--text", world["text"], *GOOD, "--parquet", "--out", out_dir]
    check_refused(world, args, "pip install 'massdyn[parquet]'", env=env)
    assert not out_dir.exists()


def test_train_predictor_given_the_wrong_table(world):
    configs = world["root"] / "configs"
    configs.mkdir(exist_ok=True)
    (configs / "m.json").write_text((world["series"] / "step0" / "config.json").read_text())
    out = ["--out", world["root"] / "p.skops"]
    args = ["train-predictor", world["root"] / "params.csv", "--configs", configs, *out]
    check_refused(world, args, "is a parameters table (from massdyn fit)")
    ckpts = world["walked"] / "checkpoints.csv"
    check_refused(world, ["train-predictor", ckpts, "--configs", configs, *out], "is neither")


def test_a_failed_start_leaves_no_identity_behind(world, tmp_path):
    """A typo, then the corrected command: the folder is not 'a different walk'."""
    out_dir = tmp_path / "o"
    typo = run_cli(
        "walk",
        world["series"],
        "--text",
        world["text"],
        "--seqs",
        2,
        "--seq-len",
        600,
        "--out",
        out_dir,
    )
    assert typo.returncode == 2
    assert not (out_dir / "walk.json").exists()
    fixed = run_cli("walk", world["series"], "--text", world["text"], *GOOD, "--out", out_dir)
    assert fixed.returncode == 0, fixed.stderr
    assert json.loads((out_dir / "walk.json").read_text())["inputs"]["seq_len"] == 16


def test_results_are_what_the_good_walk_wrote(world):
    m = pd.read_csv(world["walked"] / "measurements.csv")
    assert sorted(m["step"].unique()) == [0, 10, 100, 1000] and len(m) == 4 * 2 * 2


def test_non_finite_points_are_dropped_and_counted(world, tmp_path):
    """An inf median would make a ratio of 0 and a NaN top-1 would vanish from a mean."""
    m = pd.read_csv(world["root"] / "m.csv")
    m.loc[(m["step"] == m["step"].max()) & (m["layer"] == 1) & (m["seq"] == 0), "median"] = np.inf
    m.loc[(m["step"] == 1) & (m["layer"] == 1) & (m["seq"] == 1), "top1"] = np.nan
    m.to_csv(tmp_path / "nonfinite.csv", index=False)
    out = run_cli("fit", tmp_path / "nonfinite.csv", "--out", tmp_path / "p.csv", "--jobs", 1)
    assert out.returncode == 0, out.stderr
    assert "dropped 2 non-finite point(s)" in out.stdout and "from 1 series" in out.stdout
    params = pd.read_csv(tmp_path / "p.csv").set_index("layer")
    assert params.loc[1, "n_dropped"] == 2 and params.loc[0, "n_dropped"] == 0
    assert params.loc[1, "status"] == "flagged" and "non-finite" in params.loc[1, "reason"]


@pytest.mark.parametrize("twin", ["checkpoint-10", "step010"])
def test_two_folders_for_one_step_are_refused_naming_both(world, tmp_path, twin):
    import shutil

    series = tmp_path / "series"
    shutil.copytree(world["series"], series)
    shutil.copytree(series / "step100", series / twin)  # another step's weights, named 10
    args = ["walk", series, "--text", world["text"], *GOOD, "--out", tmp_path / "o"]
    line = check_refused(world, args, "two revisions for step 10")
    assert "step10" in line.split("step 10: ")[1] and twin in line.split("step 10: ")[1]
    assert not (tmp_path / "o").exists()


def test_folders_that_match_no_pattern_are_listed(world, tmp_path):
    import shutil

    series = tmp_path / "series"
    shutil.copytree(world["series"], series, ignore=shutil.ignore_patterns("step1000"))
    (series / "final").mkdir()
    (series / "notes").mkdir()
    out = run_cli("walk", series, "--text", world["text"], *GOOD, "--out", tmp_path / "o")
    assert out.returncode == 0, out.stderr
    assert "not walked: 2 name(s) in the series match no checkpoint pattern: final, notes" in (
        out.stdout
    )


LEFT_NOTHING = {
    "steps not in the series": (["--steps", "7,9"], "matches the step selection"),
    "text is a folder": (["--text", "{root}"], "is a folder; give one file"),
    "text is binary": (["--text", "{root}/binary.txt"], "is not UTF-8 text"),
}


@pytest.mark.parametrize("case", sorted(LEFT_NOTHING))
def test_a_refused_walk_says_why_and_leaves_no_folder(world, tmp_path, case):
    (world["root"] / "binary.txt").write_bytes(bytes(range(128, 256)) * 4)
    extra, says = LEFT_NOTHING[case]
    extra = [a.format(root=world["root"]) for a in extra]
    if "--text" not in extra:
        extra = ["--text", world["text"], *extra]
    out_dir = tmp_path / "new"
    check_refused(world, ["walk", world["series"], *extra, *GOOD, "--out", out_dir], says)
    assert not out_dir.exists()


def test_a_binary_config_file_is_named(world, tmp_path):
    (tmp_path / "c.yaml").write_bytes(bytes(range(128, 256)))
    args = ["walk", world["series"], "--config", tmp_path / "c.yaml", "--out", tmp_path / "o"]
    check_refused(world, args, "is not UTF-8 text")


def test_the_recorded_settings_rerun_from_another_folder(world, tmp_path):
    """config.yaml holds absolute paths: a walk started with relative ones resumes anywhere."""
    import shutil
    import subprocess

    shutil.copy(world["text"], tmp_path / "t.txt")
    cli = [sys.executable, "-m", "massdyn.cli", "walk"]
    args = [str(world["series"]), "--text", "t.txt", *map(str, GOOD), "--out", "o"]
    first = subprocess.run([*cli, *args], cwd=tmp_path, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    before = snapshot(tmp_path / "o")
    cmd = [*cli, "--config", str(tmp_path / "o" / "config.yaml")]
    out = subprocess.run(cmd, cwd=elsewhere, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "4 already measured, 0 measured now" in out.stdout
    assert snapshot(tmp_path / "o") == before and not any(elsewhere.iterdir())


def test_a_full_disk_is_one_line_naming_the_file(world, tmp_path):
    full = tmp_path / "full.csv"
    full.symlink_to("/dev/full")  # every write: ENOSPC
    line = check_refused(world, ["fit", world["root"] / "m.csv", "--out", full, "--jobs", 1], "")
    assert f"{full}: No space left on device (ENOSPC)" in line


def test_fit_and_forecast_on_the_tokens_axis(world, tmp_path):
    m = pd.read_csv(world["root"] / "m.csv").assign(tokens=lambda d: d["step"] * 2048)
    m.to_csv(tmp_path / "t.csv", index=False)
    steps = run_cli("fit", world["root"] / "m.csv", "--out", tmp_path / "s.csv", "--jobs", 1)
    tokens = run_cli(
        "fit", tmp_path / "t.csv", "--time", "tokens", "--out", tmp_path / "k.csv", "--jobs", 1
    )
    assert steps.returncode == tokens.returncode == 0, tokens.stderr
    a, b = pd.read_csv(tmp_path / "s.csv"), pd.read_csv(tmp_path / "k.csv")
    assert set(a["time"]) == {"step"} and set(b["time"]) == {"tokens"}
    # The same curves on an axis 2048x longer: the peak moves by that factor, R^2 does not.
    np.testing.assert_allclose(b["r2"], a["r2"], rtol=1e-3)
    ok = a["t_peak"].notna() & np.isfinite(a["t_peak"])
    np.testing.assert_allclose(b.loc[ok, "t_peak"], 2048 * a.loc[ok, "t_peak"], rtol=1e-2)
    args = ["forecast", tmp_path / "t.csv", "--time", "tokens", "--until", 2048 * 200_000]
    out = run_cli(*args, "--out", tmp_path / "f.csv", "--jobs", 1)
    assert out.returncode == 0, out.stderr
    assert pd.read_csv(tmp_path / "f.csv")["step"].max() == 2048 * 200_000
    line = check_refused(world, ["fit", world["root"] / "m.csv", "--time", "tokens"], "")
    assert "--time tokens needs a tokens column" in line
