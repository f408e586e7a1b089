"""The figure set, drawn from a synthetic suite whose curves are known."""

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from massdyn.cli import main
from massdyn.figures import FIGURES, FigureData, draw_all
from massdyn.figures.maps import figure2, figure5, figure8
from massdyn.figures.trajectories import figure1, growth_layers
from massdyn.fitting import fit_measurements
from massdyn.fitting.function import emergence
from tests.predictors.synth import synthetic_archs, true_params

# Seconds to minutes each (training, servers, subprocesses): outside make test-fast.
pytestmark = pytest.mark.slow

STEPS = np.array([0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, *range(1000, 10001, 1000)])


@pytest.fixture(scope="module")
def suite():
    archs = {k: a for k, a in synthetic_archs().items() if a.d_model == 64 and a.n_heads == 2}
    rng = np.random.default_rng(0)
    rows = []
    for name, arch in archs.items():
        for layer in range(arch.n_layers):
            p = true_params(arch.layer_features(layer))
            ratio = emergence(STEPS.astype(float), p["A"], p["lambda"], p["gamma"], p["t0"], p["K"])
            for seq in range(2):
                # Magnitudes: a top-1 is an absolute value (the curves of some synthetic
                # architectures dip below zero at the first steps).
                top1 = np.abs(ratio * (1 + 0.01 * rng.standard_normal(ratio.size)))
                for step, t in zip(STEPS, top1, strict=True):
                    rows.append(
                        {
                            "model": name,
                            "step": step,
                            "layer": layer,
                            "seq": seq,
                            "top1": t,
                            "top2": 0.9 * t,
                            "top3": 0.8 * t,
                            "median": 1.0,
                        }
                    )
    m = pd.DataFrame(rows)
    params = fit_measurements(m, "ratio", n_jobs=1)
    return FigureData(m, params, archs, {n: 2048 for n in archs})


def test_every_figure_is_written_as_png_and_pdf(suite, tmp_path):
    written = draw_all(suite, tmp_path)
    # the seed band figure needs seeds pooled per architecture (below), the mechanism
    # figures their tables (test_mechanism_results), the overlap the top-3 positions that
    # this synthetic table has not
    needs_more = {n for n, s in FIGURES.items() if s.needs_seeds or s.needs_tables}
    assert set(written) == set(FIGURES) - needs_more - {"fig13_outlier_overlap"}
    for paths in written.values():
        assert [p.suffix for p in paths] == [".png", ".pdf"]
        assert all(p.stat().st_size > 1000 for p in paths)


def test_the_registry_holds_the_papers_ten_figures_in_order():
    assert [spec.number for spec in FIGURES.values()] == list(range(1, 16))
    assert [n for n, spec in FIGURES.items() if spec.needs_seeds] == ["fig11_seed_bands"]
    assert all(name.startswith(f"fig{spec.number}_") for name, spec in FIGURES.items())
    assert {n for n, spec in FIGURES.items() if spec.needs_archs} == {
        "fig9_attribution_K",
        "fig10_attribution_lambda",
    }


def test_a_registry_entry_draws_its_figure_when_called(suite):
    # The notebooks draw one figure at a time as FIGURES[name](data).
    overview = FIGURES["fig1_overview"](suite)
    attribution = FIGURES["fig9_attribution_K"](suite)
    assert isinstance(overview, Figure) and isinstance(attribution, Figure)
    assert attribution.axes and overview.axes


def test_attributions_are_left_out_without_configs(suite, tmp_path):
    bare = FigureData(suite.measurements, suite.params)
    said = []
    written = draw_all(bare, tmp_path, log=said.append)
    assert "fig9_attribution_K" not in written and "fig1_overview" in written
    assert any("fig9_attribution_K: skipped" in s for s in said)


def test_heatmap_holds_the_measured_peaks(suite):
    fig = figure5(suite)
    grid = fig.axes[0].images[0].get_array()
    s = suite.series["ratio"]
    for j, model in enumerate(suite.models):
        peaks = s[s["model"] == model].groupby("layer")["value"].max()
        np.testing.assert_allclose(grid[: len(peaks), j], peaks.to_numpy())
        assert np.isnan(np.ma.filled(grid[len(peaks) :, j], np.nan)).all()  # shallower: padded


