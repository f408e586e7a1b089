"""The fused CUDA reduction against the torch reduction, on the GPU and, through Triton's
interpreter, on the CPU (so CPU-only CI checks the kernels' logic too)."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from massdyn.tracker import fused
from massdyn.tracker.measure import MASSIVE_ABS, MASSIVE_RATIO, reduce_block_output

CASES = [
    # (batch, tokens, d_model): one partial block; many blocks with a ragged last one.
    (2, 33, 64),
    (3, 211, 96),
]


def _planted(shape, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    b, t, d = shape
    scale = torch.rand(b, 1, d, generator=g) * 3
    h = torch.randn(b, t, d, generator=g) * scale
    h[0, 0, 5] = 6000.0  # massive in row 0 (median ~1, threshold ~1000)
    h[-1, t // 2, 7] = -3000.0  # massive and negative in the last row
    h[-1, 1, :3] = torch.tensor([50.0, -40.0, 30.0])  # top-2 and top-3 in top-1's block
    return h.to(dtype)


def _fused(h, device, graph):
    out = fused.reduce_fused(h.to(device), 3, MASSIVE_ABS, MASSIVE_RATIO, graph=graph)
    return {k: v.cpu() for k, v in out.items()}


def compare(device: str, graph: bool = False) -> None:
    """Assert the fused statistics equal the torch ones for planted and broken inputs."""
    for dtype in (torch.bfloat16, torch.float16):
        for seed, shape in enumerate(CASES):
            h = _planted(shape, dtype, seed)
            ref = reduce_block_output(h)  # CPU: the torch code
            got = _fused(h, device, graph)
            assert set(got) == set(ref)
            for key in ("top", "median", "n_massive", "token", "dim"):
                assert got[key].dtype == ref[key].dtype, key
                np.testing.assert_array_equal(got[key].numpy(), ref[key].numpy(), err_msg=key)
            np.testing.assert_allclose(got["mean"].numpy(), ref["mean"].numpy(), rtol=1e-5)
            assert got["n_massive"].tolist()[0] == 1
    # Numpy's two middle elements in different high bins (1.0: bin 127, 2.0: bin 128).
    h = torch.ones(2, 128, 64, dtype=torch.bfloat16)
    h[:, ::2] = -2.0
    assert _fused(h, device, graph)["median"].tolist() == [1.5, 1.5]
    # A NaN must not hide behind the kernels' max; an inf stays the top value.
    h = _planted(CASES[1], torch.bfloat16, 7)
    h[1, 3, 3] = float("nan")
    h[2, 4, 4] = float("inf")
    got = _fused(h, device, graph)["top"]
    assert np.isfinite(got[0].numpy()).all()
    assert np.isnan(got[1, 0].item())
    assert got[2, 0].item() == float("inf")


def test_fused_kernels_match_torch_reduction_in_triton_interpreter():
    pytest.importorskip("triton", reason="Triton is a dev dependency on x86-64 Linux")
    script = f"import runpy; runpy.run_path({__file__!r})['compare']('cpu')"
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]


def test_fused_path_is_only_taken_for_16_bit_cuda_tensors():
    assert not fused.available(torch.zeros(1, 2, 3, dtype=torch.bfloat16))
    if torch.cuda.is_available() and fused.triton is not None:
        assert fused.available(torch.zeros(1, 2, 3, dtype=torch.float16, device="cuda"))
        assert not fused.available(torch.zeros(1, 2, 3, device="cuda"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("graph", [False, True])
def test_fused_kernels_match_torch_reduction_on_gpu(graph):
    compare("cuda", graph)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_graph_replays_give_each_input_its_own_result():
    first, second = (_planted(CASES[1], torch.bfloat16, seed) for seed in (11, 12))
    a = _fused(first, "cuda", graph=True)
    b = _fused(second, "cuda", graph=True)  # same shape: the same graph, replayed
    for got, h in ((a, first), (b, second)):
        np.testing.assert_array_equal(got["median"].numpy(), reduce_block_output(h)["median"])
