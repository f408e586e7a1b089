"""Suite walks on a served suite: what the audit saves, and wall time against shard count.

Six tiny series, served by olah (a real Hub-compatible server) behind a counting proxy,
each with the duplication seen in Pythia: step1 serves step0's weights, and the last
three branches serve the final weights (as pythia-2.8b's final-era branches do). Printed,
side by side in one run: bytes the server sent and wall time with the audit (duplicates
skipped) against without (``--duplicates measure``), each with and without prefetch (the
Hub cache shares blobs, so a duplicate fetched while its twin is still cached costs
nothing either way); then the wall time of the whole suite walked with 1, 2 and 4 shard
processes (``--jobs``). Process start-up is included: tiny models measure in milliseconds.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

N_SERIES = 6
STEPS = (0, 1, 2, 4, 8, 16, 32, 64)


def _served_suite(tmp: Path):
    from massdyn.testing.localhub import LocalHub
    from massdyn.testing.synthetic import tiny_config, tiny_tokenizer, write_series

    tok = tiny_tokenizer()
    hub = LocalHub(tmp / "hub")
    repos = []
    for i in range(N_SERIES):
        distinct = (0, 2, 4, 8, 16)
        series = write_series(
            tmp / f"s{i}",
            distinct,
            config=tiny_config(n_layers=4, hidden=128),
            seed=i,
            tokenizer=tok,
        )
        for s in distinct:
            for f in series.iterdir():
                if f.is_file():
                    shutil.copy(f, series / f"step{s}" / f.name)
        folder = {0: 0, 1: 0, 2: 2, 4: 4, 8: 8, 16: 16, 32: 16, 64: 16}
        repo = f"bench/series-{i}"
        hub.add_model_repo(repo, {f"step{s}": series / f"step{folder[s]}" for s in STEPS}, lfs=True)
        repos.append(repo)
    return hub, repos


def _walk(repos, proxy, tmp: Path, text: Path, *extra) -> tuple[float, int]:
    before = proxy.body_bytes
    out = tmp / f"o{time.monotonic_ns()}"
    env = {
        **os.environ,
        "HF_ENDPOINT": proxy.url,
        "HF_HUB_CACHE": str(tmp / f"c{time.monotonic_ns()}"),
        "HF_HUB_DISABLE_XET": "1",
    }
    args = ["walk", *repos, "--text", str(text), "--seqs", "4", "--seq-len", "64"]
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "massdyn.cli", *args, "--device", "cpu", "--out", str(out), *extra],
        env=env,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - t0, proxy.body_bytes - before


def main() -> None:
    """Print the audit's savings and the shard-count timings."""
    if not (shutil.which("olah-cli") or Path(sys.executable).with_name("olah-cli").exists()):
        print("[suite] skipped: olah (the local Hub server) is not installed here")
        return
    from massdyn.testing.synthetic import SAMPLE_TEXT
    from massdyn.testing.throttle import ThrottlingProxy

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        hub, repos = _served_suite(tmp)
        hub.start(repos[0])
        proxy = ThrottlingProxy(hub.url).start()
        text = tmp / "t.txt"
        text.write_text(SAMPLE_TEXT * 200)
        try:
            for prefetch in ((), ("--no-prefetch",)):
                t_skip, b_skip = _walk(repos, proxy, tmp, text, *prefetch)
                t_all, b_all = _walk(repos, proxy, tmp, text, "--duplicates", "measure", *prefetch)
                label = "no prefetch" if prefetch else "prefetch"
                print(
                    f"[suite] {N_SERIES} series x {len(STEPS)} revisions (3 of 8 duplicates "
                    f"each), {label}: audit {b_skip / 1e6:.1f} MB in {t_skip:.1f} s, without "
                    f"{b_all / 1e6:.1f} MB in {t_all:.1f} s -> bytes {b_skip / b_all:.2f}x, "
                    f"time {t_skip / t_all:.2f}x",
                    flush=True,
                )
            times = {n: _walk(repos, proxy, tmp, text, "--jobs", str(n))[0] for n in (1, 2, 4)}
            print(
                f"[suite] whole suite with --jobs 1 / 2 / 4 on {os.cpu_count()} CPUs: "
                f"{times[1]:.1f} / {times[2]:.1f} / {times[4]:.1f} s -> speed-up "
                f"{times[1] / times[2]:.2f}x, {times[1] / times[4]:.2f}x",
                flush=True,
            )
        finally:
            proxy.stop()
            hub.stop()


if __name__ == "__main__":
    main()
