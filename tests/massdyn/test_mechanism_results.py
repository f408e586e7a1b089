"""What is made of the mechanism tables: --metric sink, locate, figures 12-15."""

import numpy as np
import pandas as pd
import pytest

from massdyn.cli import main
from massdyn.figures import FIGURES, FigureData, draw_all
from massdyn.figures.mechanisms import figure12, figure13, figure14, figure15
from massdyn.fitting.function import emergence
from massdyn.fitting.series import aggregate

STEPS = np.array([0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, *range(1000, 8001, 1000)], float)
LAYERS, HEADS = 3, 4


@pytest.fixture(scope="module")
def tables():
    """A suite of one model whose sink share, losses and super weights are known."""
    rng = np.random.default_rng(0)
    att, iv, sw, meas = [], [], [], []
    for layer in range(LAYERS):
        share = emergence(STEPS, 0.08 + 0.02 * layer, 1e-4, 0.01, 1.0, 0.05)
        for i, step in enumerate(STEPS):
            for head in range(HEADS):
                noisy = float(np.clip(share[i] + 0.01 * rng.standard_normal(), 0, 1))
                att.append((step, layer, head, noisy, 10.0 + step / 100))
            for mode, extra in (("zero", 0.5 * layer * i), ("mean", 0.001 * i)):
                iv.append((step, layer, mode, 3.0, 3.0 + extra))
            row, col = (5, 7) if layer == 1 or step < 100 else (2, 9)
            sw.append((step, layer, 0, 4, row, col, 0.5, 100.0 if layer == 1 else 1.0, 3.0))
            for seq in range(2):
                top = 50 + step / 10 * (layer + 1)
                dims = (3, 4, 5) if step >= 512 else (seq, 10 + seq, 20)
                meas.append((step, layer, seq, top, top / 2, top / 3, 1.0, 0, *dims))
    cols = ["step", "layer", "head", "sink_share", "pos0_norm"]
    attention = pd.DataFrame(att, columns=cols).assign(model="m")
    interventions = pd.DataFrame(iv, columns=["step", "layer", "mode", "loss_base", "loss"])
    superweights = pd.DataFrame(
        sw, columns=["step", "layer", "seq", "token", "row", "col", "weight", "output", "input"]
    ).assign(model="m")
    superweights["stands_out"] = superweights["layer"] == 1
    m = pd.DataFrame(
        meas,
        columns=["step", "layer", "seq", "top1", "top2", "top3", "median", "top1_token"]
        + ["top1_dim", "top2_dim", "top3_dim"],
    ).assign(model="m")
    return {
        "attention": attention,
        "interventions": interventions.assign(model="m"),
        "superweights": superweights,
        "measurements": m,
    }


def _data(tables, with_tables=True):
    from massdyn.fitting import fit_measurements

    m = tables["measurements"]
    names = ("attention", "interventions", "superweights")
    extra = {n: tables[n] for n in names} if with_tables else {}
    return FigureData(m, fit_measurements(m, "ratio", n_jobs=1), tables=extra)


def test_metric_sink_is_the_mean_share_over_heads(tables, tmp_path, capsys):
    series = aggregate(tables["attention"], "sink")
    want = tables["attention"].groupby(["model", "layer", "step"])["sink_share"].mean()
    np.testing.assert_allclose(series.set_index(["model", "layer", "step"])["value"], want)
    assert (series["n_seqs"] == HEADS).all()
    tables["attention"].to_csv(tmp_path / "attention.csv", index=False)
    args = ["fit", str(tmp_path / "attention.csv"), "--metric", "sink", "--jobs", "1"]
    assert main([*args, "--out", str(tmp_path / "p.csv")]) == 0
    params = pd.read_csv(tmp_path / "p.csv")
    assert set(params["metric"]) == {"sink"} and (params["r2"] > 0.95).all()
    fc = ["forecast", str(tmp_path / "attention.csv"), "--metric", "sink", "--until", "16000"]
    assert main([*fc, "--jobs", "1", "--out", str(tmp_path / "f.csv")]) == 0
    tables["measurements"].to_csv(tmp_path / "m.csv", index=False)
    capsys.readouterr()
    bad = ["fit", str(tmp_path / "m.csv"), "--metric", "sink", "--out", str(tmp_path / "q.csv")]
    assert main(bad) == 2
    assert "--metric sink reads an attention table" in capsys.readouterr().err
    wrong = ["fit", str(tmp_path / "attention.csv"), "--out", str(tmp_path / "r.csv")]
    assert main(wrong) == 2
    assert "an attention table (sink_share per head)" in capsys.readouterr().err


