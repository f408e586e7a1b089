"""Walker benchmarks, each a ratio measured side by side in one run.

1. Measurement overhead: ``measure`` (hooks + on-device reduction) over a bare base-model
   forward pass on the same model and inputs (target <= 1.05).
2. Against the original capture method (every layer's hidden state copied to the host as
   float64, then a full sort for top-3 and median): time and peak memory ratios (targets
   >= 10x and >= 5x). Peak memory is what the process adds on top of the loaded model
   (host RSS high-water mark, plus device memory on a GPU), each method in its own process.
3. A walk through a local Hub server (olah) with prefetch against download-then-measure.
4. Layer-streamed measurement (``--max-memory``) against loading the whole model, on a
   Pythia-410m-shaped checkpoint (24 layers, 1.6 GB in float32, random weights saved as
   safetensors): peak resident memory and time ratios (targets <= 1/4 and <= 1.3x), each
   walk in its own process, from the checkpoint on disk to the table.
5. The mechanisms (``walk --attention``, ``--super-weights``, ``--interventions``) against
   the plain measurement, interleaved on one model: attention sinks (target <= 1.5x), super
   weights (target <= 1.1x), and interventions on one layer, counted in forward passes of
   the whole LM (target: about one extra partial pass per intervened layer).

Models have the real Pythia configs (``data/pythia_configs``) and random weights. On a GPU:
Pythia-160m to 12b with the paper's 10 x 2048 inputs in bfloat16 (the overhead shrinks with
width, as the forward pass grows with d_model^2 and the reduction with d_model); on a CPU,
Pythia-160m with 2 x 512 tokens in float32.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from massdyn.data import read_json

VOCAB = 50304  # Pythia's padded vocabulary (the shipped configs omit it)
# Overhead on a GPU for these; the original-capture comparison (host float64 copies of
# every layer, then full sorts) only for the first two, where it takes seconds, not hours.
GPU_SHAPES = ("pythia-160m", "pythia-1b", "pythia-2.8b", "pythia-6.9b", "pythia-12b")


def _setup(shape: str, device: str):
    """A Pythia-shaped model (the real config from data/pythia_configs, random weights)."""

    from transformers import AutoModelForCausalLM, GPTNeoXConfig

    spec = read_json("pythia_configs", f"{shape}.json")
    spec = {k: v for k, v in spec.items() if not k.startswith("_") and k != "architectures"}
    cfg = GPTNeoXConfig(**{"vocab_size": VOCAB, **spec})
    torch.manual_seed(0)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    with torch.device(device):  # initialise where it runs: a 12b model in seconds
        model = AutoModelForCausalLM.from_config(cfg, dtype=dtype).to(device).eval()
    n, length = (10, 2048) if device == "cuda" else (2, 512)
    ids = torch.randint(0, VOCAB, (n, length), generator=torch.Generator().manual_seed(1))
    return model, ids


def _sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def bare_forward(model, ids, batch_size):
    """The base model's forward pass alone, as the walker batches it."""
    from massdyn.tracker.blocks import base_model

    body = base_model(model)
    device = next(model.parameters()).device
    with torch.inference_mode():
        for s in range(0, ids.shape[0], batch_size):
            body(input_ids=ids[s : s + batch_size].to(device), use_cache=False)


def original_capture(model, ids, batch_size):
    """The capture method of the original study: host float64 copies, full sorts."""
    from massdyn.tracker.blocks import base_model, decoder_blocks

    device = next(model.parameters()).device
    kept: list[list[np.ndarray]] = [[] for _ in decoder_blocks(model)]
    hooks = []
    for i, block in enumerate(decoder_blocks(model)):

        def hook(module, inputs, output, i=i):
            h = output[0] if isinstance(output, tuple) else output
            kept[i].append(h.detach().to("cpu", torch.float64).numpy())

        hooks.append(block.register_forward_hook(hook))
    with torch.inference_mode():
        for s in range(0, ids.shape[0], batch_size):
            base_model(model)(input_ids=ids[s : s + batch_size].to(device), use_cache=False)
    for h in hooks:
        h.remove()
    out = []
    for layer in kept:
        for h in np.concatenate(layer):
            a = np.sort(np.abs(h).ravel())
            out.append((a[-1], a[-2], a[-3], np.median(a)))
    return out


