"""``massdyn train-predictor`` and ``massdyn predict``: architecture -> emergence curves."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from massdyn.io import keep_duplicates_option, time_option
from massdyn.options import opt


def _regressors():
    from massdyn.predictors.paper.model import REGRESSORS

    return REGRESSORS


MAX_LAYERS = 1024  # a bound on what is allocated; the training ranges bound the rest
MIN_ARCHITECTURES = 10  # below this, held-out scores are anecdotes, and are said to be
SHIPPED = "the grown mini-suite shipped with massdyn"


def grown_suite_sources() -> tuple[list[str], list[str]]:
    """Measurements tables and config folders of the grown mini-suite shipped with massdyn."""
    from massdyn.minisuite import grown_suite_data

    folders = grown_suite_data()
    return [str(f / "measurements.csv") for f in folders], [str(f / "configs") for f in folders]


def shipped_tokens_per_step() -> int:
    """Tokens per optimizer step of the shipped mini-suite (batch x sequence length)."""
    from massdyn.minisuite import Suite

    recipe = Suite.load().recipe
    return recipe.batch_size * recipe.seq_len


def fit_curve_predictor(measurements, configs, tokens_per_step: int | None = None):
    """A :class:`CurvePredictor` fitted to a measurements table, and the models' architectures."""
    from massdyn.fitting.series import check_measurements
    from massdyn.predictors import configs_from_dir
    from massdyn.predictors.curve import CurvePredictor

    check_measurements(measurements)
    archs = configs_from_dir(configs, sorted(measurements["model"].unique()))
    return CurvePredictor(tokens_per_step=tokens_per_step).fit(measurements, archs), archs