def test_locate_adds_position_0_and_where_super_weights_stay(tables, tmp_path, capsys):
    for name in ("measurements", "attention", "superweights"):
        tables[name].to_csv(tmp_path / f"{name}.csv", index=False)
    out = tmp_path / "loc.csv"
    assert main(["locate", str(tmp_path / "measurements.csv"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    loc = pd.read_csv(out)
    want = 10.0 + loc["step"] / 100
    np.testing.assert_allclose(loc["pos0_norm"], want)
    persist = pd.read_csv(tmp_path / "loc_superweights.csv")
    layer1 = persist[persist["layer"] == 1].iloc[0]
    assert (layer1["row"], layer1["col"], layer1["checkpoints"]) == (5, 7, len(STEPS))
    assert layer1["stood_out"] == len(STEPS) and layer1["at_last"]
    moved = persist[(persist["layer"] == 0) & (persist["row"] == 5)].iloc[0]
    assert moved["last_step"] == 64 and not moved["at_last"]
    assert f"m layer 1: super weight W[5, 7] stands out in {len(STEPS)} of {len(STEPS)}" in printed


def test_mechanism_figures_draw_the_tables(tables):
    data = _data(tables)
    fig = figure12(data)
    share = tables["attention"].groupby(["layer", "step"])["sink_share"].mean()
    lines = [ln for ln in fig.axes[1].get_lines() if ln.get_linestyle() == "-"]
    for layer, line in enumerate(lines):
        np.testing.assert_allclose(line.get_ydata(), share.loc[layer].to_numpy())
    fig = figure14(data)
    iv = tables["interventions"]
    zero = iv[(iv["mode"] == "zero") & (iv["layer"] == 2)]
    np.testing.assert_allclose(fig.axes[0].get_lines()[2].get_ydata(), zero["loss"] - 3.0)
    fig = figure15(data)
    rows = fig.axes[1].get_lines()[0].get_ydata()
    assert set(rows) == {5}  # layer 1 has the largest spike, and keeps W[5, 7]
    fig = figure13(data)
    grid = fig.axes[0].get_images()[0].get_array()
    assert np.allclose(np.diag(grid), 1) and np.allclose(grid, grid.T)
    late = STEPS >= 512
    assert np.allclose(grid[np.ix_(late, late)], 1.0)
    assert np.allclose(grid[np.ix_(~late, late)], 0.0)  # no dim in common before and after


def test_figures_without_the_tables_say_which_flag_records_them(tables, tmp_path):
    said = []
    written = draw_all(_data(tables, with_tables=False), tmp_path, log=said.append)
    assert "fig13_outlier_overlap" in written  # from the measurements alone
    for name, flag in (
        ("fig12_sinks_over_training", "--attention"),
        ("fig14_interventions", "--interventions"),
        ("fig15_super_weights", "--super-weights"),
    ):
        assert name in FIGURES and name not in written
        assert any(s.startswith(f"{name}: skipped") and flag in s for s in said), said


def test_the_shipped_member_with_mechanisms_draws_them_offline(tmp_path, capsys):
    """The member retrained with the mechanisms on: same measurements, figures from it."""
    from massdyn.figures import load_figure_data
    from massdyn.minisuite import shipped_data

    shipped = shipped_data()
    suite = pd.read_csv(shipped / "measurements.csv")
    member = pd.read_csv(shipped / "mechanisms" / "measurements.csv")
    name = member["model"].iloc[0]
    mine = suite[suite["model"] == name].reset_index(drop=True)
    # recording the mechanisms live changed nothing in the training run
    pd.testing.assert_frame_equal(member[mine.columns], mine, check_exact=True)
    data = load_figure_data()
    assert set(data.tables) == {"attention", "superweights", "interventions"}
    steps = sorted(member["step"].unique())
    for table in data.tables.values():
        assert sorted(table["step"].unique()) == steps and set(table["model"]) == {name}
    assert main(["figures", "--out", str(tmp_path)]) == 0
    assert "skipped" not in capsys.readouterr().out.replace("fig11_seed_bands: skipped", "")
    for n in (12, 13, 14, 15):
        assert list(tmp_path.glob(f"fig{n}_*.png")), n
