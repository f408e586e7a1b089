"""massdyn import: the paper's released layout, served by olah as a Hub dataset repo."""

import json

import numpy as np
import pandas as pd
import pytest

from massdyn.testing.localhub import LocalHub
from massdyn.tracker.interop import export_paper_stats
from tests.conftest import run_cli

pytestmark = pytest.mark.slow


def paper_table(model, steps, layers, seqs=3, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for step in steps:
        for layer in range(layers):
            for seq in range(seqs):
                top1 = float(rng.uniform(5, 50) * (1 + step / 1000))
                rows.append((model, step, layer, seq, top1, top1 / 2, top1 / 3, 1.0 + layer))
    cols = ["model", "step", "layer", "seq", "top1", "top2", "top3", "median"]
    return pd.DataFrame(rows, columns=cols)


def test_import_from_a_hub_dataset_repo_in_the_papers_layout(tmp_path):
    tables = {
        "14m": paper_table("pythia-14m", [0, 1, 512, 143000], layers=6),
        "1b": paper_table("pythia-1b", [1000, 143000], layers=16, seed=1),
    }
    layout = tmp_path / "layout"
    for t in tables.values():
        export_paper_stats(t, layout)
    files = {str(p.relative_to(layout)): p.read_text() for p in layout.rglob("exp2_*")}
    files["pythia_1b/stats/exp2_pythia_1b_step0"] = "[[1.0, 2.0\n"  # malformed, as published
    files["params/pythia_14m.json"] = json.dumps({"A": 1.0})
    hub = LocalHub(tmp_path / "hub")
    hub.add_dataset_repo("Aimpoint-Digital/pythia-massive-activations", files)
    probe = tmp_path / "probe"
    probe.mkdir()
    (probe / "config.json").write_text("{}")
    hub.add_model_repo("tiny/probe", {"main": probe})  # start() waits until olah serves it
    hub.start("tiny/probe")
    try:
        env = {"HF_ENDPOINT": hub.url, "HF_HUB_CACHE": str(tmp_path / "cache")}
        env["HF_HUB_DISABLE_XET"] = "1"
        out = run_cli("import", "--out", tmp_path / "o", env=env)
    finally:
        hub.stop()
    assert out.returncode == 0, out.stderr
    assert "skipped (malformed): pythia_1b/stats/exp2_pythia_1b_step0" in out.stdout
    for size, t in tables.items():
        got = pd.read_csv(tmp_path / "o" / f"pythia-{size}" / "measurements.csv")
        assert (got["tokens"] == got["step"] * 2_097_152).all()
        pd.testing.assert_frame_equal(
            got.drop(columns="tokens"), t.reset_index(drop=True), check_exact=False, rtol=1e-8
        )
    assert json.loads((tmp_path / "o" / "paper" / "params" / "pythia_14m.json").read_text())
    fit = run_cli(
        "fit", tmp_path / "o" / "pythia-14m" / "measurements.csv", "--out", tmp_path / "p.csv"
    )
    assert fit.returncode in (0, 1) and (tmp_path / "p.csv").exists()


def test_import_refuses_an_out_inside_the_source_and_a_bad_source(tmp_path):
    export_paper_stats(paper_table("pythia-14m", [0, 1], layers=2), tmp_path / "clone")
    bad = run_cli("import", tmp_path / "clone", "--out", tmp_path / "clone" / "o")
    assert bad.returncode == 2 and "lies inside the dataset" in bad.stderr
    worse = run_cli("import", "not a repo", "--out", tmp_path / "o")
    assert worse.returncode == 2 and "neither a folder nor a Hub dataset repo id" in worse.stderr
    ok = run_cli("import", tmp_path / "clone", "--out", tmp_path / "o")
    assert ok.returncode == 0, ok.stderr
    assert len(pd.read_csv(tmp_path / "o" / "pythia-14m" / "measurements.csv")) == 2 * 2 * 3
