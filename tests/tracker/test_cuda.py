"""GPU checks; they run where CUDA is present (the CPU suite covers the same logic)."""

import numpy as np
import pytest
import torch

from massdyn.testing.synthetic import planted_model, tiny_config
from massdyn.tracker.measure import measure, median_abs, reduce_block_output
from massdyn.tracker.walker import resolve_device, resolve_dtype

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_reduction_on_gpu_equals_cpu(dtype):
    h = torch.randn(3, 257, 96, generator=torch.Generator().manual_seed(0)).to(dtype)
    cpu = reduce_block_output(h)
    gpu = {k: v.cpu() for k, v in reduce_block_output(h.cuda()).items()}
    for key in ("top", "median", "n_massive", "token", "dim"):
        np.testing.assert_allclose(gpu[key].numpy(), cpu[key].numpy(), rtol=1e-6)
    ref = np.median(np.abs(h.float().numpy().astype(np.float64)).reshape(3, -1), axis=1)
    np.testing.assert_allclose(
        median_abs(h.abs().reshape(3, -1).cuda()).cpu().numpy(), ref, rtol=1e-6
    )


def test_auto_picks_gpu_and_half_precision():
    device = resolve_device("auto")
    assert device.type == "cuda"
    assert resolve_dtype("auto", device) in (torch.bfloat16, torch.float16)


def test_measure_on_gpu_matches_hidden_states_in_bf16():
    config = tiny_config(n_layers=3)
    model = planted_model(config, step=1000).to("cuda", torch.bfloat16).eval()
    ids = torch.randint(0, config.vocab_size, (4, 64), generator=torch.Generator().manual_seed(1))
    table = measure(model, ids, batch_size=2)
    with torch.no_grad():
        hidden = model(input_ids=ids.cuda(), output_hidden_states=True).hidden_states
    for layer in range(2):
        a = np.abs(hidden[layer + 1].float().cpu().numpy().astype(np.float64)).reshape(4, -1)
        rows = table[table["layer"] == layer].sort_values("seq")
        np.testing.assert_allclose(rows["top1"].to_numpy(), a.max(axis=1), rtol=1e-6)
        np.testing.assert_allclose(rows["median"].to_numpy(), np.median(a, axis=1), rtol=1e-6)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_side_stream_reduction_equals_in_stream(dtype):
    # Big enough that the forward pass runs several blocks ahead of the reductions, so a
    # block output freed and reused too early would change the numbers.
    config = tiny_config(n_layers=6, hidden=512, heads=8)
    model = planted_model(config, step=1000).to("cuda", dtype).eval()
    ids = torch.randint(0, config.vocab_size, (8, 512), generator=torch.Generator().manual_seed(3))
    side = measure(model, ids, batch_size=4, overlap=True)
    same = measure(model, ids, batch_size=4, overlap=False)
    assert len(side) == 6 * 8
    np.testing.assert_array_equal(side.to_numpy(), same.to_numpy())
