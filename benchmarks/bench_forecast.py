"""Forecast backtests: observe the first 10%, 25%, 50% of every series, forecast the rest.

On every series of the grown mini-suite (the shipped members, their seed replicates and the
design's members: 8000 steps each) and on a synthetic suite with known
parameters spanning the paper's shapes (rising, early peak, late peak, pure log) on
Pythia's 154-step schedule with 5% multiplicative noise. Printed per truncation: median
|log error| of the forecast value at the last step, against three baselines measured on
the same series in the same run (the last observed value carried forward; a straight line
in log-step and a power law through the last third of the observed points), and the mean
difference to the best of them with a 90% bootstrap over runs; the share of the unobserved
points inside the 10-90% band (calibrated: about 0.80); and, on the synthetic series whose
curve peaks before the end, how often the forecast places a peak and the median
|log(forecast peak step / true peak step)| of those it places.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd

from massdyn.fitting.forecast import (
    forecast_measurements,
    last_value_baseline,
    log_line_baseline,
    power_law_baseline,
)

FRACTIONS = (0.10, 0.25, 0.50)
RIVALS = {
    "last value": last_value_baseline,
    "log-step line": log_line_baseline,
    "power law": power_law_baseline,
}


def member_gain(err: pd.DataFrame, rival: str, n_boot: int = 2000, seed: int = 0):
    """Mean over series of |log error| (forecaster - rival) and its 90% bootstrap interval.

    Members (models) are resampled, not series: the layers of one run share its noise.
    Series where either forecast is not positive (infinite error) are left out of the
    mean; :func:`backtest` counts them.
    """
    finite = np.isfinite(err["forecaster"]) & np.isfinite(err[rival])
    err = err[finite]
    diff = (err["forecaster"] - err[rival]).groupby(err["model"])
    sums, counts = diff.sum().to_numpy(), diff.count().to_numpy()
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, sums.size, size=(n_boot, sums.size))
    boot = sums[pick].sum(axis=1) / counts[pick].sum(axis=1)
    lo, hi = np.quantile(boot, [0.05, 0.95])
    return sums.sum() / counts.sum(), lo, hi


def backtest(measurements: pd.DataFrame, label: str, truth_peaks=None, config=None) -> list:
    """Print one line per truncation for the series of ``measurements``; return the errors."""
    from massdyn.fitting.series import aggregate

    series = aggregate(measurements, "ratio")
    end = float(series["step"].max())
    tables = []
    for frac in FRACTIONS:
        upto = frac * end
        t0 = time.perf_counter()
        rows, summary = forecast_measurements(measurements, end, upto, steps=[end], config=config)
        seconds = time.perf_counter() - t0
        ok = summary[summary["status"] == "ok"]
        err = []
        for (model, layer), grp in series.groupby(["model", "layer"]):
            t, y = grp["step"].to_numpy(float), grp["value"].to_numpy(float)
            seen = t <= upto
            s = ok[(ok["model"] == model) & (ok["layer"] == layer)]
            if s.empty or seen.sum() < 3:
                continue
            final = y[-1]
            guess = {"forecaster": s["final"].item()}
            guess |= {name: f(t[seen], y[seen], [end])[0] for name, f in RIVALS.items()}
            err.append(
                {k: abs(math.log(v / final)) if v > 0 else math.inf for k, v in guess.items()}
                | {"model": model, "layer": layer, "observed": frac}
            )
        err = pd.DataFrame(err)
        tables.append(err)
        later = rows[rows["measured"].notna()]
        cover = ((later["measured"] >= later["lo"]) & (later["measured"] <= later["hi"])).mean()
        medians = {k: err[k].median() for k in ["forecaster", *RIVALS]}
        best = min(RIVALS, key=medians.get)
        gain, lo, hi = member_gain(err, best)
        text = (
            f"{label}, observe {frac:.0%}: {len(ok)}/{len(summary)} series forecast; median |log "
            f"error| at step {end:g}: "
            + ", ".join(f"{k} {v:.3f}" for k, v in medians.items())
            + f"; forecaster - {best}: mean {gain:+.3f} [90% CI {lo:+.3f}, {hi:+.3f}] over "
            f"{err['model'].nunique()} members"
            + "".join(
                f"; {k} not positive in {n}"
                for k, n in (~np.isfinite(err[["forecaster", *RIVALS]])).sum().items()
                if n
            )
            + f"; band coverage {cover:.2f}"
        )
        if truth_peaks:
            placed, errs = 0, []
            for model, t_peak in truth_peaks.items():
                got = ok.loc[ok["model"] == model, "peak_step"]
                if len(got) and math.isfinite(got.item()):
                    placed += 1
                    errs.append(abs(math.log(got.item() / t_peak)))
            text += (
                f"; peaks placed {placed}/{len(truth_peaks)}, median |log step error| "
                f"{np.median(errs) if errs else math.nan:.2f}"
            )
        print(f"{text} ({seconds:.0f} s)", flush=True)
    return tables


def main() -> None:
    """Backtest on the project's series and on a synthetic suite."""
    from massdyn.minisuite import grown_suite_data
    from massdyn.testing.curves import as_measurements, emergence_suite

    # The grown suite's data sets only: the length and schedule pilots reuse member names
    # (mini-d128-l4-h4) for runs of another length, which would be read as one series.
    tables = [pd.read_csv(f / "measurements.csv") for f in grown_suite_data()]
    suite = pd.concat(tables, ignore_index=True)
    backtest(suite, f"mini-suite ({suite['model'].nunique()} members)")

    synthetic = emergence_suite(8, seed=2024)
    series = {(f"{s['shape']} {i}", 0): (s["steps"], s["values"]) for i, s in enumerate(synthetic)}
    peaks = {
        f"{s['shape']} {i}": s["t_peak"] for i, s in enumerate(synthetic) if s["t_peak"] is not None
    }
    backtest(as_measurements(series), f"synthetic ({len(series)} series, 5% noise)", peaks)


if __name__ == "__main__":
    main()