def ours(model, ids, batch_size):
    """The walker's measurement."""
    from massdyn.tracker.measure import measure

    return measure(model, ids, batch_size)


def ours_in_stream(model, ids, batch_size):
    """The walker's measurement with each reduction on the forward pass's own stream."""
    from massdyn.tracker.measure import measure

    return measure(model, ids, batch_size, overlap=False)


METHODS = {"bare": bare_forward, "ours": ours, "original": original_capture}


def _time(fn, model, ids, batch_size, device, repeats):
    times = []
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        fn(model, ids, batch_size)
        _sync(device)
        times.append(time.perf_counter() - t0)
    return times


def _interleaved(methods, model, ids, batch, device, repeats) -> dict[str, float]:
    """Median seconds of each method, after a warm-up, the methods taking turns."""
    times: dict[str, list[float]] = {name: [] for name in methods}
    for fn in methods.values():
        _time(fn, model, ids, batch, device, 1)  # warm-up
    for _ in range(repeats):
        for name, fn in methods.items():
            times[name] += _time(fn, model, ids, batch, device, 1)
    return {name: statistics.median(v) for name, v in times.items()}


def overhead(shape: str, device: str, batch: int, repeats: int = 5) -> None:
    """Print measure / bare forward, interleaved runs, medians."""
    model, ids = _setup(shape, device)
    methods = {"bare": bare_forward, "measured": ours}
    if device == "cuda":  # what overlapping the reductions with the forward pass buys
        methods["in-stream"] = ours_in_stream
    t = _interleaved(methods, model, ids, batch, device, repeats)
    line = (
        f"[1] {shape} on {device}, {tuple(ids.shape)} tokens, batch {batch}: bare forward "
        f"{t['bare'] * 1e3:.1f} ms, measured {t['measured'] * 1e3:.1f} ms -> ratio "
        f"{t['measured'] / t['bare']:.3f} (target <= 1.05)"
    )
    if "in-stream" in t:
        line += f"; reductions in the forward's stream: ratio {t['in-stream'] / t['bare']:.3f}"
    print(line)


def _child(method: str, shape: str, device: str) -> None:
    """Run one method in this (fresh) process and print its time and added peak memory."""
    import gc

    model, ids = _setup(shape, device)
    fn = METHODS[method]
    fn(model, ids[:1, :16], 1)  # load lazy imports and kernels before the baseline
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # reset the RSS high-water mark
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        dev_base = torch.cuda.memory_allocated()
    rss_base = _rss_kb("VmRSS")
    _sync(device)
    t0 = time.perf_counter()
    fn(model, ids, 1)
    _sync(device)
    seconds = time.perf_counter() - t0
    extra = (_rss_kb("VmHWM") - rss_base) * 1024
    if device == "cuda":
        extra += torch.cuda.max_memory_allocated() - dev_base
    print(json.dumps({"seconds": seconds, "extra_bytes": max(extra, 1)}))


def _rss_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _run_child(method, shape, device) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_tracker", "--child", method, shape, device],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def versus_original(shape: str, device: str) -> None:
    """Print time and peak-memory ratios of the original capture over ours."""
    r = {m: _run_child(m, shape, device) for m in ("bare", "ours", "original")}
    mb = {m: v["extra_bytes"] / 2**20 for m, v in r.items()}
    t_orig, t_ours = r["original"]["seconds"], r["ours"]["seconds"]
    print(
        f"[2] {shape} on {device}: original {t_orig:.2f} s / ours "
        f"{t_ours:.2f} s = {t_orig / t_ours:.1f}x time "
        f"(target >= 10x); added peak memory original {mb['original']:.0f} MiB / ours "
        f"{mb['ours']:.0f} MiB = {mb['original'] / mb['ours']:.1f}x (target >= 5x); "
        f"bare forward alone adds {mb['bare']:.0f} MiB"
    )


