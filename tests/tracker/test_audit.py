"""The pre-flight audit, against a real Hub-compatible server (olah) and local folders."""

import json
import os

import numpy as np
import pandas as pd
import pytest

from massdyn.testing.localhub import LocalHub
from massdyn.tracker.audit import audit, audit_summary
from massdyn.tracker.sources import LocalSource, hub_source
from tests.conftest import run_cli

SHARDS = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]


def _blob(seed: int, n: int = 4096) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def _revision(root, name, files: dict[str, bytes]):
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "gpt_neox"}))
    for f, data in files.items():
        (folder / f).write_bytes(data)
    return folder


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    """Revisions with every fault the audit names (weights are opaque bytes here)."""
    root = tmp_path_factory.mktemp("audited")
    index = json.dumps({"weight_map": {f"w{i}": s for i, s in enumerate(SHARDS)}}).encode()
    return root, {
        "step0": _revision(root, "step0", {"model.safetensors": _blob(0)}),
        "step1": _revision(root, "step1", {"model.safetensors": _blob(0)}),  # = step0
        "step10": _revision(
            root,
            "step10",
            {
                SHARDS[0]: _blob(10, 2048),
                SHARDS[1]: _blob(11, 2048),
                "model.safetensors.index.json": index,
            },
        ),
        "step100": _revision(  # its first shard is step10's
            root,
            "step100",
            {
                SHARDS[0]: _blob(10, 2048),
                SHARDS[1]: _blob(12, 2048),
                "model.safetensors.index.json": index,
            },
        ),
        "step200": _revision(root, "step200", {"model.safetensors": _blob(3, 3000)}),  # small
        "step300": _revision(
            root, "step300", {"model.safetensors": _blob(4), "pytorch_model.bin": _blob(5)}
        ),
        "step400": _revision(root, "step400", {"model.safetensors": _blob(6)}),
        "step500": _revision(root, "step500", {"model.safetensors": _blob(7)}),
        # main's weights (the final step's) served at a mid-training step (pythia-2.8b)
        "step550": _revision(root, "step550", {"model.safetensors": _blob(9)}),
        "step600": _revision(root, "step600", {"pytorch_model.bin": _blob(8)}),  # .bin only
        "step700": _revision(root, "step700", {"model.safetensors": _blob(9)}),  # = main
        # resharded: the usual 4096 bytes in two files, plus 40 bytes of shard headers
        "step650": _revision(
            root,
            "step650",
            {
                SHARDS[0]: _blob(20, 2068),
                SHARDS[1]: _blob(21, 2068),
                "model.safetensors.index.json": index,
            },
        ),
    }


@pytest.fixture(scope="module")
def served(series, tmp_path_factory):
    root, branches = series
    hub = LocalHub(tmp_path_factory.mktemp("audithub"))
    hub.add_model_repo("t/audited", branches, lfs=True)
    hub.start("t/audited")
    yield hub
    hub.stop()


def _check(table, served: bool):
    by = table.set_index("step")
    assert by.loc[600, "status"] == "format change" and by.loc[600, "format"] == "bin"
    if served:  # the Hub's main is the final model: its weights belong to the final step
        assert by.loc[700, "status"] == "ok"
        assert by.loc[550, "status"] == "duplicate" and by.loc[550, "duplicate_of"] == 700
        assert "main" in by.loc[550, "detail"]
    else:  # a folder has no main: the earliest step holding a set of weights owns it
        assert by.loc[550, "status"] == "ok"
        assert by.loc[700, "status"] == "duplicate" and by.loc[700, "duplicate_of"] == 550
    assert by.loc[0, "status"] == "ok"
    assert by.loc[1, "status"] == "duplicate" and by.loc[1, "duplicate_of"] == 0
    assert by.loc[10, "status"] == "ok" and by.loc[10, "n_files"] == 2
    assert by.loc[100, "status"] == "shard duplicate"
    assert f"{SHARDS[0]} = step 10's {SHARDS[0]}" in by.loc[100, "detail"]
    assert by.loc[200, "status"] == "size anomaly" and "3000 bytes" in by.loc[200, "detail"]
    assert by.loc[300, "status"] == "mixed formats" and by.loc[300, "format"] == "bin+safetensors"
    assert (by.loc[[400, 500], "status"] == "ok").all()
    assert by.loc[650, "status"] == "ok" and by.loc[650, "detail"].startswith("resharded: 2")