@dataclass
class TrainPredictorCommand:
    """Train an architecture -> emergence-curve predictor from measured suites.

    MEASUREMENTS is a table in the walker's format (one row per model, step, layer, seq);
    DIR holds one HF config per model (DIR/<model>.json, DIR/<model>/config.json, or the
    name without its organisation). The default protocol predicts log(ratio) curves from a
    depth-mean base plus shrunk architecture offsets and prints leave-one-architecture-out
    scores per held-out model next to the base. ``--protocol paper`` fits the five
    parameters first and regresses them (arXiv 2508.03616, Table 3), printing R^2 and MAE
    per target under a random 80/20 split, 5-fold CV and leave-one-model-out.
    """

    measurements: list[str] = opt(
        (), f"measurements tables of the walker (.csv, .parquet); none: {SHIPPED}", positional=True
    )
    configs: list[str] = opt((), "folder(s) of <model>.json or <model>/config.json")
    out: str = opt("predictor.skops", "predictor file to write")
    protocol: str = opt(
        "curve",
        "curve: log-ratio curves; paper: the paper's parameter regressors",
        choices=("curve", "paper"),
    )
    regressor: str = opt("rf", "paper protocol's regressor", choices=_regressors)
    seed: int = opt(0, "seed of splits and bootstrap")
    keep_duplicates: bool = keep_duplicates_option()
    tokens_per_step: int | None = opt(
        None,
        "tokens per optimizer step of the training runs (batch x sequence length), so that "
        "predictions for other suites are made at equal tokens; the shipped suite's is known",
    )
    scores: str | None = opt(
        None,
        "also write the held-out scores of the predictor and its rivals (base, linear, "
        "nearest), one row per (architecture, method), to this table",
    )

    def run(self) -> int:
        """Train, report, save."""
        from massdyn.io import read_measurements, refuse_overwriting_inputs

        measurements, configs = list(self.measurements), list(self.configs)
        refuse_overwriting_inputs([self.out, self.scores], measurements)
        if not measurements:
            if configs:
                raise ValueError(
                    "--configs without MEASUREMENTS: give the measurements tables the "
                    f"configs belong to, or neither to train on {SHIPPED}"
                )
            measurements, configs = grown_suite_sources()
            print(f"no MEASUREMENTS given: training on {SHIPPED}")
            if self.tokens_per_step is None:
                self.tokens_per_step = shipped_tokens_per_step()
        elif not configs:
            raise ValueError(
                "--configs is required with MEASUREMENTS: the folder(s) holding each "
                "model's config (<model>.json or <model>/config.json)"
            )
        table = read_measurements(measurements, self.keep_duplicates)
        is_params = {"A", "lambda", "gamma", "t0", "K"} <= set(table.columns)
        named = " ".join(measurements)
        if not is_params and not {"step", "top1", "median"} <= set(table.columns):
            raise ValueError(
                f"{named} is neither a measurements table (model, step, layer, seq, top1, "
                "median) nor a parameters table of massdyn fit"
            )
        if self.protocol == "curve":
            if is_params:
                raise ValueError(
                    f"{named} is a parameters table (from massdyn fit); the curve protocol "
                    "learns from the measurements themselves: pass the measurements "
                    "table, or --protocol paper"
                )
            return self._curve(table, configs)
        return self._paper(table, is_params, configs)

    def _curve(self, measurements, configs) -> int:
        import math

        from massdyn.predictors import save_predictor
        from massdyn.predictors.scores import (
            bootstrap_gain,
            score_heldout,
            seed_noise,
            variance_budget,
        )

        if self.tokens_per_step is not None and self.tokens_per_step <= 0:
            raise ValueError(f"--tokens-per-step must be positive, got {self.tokens_per_step}")
        est, archs = fit_curve_predictor(measurements, configs, self.tokens_per_step)
        if est.tokens_per_step is None:
            print(
                "warning: no --tokens-per-step: the predictor cannot map another suite's steps "
                "to its own, and predicts on steps as they are"
            )
        scores = score_heldout(est)
        n_arch = len(set(est.groups_.values()))
        print(
            f"{len(est.logs_)} models, {n_arch} architectures, "
            f"{sum(c.shape[0] for c in est.logs_.values())} (model, layer) curves on "
            f"{est.grid_.size} log-spaced steps up to {est.max_step_:g}"
        )
        if n_arch < MIN_ARCHITECTURES:
            print(
                f"warning: only {n_arch} architectures: the scores below are a handful of "
                f"cases, not an estimate (at least {MIN_ARCHITECTURES} are needed to mean much)"
            )

        def label(a: str) -> str:
            named = a in ("stacked", *est.rivals)
            return "base" if a == "inf" else a if named else f"ridge {float(a):g}"

        weights = ", ".join(f"{label(a)} {w:.2f}" for a, w in est.weights_.items() if w > 0)
        print(
            "the ridge offsets and the simple rivals stacked by grouped CV (Breiman 1996), "
            f"weights: {weights}"
        )
        print(
            "grouped-CV median |log error| per candidate: "
            + ", ".join(f"{label(k)} {v:.4f}" for k, v in est.cv_.items())
        )
        print(
            "leave one architecture out, its weights chosen without it (curve R^2 in "
            "ratio space, median |log error|; against the seed mean where seeds > 1):"
        )
        cols = [
            "model",
            "seeds",
            "layers",
            "curve_r2",
            "base_curve_r2",
            "log_err",
            "base_log_err",
            "coverage",
        ]
        print(scores[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        mid, lo, hi = bootstrap_gain(scores, seed=self.seed)
        print(
            f"median curve R^2 {scores['curve_r2'].median():.3f} (base "
            f"{scores['base_curve_r2'].median():.3f}); gain over the base in |log error| "
            f"{mid:.4f}, 90% bootstrap over architectures {lo:.4f} to {hi:.4f}"
        )
        mid, lo, hi = bootstrap_gain(scores, "mse", seed=self.seed)
        print(
            f"gain over the base in mean squared log error (mean over architectures) "
            f"{mid:.4f}, 90% bootstrap {lo:.4f} to {hi:.4f}"
        )
        print(
            f"10-90% band, each architecture's from the errors of the others: covers "
            f"{scores['coverage'].mean():.0%} of the held-out points (nominally 80%; "
            f"{scores['coverage'].min():.0%}-{scores['coverage'].max():.0%} by architecture)"
        )
        self._rivals(est, measurements)
        noise = seed_noise(est)
        if noise["pairs"]:
            print(
                f"seed replicates: {noise['pairs']} pair(s), seed-to-seed median |log difference|"
                f" {noise['floor']:.3f}; architecture explains {noise['arch_share']:.0%} of the "
                "variance of the curves of equally deep members"
            )
        budget = variance_budget(est, scores)
        if not math.isnan(budget["sigma"]):
            print(
                f"what the base misses, RMS log {budget['base_rms']:.3f} over architectures, "
                f"against RMS {budget['noise_rms']:.3f} that seed noise alone would give (one "
                f"run's sigma {budget['sigma']:.3f}):",
                (
                    f"{budget['systematic_share']:.0%} of it is systematic, and the predictor "
                    f"(RMS {budget['pred_rms']:.3f}) removes {budget['captured']:.0%} of that"
                    if budget["systematic_share"] > 0
                    else "seed noise accounts for all of it"
                ),
            )
        info = {
            "protocol": "curve",
            "models": sorted(archs),
            "scores": scores.to_dict("records"),
            "seed_noise": noise,
            "variance_budget": budget,
        }
        print(f"wrote {save_predictor(est, self.out, info)}")
        return 0

    def _rivals(self, est, measurements) -> None:
        """The predictor against its strongest simple rivals, held out the same way."""
        import pandas as pd

        from massdyn.io import write_table
        from massdyn.predictors.rivals import (
            METRICS,
            coverage_by_region,
            gains,
            one_run_floor,
            score_rivals,
        )

        rivals = score_rivals(est, measurements)
        print(
            "against simple rivals held out the same way (median over architectures; linear: "
            "least squares per step on [1, depth, log d_model, n_layers]; nearest: mean of "
            "the 3 nearest architectures):"
        )
        table = rivals.groupby("method", sort=False)[list(METRICS)].median()
        print(table.to_string(float_format=lambda v: f"{v:.4f}"))
        g = pd.concat([gains(rivals, m, seed=self.seed) for m in METRICS], ignore_index=True)
        print(
            "the predictor's gain over each (positive: better; 90% bootstrap over architectures):"
        )
        for row in g.itertuples():
            verdict = "better" if row.lo > 0 else "worse" if row.hi < 0 else "no clear difference"
            print(
                f"  {row.metric:<22} vs {row.rival:<8} {row.gain:+.4f} ({row.lo:+.4f} to "
                f"{row.hi:+.4f}), wins {row.wins}/{row.architectures}: {verdict}"
            )
        floor = one_run_floor(est, measurements)
        if floor["grid"] == floor["grid"]:  # not NaN: the suite has seed replicates
            mine = table.loc["predictor"]
            print(
                f"one run against its architecture's seed mean (what a perfect predictor of "
                f"the mean would miss by): median |log error| {floor['grid']:.3f} on the grid, "
                f"{floor['measured']:.3f} at the measured steps; the predictor is at "
                f"{mine['abs_log_err_grid'] / floor['grid']:.2f}x and "
                f"{mine['abs_log_err_measured'] / floor['measured']:.2f}x of it"
            )
        near = score_rivals(est, measurements, by_neighbourhood=True)
        if not near.empty:
            nt = near.groupby("method", sort=False)[list(METRICS)].median()
            held = near.loc[near["method"] == "predictor", "held_out"]
            ng = gains(near, "abs_log_err_late", seed=self.seed)
            print(
                f"leave-neighbourhood-out ({len(held)} architectures, each held out with every "
                f"one that differs from it in one field; {held.median():.0f} architectures out "
                "at the median): median |log error| late in training "
                + ", ".join(f"{m} {v:.3f}" for m, v in nt["abs_log_err_late"].items())
                + "; the predictor's gain "
                + "; ".join(
                    f"vs {r.rival} {r.gain:+.3f} ({r.lo:+.3f} to {r.hi:+.3f})"
                    for r in ng.itertuples()
                )
            )
            rivals = pd.concat(
                [rivals.assign(holdout="architecture"), near.assign(holdout="neighbourhood")],
                ignore_index=True,
            )
        regions = coverage_by_region(est, rivals[rivals.get("holdout", "") != "neighbourhood"])
        print(
            "10-90% band coverage by region of the design (nominally 80% everywhere): "
            + "; ".join(
                f"{r.region} {r.coverage:.0%} over {r.architectures} (worst {r.worst:.0%})"
                for r in regions.itertuples()
            )
        )
        if self.scores:
            print(f"wrote {write_table(rivals, self.scores)}")

    def _paper(self, table, is_params, configs) -> int:
        from massdyn.fitting import fit_measurements
        from massdyn.predictors import (
            EmergencePredictor,
            configs_from_dir,
            evaluate,
            save_predictor,
            training_table,
        )

        params = table if is_params else fit_measurements(table, "ratio", n_jobs=1)
        archs = configs_from_dir(configs, sorted(params["model"].unique()))
        rows = training_table(archs, params)
        n_models = rows["model"].nunique()
        print(f"{len(rows)} (model, layer) rows from {n_models} models; regressor {self.regressor}")
        if n_models < MIN_ARCHITECTURES or len(rows) < 50:
            print(
                f"warning: {len(rows)} rows from {n_models} models are too few for these scores "
                f"to mean much (the 80/20 split tests on {max(1, round(0.2 * len(rows)))} rows)"
            )
        scores = evaluate(rows, self.regressor, self.seed)
        for value in ("r2", "mae"):
            print(f"{value.upper()} per target:")
            table = scores.pivot(index="target", columns="protocol", values=value)
            print(table.to_string(float_format=lambda v: f"{v:.4g}"))
        est = EmergencePredictor(regressor=self.regressor, random_state=self.seed).fit(rows, rows)
        info = {
            "protocol": "paper",
            "models": sorted(archs),
            "regressor": self.regressor,
            "scores": scores.to_dict("records"),
        }
        print(f"wrote {save_predictor(est, self.out, info)}")
        return 0


@dataclass
class PredictCommand:
    """Predict the emergence curves of architectures that have not been trained.

    CONFIG is a config.json, a model folder or a Hub repo id (config.json only is fetched);
    several may be given. Writes one row per (model, layer, step) with the predicted ratio
    and its 10-90% band to OUT, and per (model, layer) the final ratio, growth and step of
    half the rise (plus, labelled as such, the emergence parameters fitted to the predicted
    curve) to OUT with a _summary suffix. Warns about every field outside the training
    suite's range.
    """

    config: list[str] = opt(help="config.json, model folder or Hub repo id", positional=True)
    predictor: str | None = opt(
        None, f"file from `massdyn train-predictor` (none: one trained now on {SHIPPED})"
    )
    steps: str = opt(
        "grid",
        "grid (the predictor's log-spaced steps, at equal tokens), paper (Pythia's ~37) or a "
        "comma list (of tokens with --time tokens)",
    )
    time: str = time_option()
    out: str = opt("predicted.csv", "per (model, layer, step) table")
    plot: str | None = opt(None, "also draw the curves to this image file")
    revision: str | None = opt(None, "Hub revision of CONFIG")
    tokens_per_step: int | None = opt(
        None,
        "tokens per step of the suite CONFIG belongs to (default: Pythia's for Pythia models, "
        "else the training suite's own, with a warning); predictions are made at equal tokens",
    )
    extrapolate: bool = opt(
        False,
        "predict outside the training data too: configs outside its architecture ranges "
        "(refused by default) and steps past its token horizon (left empty by default); "
        "each such row or field is warned about",
    )

    def run(self) -> int:
        """Predict, write tables, optionally plot."""
        import sys

        import numpy as np
        import pandas as pd

        from massdyn.io import on_time_axis, refuse_overwriting_inputs, write_table
        from massdyn.predictors import load_predictor, read_config
        from massdyn.predictors.curve import CurvePredictor
        from massdyn.predictors.summary import summarize

        # Bad configs and steps fail before a predictor is trained or loaded, so the one
        # line the user sees is the error.
        out = Path(self.out)
        refuse_overwriting_inputs(
            [out, out.with_name(f"{out.stem}_summary{out.suffix}"), self.plot],
            [*self.config, self.predictor],
        )
        archs = [read_config(c, revision=self.revision) for c in self.config]
        seen: dict[str, str] = {}
        for given, arch in zip(self.config, archs, strict=True):
            if arch.name in seen:
                raise ValueError(
                    f"two CONFIGs name the model {arch.name} ({seen[arch.name]} and {given}); "
                    "give each architecture once"
                )
            seen[arch.name] = given
            if arch.n_layers > MAX_LAYERS:
                raise ValueError(
                    f"{given}: {arch.n_layers} layers; massdyn predicts at most {MAX_LAYERS} "
                    "(the deepest public decoders have about 130)"
                )
        listed = self._listed_steps()
        if self.tokens_per_step is not None and self.tokens_per_step <= 0:
            raise ValueError(f"--tokens-per-step must be positive, got {self.tokens_per_step}")
        if self.predictor is None:
            est, info = self._shipped_predictor()
        else:
            est, info = load_predictor(self.predictor)
        if not isinstance(est, CurvePredictor):
            if self.time == "tokens":
                raise ValueError(
                    "--time tokens: a paper-protocol predictor predicts Pythia's steps only; "
                    "use a curve predictor (the default) or --time step"
                )
            return self._paper(est, info, archs)
        if self.time == "tokens" and not est.tokens_per_step:
            raise ValueError(
                "--time tokens: this predictor does not know its training suite's tokens per "
                "step; retrain it with massdyn train-predictor --tokens-per-step N"
            )
        steps = self._steps(est) if listed is None else listed
        curves, summaries = [], []
        covered = [r["coverage"] for r in info.get("scores", []) if "coverage" in r]
        for arch in archs:
            notes = est.out_of_range(arch)
            if notes and not self.extrapolate:
                more = f" (and {len(notes) - 1} more)" if len(notes) > 1 else ""
                raise ValueError(
                    f"{arch.name}: {notes[0]}{more}: that is outside what the predictor learned "
                    "from; --extrapolate predicts anyway, with a warning per field"
                )
        for arch in archs:
            tps = self._tokens_per_step(est, arch)
            asked = steps
            if listed is not None and self.time == "tokens":
                asked = steps / (tps or est.tokens_per_step)  # the tokens asked, in its steps
            if self.steps == "grid" and tps and est.tokens_per_step:
                # The predictor's own grid, in this suite's steps: equal tokens, so the
                # default output stays inside the training data's horizon.
                asked = np.asarray(steps, float) * est.tokens_per_step / tps
            table = est.predict_tokens_table(arch, asked, tps, self.extrapolate)
            past = table.loc[table["layer"] == 0, "note"].str.len() > 0
            if past.any():
                first = table.loc[(table["layer"] == 0) & (table["note"] != ""), "step"].min()
                horizon, unit = (
                    (est.horizon_tokens, "tokens")
                    if est.tokens_per_step
                    else (est.max_step_, "steps")
                )
                times = np.max(steps) * (tps or 1) / (est.tokens_per_step or 1) / est.max_step_
                print(
                    f"warning: {arch.name}: {int(past.sum())} of {past.size} steps (from step "
                    f"{first:g}) lie past the training data's horizon of {horizon:,.0f} {unit} "
                    f"(the last {times:,.0f}x past it)"
                    + (
                        ": extrapolated, the curve held at its last value"
                        if self.extrapolate
                        else ": left empty (--extrapolate fills them)"
                    ),
                    file=sys.stderr,
                )
            notes = est.out_of_range(arch)
            for note in notes:
                print(f"warning: {arch.name}: {note}", file=sys.stderr)
            if notes:
                measured = (
                    f": held out, the suite's own architectures had {np.mean(covered):.0%} of "
                    f"their points inside it on average and {min(covered):.0%} at worst"
                    if covered
                    else ""
                )
                print(
                    f"warning: {arch.name}: the 10-90% band is likely too narrow outside the "
                    f"suite{measured}",
                    file=sys.stderr,
                )
            # Summaries and the plot count time on the chosen axis; the table keeps both.
            timed = on_time_axis(table, self.time)
            summary = summarize(timed)
            summary.insert(2, "time", self.time)  # what final_step and t_half count
            for row in summary[summary["below_1"]].itertuples():
                print(
                    f"warning: {arch.name} layer {row.layer}: predicted ratio below 1, which a "
                    "top-1/median ratio cannot be: the prediction is unreliable there",
                    file=sys.stderr,
                )
            summaries.append(summary.merge(_fit_predicted(timed), on=["model", "layer"]))
            curves.append(table)
        curves, summary = pd.concat(curves, ignore_index=True), pd.concat(summaries)
        out = write_table(curves, self.out)
        summary_path = write_table(summary, out.with_name(f"{out.stem}_summary{out.suffix}"))
        print(f"trained on {', '.join(info.get('models', []))}")
        cols = ["model", "layer", "final_step", "final_ratio", "final_lo", "final_hi", "growth"]
        cols += ["t_half"]
        print("per layer, up to the last step inside the training data's horizon (final_step):")
        print(summary[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        print(f"wrote {out} and {summary_path}")
        if self.plot:
            title = ", ".join(a.name for a in archs)
            plot_curves(on_time_axis(curves, self.time), self.plot, title, self.time)
            print(f"wrote {self.plot}")
        return 0

    def _tokens_per_step(self, est, arch) -> int | None:
        """The target suite's tokens per step: given, known from data/, or the predictor's."""
        import sys

        if self.tokens_per_step is not None or est.tokens_per_step is None:
            return self.tokens_per_step
        from massdyn.tracker.schedule import tokens_per_step_source

        known, source = tokens_per_step_source(arch.name)
        if known is not None:
            print(f"{arch.name}: {known:,} tokens per step ({source})", file=sys.stderr)
            return known
        print(
            f"warning: {arch.name}: tokens per step unknown; assumed the training suite's "
            f"{est.tokens_per_step:,} (pass --tokens-per-step N for its own)",
            file=sys.stderr,
        )
        return est.tokens_per_step

    def _shipped_predictor(self):
        """A curve predictor fitted now to the shipped grown suite (a few seconds)."""
        from massdyn.io import read_measurements

        tables, configs = grown_suite_sources()
        est, archs = fit_curve_predictor(
            read_measurements(tables, False), configs, shipped_tokens_per_step()
        )
        print(
            f"no --predictor: trained one on {SHIPPED} ({len(est.logs_)} models, "
            f"{len(set(est.groups_.values()))} architectures, steps up to {est.max_step_:g}); "
            "`massdyn train-predictor` with no arguments scores it held out and saves it",
        )
        return est, {"models": sorted(archs)}

    def _steps(self, est):
        """The predictor's own grid or Pythia's paper subset."""
        import numpy as np

        if self.steps == "grid":
            return np.unique(np.round(np.expm1(est.grid_)))
        from massdyn.tracker.schedule import paper_subset, pythia_steps

        return np.array(paper_subset(pythia_steps()), float)

    def _listed_steps(self):
        """The steps of a comma list, sorted; None for grid and paper."""
        import numpy as np

        if self.steps in ("grid", "paper"):
            return None
        try:
            steps = np.array([float(s) for s in self.steps.split(",") if s.strip()])
        except ValueError:
            raise ValueError(
                f"--steps must be grid, paper or a comma list of steps, got {self.steps!r}"
            ) from None
        if not steps.size or (steps < 0).any():
            raise ValueError(f"--steps needs steps >= 0, got {self.steps!r}")
        return np.sort(steps)

    def _paper(self, est, info, archs) -> int:
        """A predictor of the paper's protocol: parameters per layer, then their curves."""
        from massdyn.fitting.function import step_grid
        from massdyn.io import write_table
        from massdyn.predictors import predict_architecture

        if len(archs) > 1:
            raise ValueError("a paper-protocol predictor takes one CONFIG at a time")
        arch = archs[0]
        params, curves = predict_architecture(est, arch, step_grid(143000.0))
        out = write_table(params, self.out)
        curves_path = write_table(curves, out.with_name(f"{out.stem}_curves{out.suffix}"))
        print(f"{arch.name} (paper protocol; trained on {', '.join(info.get('models', []))})")
        cols = ["layer", "A", "lambda", "gamma", "t0", "K", "t_peak", "peak_in_window"]
        print(params[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        print(f"wrote {out} and {curves_path}")
        if self.plot:
            plot_curves(curves, self.plot, arch.name)
            print(f"wrote {self.plot}")
        return 0


def _fit_predicted(table):
    """The emergence parameters fitted to each predicted central curve, labelled as such."""
    import pandas as pd

    from massdyn.fitting import SeriesError, fit_curve

    rows = []
    for (model, layer), c in table.groupby(["model", "layer"]):
        row = {"model": model, "layer": layer}
        c = c[c["ratio"].notna()]  # rows past the token horizon are empty
        try:
            r = fit_curve(c["step"].to_numpy(float), c["ratio"].to_numpy(float))
        except SeriesError as exc:  # too few steps asked for, say
            row["fit_of_predicted_status"] = f"not fitted: {exc}"
        else:
            row.update({f"fit_of_predicted_{k}": v for k, v in r.params.items()})
            row["fit_of_predicted_status"] = r.status
        rows.append(row)
    return pd.DataFrame(rows)


def plot_curves(curves, path: str, title: str, time: str = "step") -> None:
    """Predicted curve and band per layer, log-x (``step`` holds ``time``'s values)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6), constrained_layout=True)
    cmap = plt.get_cmap("viridis")
    groups = list(curves.groupby(["model", "layer"], sort=False))
    for i, ((model, layer), c) in enumerate(groups):
        color = cmap(i / max(1, len(groups) - 1))
        ax.plot(c["step"] + 1, c["ratio"], color=color, label=f"{model} layer {layer}")
        ax.fill_between(
            c["step"] + 1, c["ratio_lo"], c["ratio_hi"], color=color, alpha=0.15, linewidth=0
        )
    ax.set_xscale("log")
    ax.set_xlabel("training step + 1" if time == "step" else "training tokens")
    ax.set_ylabel("predicted top-1 / median")
    ax.set_title(f"{title}: predicted emergence (10-90% band)")
    ax.legend(fontsize=7, ncol=2)
    fig.savefig(path, dpi=150)
    plt.close(fig)