def prefetch_walk(n_steps: int = 6) -> None:
    """Print the wall time of a Hub walk with and without prefetch, through olah."""
    import os
    import shutil

    if not (shutil.which("olah-cli") or Path(sys.executable).with_name("olah-cli").exists()):
        print("[3] skipped: olah (the local Hub server) is not installed here")
        return

    from massdyn.testing.localhub import LocalHub
    from massdyn.testing.synthetic import SAMPLE_TEXT, tiny_config, tiny_tokenizer, write_series

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        tok = tiny_tokenizer()
        # Sized so that downloading a checkpoint through olah and measuring it take similar time.
        cfg = tiny_config(n_layers=4, hidden=256, heads=4, vocab=4096)
        steps = tuple(range(0, 100 * n_steps, 100))
        series = write_series(tmp / "series", steps, config=cfg, tokenizer=tok)
        for s in steps:
            for f in series.iterdir():
                if f.is_file():
                    (series / f"step{s}" / f.name).write_bytes(f.read_bytes())
        hub = LocalHub(tmp / "hub")
        hub.add_model_repo(
            "bench/series", {f"step{s}": series / f"step{s}" for s in steps}, lfs=True
        )
        hub.start("bench/series")
        (tmp / "t.txt").write_text(SAMPLE_TEXT * 400)
        try:
            times = {}
            for mode in ("--no-prefetch", "", "--no-prefetch", ""):
                env = {
                    **os.environ,
                    "HF_ENDPOINT": hub.url,
                    "HF_HUB_CACHE": str(tmp / f"c{len(times)}"),
                }
                args = [
                    "walk",
                    "bench/series",
                    "--text",
                    str(tmp / "t.txt"),
                    "--seqs",
                    "8",
                    "--seq-len",
                    "256",
                ]
                args += ["--device", "cpu", "--out", str(tmp / f"o{time.monotonic_ns()}")]
                t0 = time.perf_counter()
                subprocess.run(
                    [sys.executable, "-m", "massdyn.cli", *args, *([mode] if mode else [])],
                    env=env,
                    check=True,
                    capture_output=True,
                )
                times.setdefault(mode or "prefetch", []).append(time.perf_counter() - t0)
        finally:
            hub.stop()
    seq, pre = min(times["--no-prefetch"]), min(times["prefetch"])
    print(
        f"[3] Hub walk of {n_steps} checkpoints through olah: sequential {seq:.1f} s, "
        f"prefetch {pre:.1f} s -> speed-up {seq / pre:.2f}x (process start-up included)"
    )


STREAM_SHAPE = "pythia-410m"


def _stream_child(method: str, folder: str) -> None:
    """Measure the checkpoint in ``folder`` whole or streamed; print time and peak RSS."""
    import transformers.models.gpt_neox.modeling_gpt_neox  # noqa: F401 - both paths need it

    from massdyn.tracker.measure import measure
    from massdyn.tracker.streamed import measure_streamed
    from massdyn.tracker.walker import load_model

    ids = torch.randint(0, VOCAB, (4, 512), generator=torch.Generator().manual_seed(1))
    cpu = torch.device("cpu")
    base = _rss_kb("VmRSS")  # the interpreter and its libraries, before any weight
    Path("/proc/self/clear_refs").write_text("5")
    t0 = time.perf_counter()
    if method == "whole":
        table = measure(load_model(folder, cpu, torch.float32), ids, 2)
    else:
        table, _, _ = measure_streamed(folder, ids, 2, cpu, torch.float32)
    seconds = time.perf_counter() - t0
    peak = _rss_kb("VmHWM")
    print(json.dumps({"seconds": seconds, "peak_kb": peak, "base_kb": base, "rows": len(table)}))