def test_the_hub_tree_is_audited_without_downloading_a_weight(served, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    source = hub_source("t/audited", endpoint=served.url, cache_dir=str(cache))
    table = audit(source)
    _check(table, served=True)
    # Sizes from the Hub's listing, not from a download.
    assert table.set_index("step").loc[0, "bytes"] == 4096
    downloaded = [p for p in cache.rglob("*") if p.is_file()] if cache.exists() else []
    assert not [p for p in downloaded if p.suffix in (".safetensors", ".bin")]


def test_a_local_series_is_audited_alike(series):
    root, _ = series
    _check(audit(LocalSource(root)), served=False)


def test_a_known_schedule_names_the_missing_branches(series):
    root, _ = series
    table = audit(LocalSource(root), expected=[0, 1, 10, 50, 100, 200, 300, 400, 500, 700])
    row = table.set_index("step").loc[50]
    assert row["status"] == "missing" and "no such branch" in row["detail"]
    text = audit_summary(table)
    assert "2 duplicate revision(s)" in text and "step 50: missing" in text


def test_missing_branches_of_a_served_series_are_named(served, tmp_path):
    source = hub_source("t/audited", endpoint=served.url, cache_dir=str(tmp_path / "c"))
    table = audit(source, expected=[0, 1, 10, 50, 100, 700, 1000])
    by = table.set_index("step")
    assert list(by.index[by["status"] == "missing"]) == [50, 1000]
    assert "no such branch" in by.loc[1000, "detail"]
    assert "step 50: missing" in audit_summary(table)


def test_the_shard_main_serves_mid_training_is_named_main_s(tmp_path):
    """pythia-12b step50000/58000: a mid-training branch serving the final model's first shard."""
    index = json.dumps({"weight_map": {f"w{i}": s for i, s in enumerate(SHARDS)}}).encode()

    def sharded(name, a, b):
        return _revision(
            tmp_path,
            name,
            {
                SHARDS[0]: _blob(a, 2048),
                SHARDS[1]: _blob(b, 2048),
                "model.safetensors.index.json": index,
            },
        )

    hub = LocalHub(tmp_path / "hub")
    branches = {"step1": sharded("step1", 1, 2), "step2": sharded("step2", 9, 3)}
    branches["step3"] = sharded("step3", 9, 4)  # = main; its first shard also in step2
    hub.add_model_repo("t/shards", branches, lfs=True)
    hub.start("t/shards")
    try:
        source = hub_source("t/shards", endpoint=hub.url, cache_dir=str(tmp_path / "c"))
        by = audit(source).set_index("step")
    finally:
        hub.stop()
    assert by.loc[3, "status"] == "ok" and by.loc[1, "status"] == "ok"
    assert by.loc[2, "status"] == "shard duplicate"
    assert by.loc[2, "detail"] == f"{SHARDS[0]} = main's {SHARDS[0]}"


def test_audit_cli_writes_the_table_and_a_summary(served, tmp_path):
    env = {"HF_ENDPOINT": served.url, "HF_HUB_CACHE": str(tmp_path / "c")}
    out = run_cli("audit", "t/audited", "--out", tmp_path / "a.csv", env=env)
    assert out.returncode == 0, out.stderr
    assert "t/audited: 12 revisions" in out.stdout and "2 duplicate" in out.stdout
    table = pd.read_csv(tmp_path / "a.csv")
    assert len(table) == 12 and set(table["model"]) == {"t/audited"}
    bad = run_cli("audit", "t/no-such-repo", env=env)
    assert bad.returncode == 2 and "repository not found" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    assert os.path.exists(tmp_path / "a.csv")


def test_a_suite_files_declared_schedule_names_the_missing(series, tmp_path):
    """Every 100 steps to the last listed (700): 800 is not declared, 0..700 are."""
    root, _ = series
    suite = tmp_path / "suite.json"
    suite.write_text(json.dumps({"sources": [str(root)], "schedule": {"every": 100}}))
    out = run_cli("audit", suite, "--out", tmp_path / "a.csv")
    assert out.returncode == 0, out.stderr
    table = pd.read_csv(tmp_path / "a.csv")
    missing = table.loc[table["status"] == "missing", "step"].tolist()
    # the grid 0, 100, ..., 700 against the listed 0, 1, 10, 100, ..., 700 (and 550, 650)
    assert missing == []
    faults = {"known_faults": ["step1 repeats step0", "step600 is .bin only"]}
    suite.write_text(json.dumps({"sources": [str(root)], "schedule": {"every": 50}, **faults}))
    out = run_cli("audit", suite, "--out", tmp_path / "b.csv")
    assert "suite: known faults: step1 repeats step0; step600 is .bin only" in out.stdout
    table = pd.read_csv(tmp_path / "b.csv")
    missing = table.loc[table["status"] == "missing", "step"].tolist()
    assert missing == [50, 150, 250, 350, 450]
    assert "no declared schedule" not in out.stdout


def test_a_series_without_a_schedule_says_missing_is_not_judged(series, tmp_path):
    root, _ = series
    out = run_cli("audit", root, "--out", tmp_path / "a.csv")
    assert out.returncode == 0, out.stderr
    assert "no declared schedule: missing revisions are not judged" in out.stdout


def test_a_bad_declared_schedule_exits_2_with_the_fix(series, tmp_path):
    root, _ = series
    suite = tmp_path / "suite.json"
    suite.write_text(json.dumps({"sources": [str(root)], "schedule": {"every": "often"}}))
    out = run_cli("audit", suite, "--out", tmp_path / "a.csv")
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1
    assert 'give "pythia", or {"every": N}' in out.stderr
    assert not (tmp_path / "a.csv").exists()
