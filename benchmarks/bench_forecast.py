"""Forecast backtests: observe the first 10%, 25%, 50% of every series, forecast the rest.

On every series of the grown mini-suite (the shipped members, their seed replicates and the
design's members: 8000 steps each) and on a synthetic suite with known
parameters spanning the paper's shapes (rising, early peak, late peak, pure log) on
Pythia's 154-step schedule with 5% multiplicative noise. Printed per truncation: median
|log error| of the forecast value at the last step, against two baselines measured on the
same series in the same run (the last observed value carried forward; a straight line in
log-step through the last third of the observed points); the share of the unobserved
points inside the 10-90% band (calibrated: about 0.80); and, on the synthetic series whose
curve peaks before the end, how often the forecast places a peak and the median
|log(forecast peak step / true peak step)| of those it places.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd

from massdyn.fitting.forecast import forecast_measurements, last_value_baseline, log_line_baseline

FRACTIONS = (0.10, 0.25, 0.50)


def backtest(measurements: pd.DataFrame, label: str, truth_peaks: dict | None = None) -> None:
    """Print one line per truncation for the series of ``measurements``."""
    from massdyn.fitting.batch import aggregate

    series = aggregate(measurements, "ratio")
    end = float(series["step"].max())
    for frac in FRACTIONS:
        upto = frac * end
        t0 = time.perf_counter()
        rows, summary = forecast_measurements(measurements, end, upto, steps=[end])
        seconds = time.perf_counter() - t0
        ok = summary[summary["status"] == "ok"]
        err, last, line = [], [], []
        for (model, layer), grp in series.groupby(["model", "layer"]):
            t, y = grp["step"].to_numpy(float), grp["value"].to_numpy(float)
            seen = t <= upto
            s = ok[(ok["model"] == model) & (ok["layer"] == layer)]
            if s.empty or seen.sum() < 3:
                continue
            final = y[-1]
            err.append(abs(math.log(s["final"].item() / final)))
            last.append(abs(math.log(last_value_baseline(t[seen], y[seen], [end])[0] / final)))
            guess = log_line_baseline(t[seen], y[seen], [end])[0]
            line.append(abs(math.log(guess / final)) if guess > 0 else math.inf)
        later = rows[rows["measured"].notna()]
        cover = ((later["measured"] >= later["lo"]) & (later["measured"] <= later["hi"])).mean()
        text = (
            f"{label}, observe {frac:.0%}: {len(ok)}/{len(summary)} series forecast; median |log "
            f"error| at step {end:g}: forecaster {np.median(err):.3f}, last value "
            f"{np.median(last):.3f}, log-line {np.median(line):.3f}; band coverage {cover:.2f}"
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