def streamed_versus_whole(repeats: int = 2) -> None:
    """Print peak-RSS and time ratios of the streamed walk over the whole-model walk."""
    from transformers import AutoModelForCausalLM, GPTNeoXConfig

    spec = read_json("pythia_configs", f"{STREAM_SHAPE}.json")
    spec = {k: v for k, v in spec.items() if not k.startswith("_") and k != "architectures"}
    cfg = GPTNeoXConfig(**{"vocab_size": VOCAB, **spec})
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
        model.save_pretrained(tmp)
        gb = sum(p.numel() * 4 for p in model.parameters()) / 1e9
        del model
        runs: dict[str, list[dict]] = {"whole": [], "streamed": []}
        for _ in range(repeats):  # interleaved, so that drift hits both alike
            for method in runs:
                out = subprocess.run(
                    [sys.executable, "-m", "benchmarks.bench_tracker", "--stream-child"]
                    + [method, tmp],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                runs[method].append(json.loads(out.stdout.strip().splitlines()[-1]))
    t = {m: min(r["seconds"] for r in v) for m, v in runs.items()}
    peak = {m: max(r["peak_kb"] for r in v) / 2**10 for m, v in runs.items()}
    added = {m: max(r["peak_kb"] - r["base_kb"] for r in v) / 2**10 for m, v in runs.items()}
    print(
        f"[4] {STREAM_SHAPE}-shaped checkpoint ({cfg.num_hidden_layers} layers, {gb:.2f} GB "
        f"float32) on cpu, 4 x 512 tokens: peak RSS streamed {peak['streamed']:.0f} MiB / "
        f"whole {peak['whole']:.0f} MiB = {peak['streamed'] / peak['whole']:.2f} (target <= "
        f"0.25); above the interpreter and libraries {added['streamed']:.0f} / "
        f"{added['whole']:.0f} MiB = {added['streamed'] / added['whole']:.2f}; time streamed "
        f"{t['streamed']:.1f} s / whole {t['whole']:.1f} s = {t['streamed'] / t['whole']:.2f}x "
        "(target <= 1.3x)"
    )


def mechanisms_cost(shape: str, device: str, batch: int, repeats: int = 3) -> None:
    """Print each mechanism's time over the plain measurement's, interleaved, medians."""
    from massdyn.tracker.config import Mechanisms
    from massdyn.tracker.mechanisms import measure_mechanisms

    model, ids = _setup(shape, device)
    variants = {
        "plain": Mechanisms(),
        "attention": Mechanisms(attention=True),
        "super weights": Mechanisms(super_weights=True),
        "interventions": Mechanisms(interventions=(len(model.gpt_neox.layers) // 2,)),
    }

    def lm_forward(model, ids, batch_size):
        with torch.inference_mode():
            for s in range(0, len(ids), batch_size):
                model(input_ids=ids[s : s + batch_size], use_cache=False)

    runs = {
        name: (lambda m, i, b, v=v: measure_mechanisms(m, i, b, v)) for name, v in variants.items()
    }
    runs["LM forward"] = lm_forward
    t = _interleaved(runs, model, ids, batch, device, repeats)
    plain = t["plain"]
    passes = (t["interventions"] - plain) / t["LM forward"]
    # one unchanged pass of the LM (the base loss), then one pass per mode from the block on
    partial = (passes - 1) / 2
    print(
        f"[5] mechanisms, {shape} on {device}, {tuple(ids.shape)} tokens: plain "
        f"{plain * 1e3:.0f} ms; attention sinks x{t['attention'] / plain:.2f} (target <= 1.5), "
        f"super weights x{t['super weights'] / plain:.2f} (target <= 1.1), interventions on "
        f"the middle layer (zero and mean) +{passes:.2f} LM forward passes: the unchanged "
        f"pass and {partial:.2f} of a pass per mode (target: one partial pass per intervened "
        "layer and mode)"
    )


def main() -> None:
    """Run the five walker benchmarks on the best available device."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        for shape in GPU_SHAPES:
            for batch in (2, 10) if shape in GPU_SHAPES[:2] else (10,):
                overhead(shape, device, batch)
        originals = GPU_SHAPES[:2]
    else:
        overhead("pythia-160m", device, 2)
        originals = ("pythia-160m",)
    for shape in originals:
        versus_original(shape, device)
    prefetch_walk()
    streamed_versus_whole()
    mechanisms_cost("pythia-160m", device, 2 if device == "cpu" else 10)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(*sys.argv[2:5])
    elif len(sys.argv) > 1 and sys.argv[1] == "--stream-child":
        _stream_child(*sys.argv[2:4])
    else:
        main()