def test_size_plot_orders_models_by_parameters(suite):
    assert suite.models == sorted(suite.archs, key=lambda m: suite.archs[m].n_layers)
    offsets = figure2(suite).axes[0].collections[0].get_offsets()
    sizes = [suite.size(m) for m in sorted(suite.measurements["model"].unique())]
    np.testing.assert_allclose(np.sort(offsets[:, 0]), np.sort(sizes))


def test_overview_draws_the_layers_that_grew_most(suite):
    model = suite.models[-1]
    layers = growth_layers(suite, model)
    ax = figure1(suite, model).axes[1]
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels[:2] == [f"layer {layer}" for layer in layers]
    s = suite.curve(model, layers[0])
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), s["value"])


def _numeric_peak_step(lam, gamma, t0):
    """Where A exp(-lambda x) log x, x = gamma t + t0, is largest: by brute force over t."""
    t = np.geomspace(1.0, 1e9, 400_001)
    return t[np.argmax(emergence(t, 1.0, lam, gamma, t0, 0.0))]


def test_tpeak_surface_marks_the_last_step_and_counts_fits_off_the_map(suite):
    from matplotlib.contour import ContourSet

    t0 = 1.5
    ax = figure8(suite, t0=t0).axes[0]
    assert "last step (10000)" in " ".join(t.get_text() for t in ax.get_legend().get_texts())
    # The red line is where the peak falls on the last step: check points along it
    # against a brute-force search for the peak.
    (line,) = [
        c for c in ax.collections if isinstance(c, ContourSet) and np.allclose(c.levels, [4.0])
    ]
    vertices = np.vstack([p.vertices for p in line.get_paths()])
    assert len(vertices) > 10
    for lam, gamma in vertices[:: max(1, len(vertices) // 8)]:
        assert abs(np.log10(_numeric_peak_step(lam, gamma, t0)) - 4.0) < 0.05, (lam, gamma)
    # The white dots are the fits inside the window, the title counts the others.
    p = suite.params[suite.params["status"] != "failed"]
    inside = p["lambda"].between(1e-3, 1e2) & p["gamma"].between(1e-7, 1.0)
    dots = next(c for c in ax.collections if c.get_label() == "fitted layers").get_offsets()
    np.testing.assert_allclose(
        np.sort(np.asarray(dots)[:, 0]), np.sort(p.loc[inside, "lambda"].to_numpy())
    )
    outside = int((~inside).sum())
    assert (f"({outside} fits off the map)" in ax.get_title()) == (outside > 0)


def test_cli_draws_from_explicit_files(suite, tmp_path):
    suite.measurements.to_csv(tmp_path / "m.csv", index=False)
    suite.params.to_csv(tmp_path / "p.csv", index=False)
    args = [
        "figures",
        "--measurements",
        str(tmp_path / "m.csv"),
        "--params",
        str(tmp_path / "p.csv"),
        "--out",
        str(tmp_path / "figs"),
    ]
    assert main(args) == 0
    assert (tmp_path / "figs" / "fig7_r2.pdf").exists()
    assert not (tmp_path / "figs" / "fig9_attribution_K.png").exists()  # no configs given


def test_cli_names_a_missing_measurements_file(tmp_path, capsys):
    assert main(["figures", "--measurements", str(tmp_path / "nope.csv")]) == 2
    assert "nope.csv" in capsys.readouterr().err


def test_a_wild_prediction_does_not_flatten_the_measured_curve(suite):
    from dataclasses import replace

    from massdyn.figures.trajectories import figure6

    model = suite.models[0]
    measured = suite.curve(model, 0)["value"].max()
    wild = pd.DataFrame(
        {
            "model": model,
            "layer": 0,
            "step": STEPS,
            "ratio": -50 * measured,  # what degenerate predicted parameters can give
            "ratio_lo": -1000 * measured,
            "ratio_hi": 1000 * measured,
        }
    )
    fig = figure6(replace(suite, predicted=wild), [model])
    low, high = fig.axes[0].get_ylim()
    assert low == 0 and measured < high <= 3.2 * measured
    assert fig.axes[0].get_xlim()[0] > -1  # no negative steps on the symlog axis


def test_figure_data_leaves_out_flagged_duplicates(tmp_path, capsys):
    from massdyn.figures import load_figure_data
    from massdyn.minisuite import shipped_data

    shipped = pd.read_csv(shipped_data() / "measurements.csv")
    one = shipped[shipped["model"] == shipped["model"].iloc[0]]
    last = one["step"].max()
    copy = one[one["step"] == last].assign(step=last - 1, duplicate_of=last)
    path = tmp_path / "m.csv"
    pd.concat([one, copy], ignore_index=True).to_csv(path, index=False)
    params = shipped_data() / "params.csv"
    data = load_figure_data(path, params)
    assert "left out" in capsys.readouterr().out
    pd.testing.assert_frame_equal(
        data.measurements.drop(columns="duplicate_of"), one.reset_index(drop=True)
    )
    kept = load_figure_data(path, params, keep_duplicates=True)
    assert (kept.measurements["step"] == last - 1).sum() == len(copy)


def test_figures_on_the_tokens_axis(suite, tmp_path, capsys):
    from massdyn.figures import load_figure_data

    m = suite.measurements.assign(tokens=suite.measurements["step"] * 2048)
    m.to_csv(tmp_path / "m.csv", index=False)
    data = load_figure_data(tmp_path / "m.csv", time="tokens")
    assert data.measurements["step"].max() == 10000 * 2048
    fig = figure1(data, data.models[0])
    labels = [ax.get_xlabel() for ax in fig.axes]
    assert any(label.startswith("tokens seen") for label in labels)
    assert not any(label.startswith("training step") for label in labels)
    assert "tokens 0 (dashed) vs 20480000 (solid)" in fig.axes[0].get_title()
    # Fits on the step axis do not serve the tokens axis, nor do predictions.
    suite.params.assign(time="step").to_csv(tmp_path / "p.csv", index=False)
    args = ["figures", "--measurements", str(tmp_path / "m.csv"), "--time", "tokens"]
    assert main([*args, "--params", str(tmp_path / "p.csv")]) == 2
    assert "fitted on the step axis" in capsys.readouterr().err
    assert main([*args, "--predictor", str(tmp_path / "x.skops")]) == 2
    assert "predicted curves are drawn on the step axis" in capsys.readouterr().err
    suite.measurements.to_csv(tmp_path / "no-tokens.csv", index=False)
    assert (
        main(["figures", "--measurements", str(tmp_path / "no-tokens.csv"), "--time", "tokens"])
        == 2
    )
    assert "--time tokens needs a tokens column" in capsys.readouterr().err


def test_seeds_are_drawn_as_one_architecture_with_a_band(tmp_path, capsys):
    """The shipped seed replicates: the band spans the seeds' own ratios at every shared step."""
    from massdyn.figures import load_figure_data
    from massdyn.figures.trajectories import figure11

    data = load_figure_data(by="architecture")
    seeded = {n: m for n, m in data.seeds.items() if len(m) > 1}
    assert seeded and all(len(m) == 3 for m in seeded.values())
    assert set(data.measurements["model"]) == set(data.seeds)  # one series per architecture
    fig = figure11(data)
    assert len(fig.axes) >= len(seeded)
    for ax in fig.axes[: len(seeded)]:
        name, layer = ax.get_title().split(":")[0], int(ax.get_title().rsplit(" ", 1)[1])
        # the reference: each seed's mean top-1 over mean median, by hand
        rows = data.members[
            data.members["model"].isin(data.seeds[name]) & (data.members["layer"] == layer)
        ]
        means = rows.groupby(["model", "step"])[["top1", "median"]].mean()
        ratio = (means["top1"] / means["median"]).unstack("model").dropna()
        band = next(c for c in ax.collections if c.get_label().startswith("band over 3"))
        ys = band.get_paths()[0].vertices[:, 1]
        np.testing.assert_allclose(
            np.sort(np.unique(np.round(ys, 9))),
            np.sort(np.unique(np.round([*ratio.min(axis=1), *ratio.max(axis=1)], 9))),
        )
    assert main(["figures", "--by", "architecture", "--out", str(tmp_path / "f")]) == 0
    assert (tmp_path / "f" / "fig11_seed_bands.png").exists()
    out = capsys.readouterr().out
    assert "fig11_seed_bands: skipped" not in out
    assert main(["figures", "--out", str(tmp_path / "g")]) == 0
    assert "fig11_seed_bands: skipped (needs --by architecture" in capsys.readouterr().out


def test_seeds_pooled_without_configs_is_one_line(suite, tmp_path, capsys):
    suite.measurements.to_csv(tmp_path / "m.csv", index=False)
    args = ["figures", "--measurements", str(tmp_path / "m.csv"), "--by", "architecture"]
    assert main([*args, "--out", str(tmp_path / "f")]) == 2
    err = capsys.readouterr().err
    assert "--by architecture needs --configs DIR" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "f").exists()
