"""Run every benchmark, or those named on the command line (``fitting``, ``forecast``,
``suite``, ``tracker``)."""

import sys

from benchmarks import bench_fitting, bench_forecast, bench_suite, bench_tracker

BENCHES = {
    "fitting": bench_fitting.main,
    "forecast": bench_forecast.main,
    "suite": bench_suite.main,
    "tracker": bench_tracker.main,
}

if __name__ == "__main__":
    names = sys.argv[1:] or list(BENCHES)
    for name in names:
        print(f"== {name} ==", flush=True)
        BENCHES[name]()
