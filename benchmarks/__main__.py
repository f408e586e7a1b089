"""Run every benchmark, or those named on the command line (e.g. ``fitting``)."""

import sys

from benchmarks import bench_fitting

BENCHES = {"fitting": bench_fitting.main}

if __name__ == "__main__":
    names = sys.argv[1:] or list(BENCHES)
    for name in names:
        print(f"== {name} ==")
        BENCHES[name]()
