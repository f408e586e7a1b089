import numpy as np
import pytest
import torch
from torch import nn

from massdyn.testing.synthetic import planted_model, tiny_config
from massdyn.tracker.blocks import UnsupportedArchitectureError, decoder_blocks
from massdyn.tracker.measure import NonFiniteActivationsError, measure, reduce_block_output


def numpy_stats(h: np.ndarray):
    """Independent reference: full sort of |h| in float64, per sequence."""
    a = np.abs(h.astype(np.float64)).reshape(h.shape[0], -1)
    order = np.argsort(-a, axis=1, kind="stable")[:, :3]
    top = np.take_along_axis(a, order, axis=1)
    med = np.median(a, axis=1)
    massive = ((a > 100) & (a > 1000 * med[:, None])).sum(axis=1)
    return top, order // h.shape[2], order % h.shape[2], med, a.mean(axis=1), massive


@pytest.mark.parametrize("shape", [(2, 5, 7), (3, 4, 8), (1, 1, 3)])
def test_reduce_matches_numpy_for_odd_and_even_counts(shape):
    h = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    got = reduce_block_output(h)
    top, tok, dim, med, mean, massive = numpy_stats(h.numpy())
    np.testing.assert_allclose(got["top"].numpy(), top, rtol=1e-6)
    np.testing.assert_array_equal(got["token"].numpy(), tok)
    np.testing.assert_array_equal(got["dim"].numpy(), dim)
    np.testing.assert_allclose(got["median"].numpy(), med, rtol=1e-6)
    np.testing.assert_allclose(got["mean"].numpy(), mean, rtol=1e-5)
    np.testing.assert_array_equal(got["n_massive"].numpy(), massive)


def test_massive_rule_counts_entries_above_100_and_1000x_median():
    h = torch.full((1, 4, 8), 0.01)
    h[0, 0, 3] = 500.0  # > 100 and > 1000 x median (0.01): massive
    h[0, 2, 5] = -20.0  # > 1000 x median but not > 100: not massive
    got = reduce_block_output(h)
    assert got["n_massive"].item() == 1
    assert (got["token"][0, 0].item(), got["dim"][0, 0].item()) == (0, 3)
    assert got["top"][0, 1].item() == pytest.approx(20.0)


@pytest.mark.parametrize("family", ["gpt_neox", "llama", "gpt2"])
def test_walker_numbers_equal_hidden_states_reference(family):
    config = tiny_config(n_layers=3, family=family)
    model = planted_model(config, step=1000).eval()
    ids = torch.randint(0, config.vocab_size, (3, 17), generator=torch.Generator().manual_seed(1))
    table = measure(model, ids, batch_size=2)
    assert sorted(table["layer"].unique()) == [0, 1, 2]
    with torch.no_grad():
        hidden = model(input_ids=ids, output_hidden_states=True).hidden_states
    # hidden_states[l + 1] is block l's output except for the last, taken after the final norm.
    for layer in range(config.num_hidden_layers - 1):
        top, tok, dim, med, mean, massive = numpy_stats(hidden[layer + 1].numpy())
        rows = table[table["layer"] == layer].sort_values("seq")
        np.testing.assert_allclose(rows[["top1", "top2", "top3"]].to_numpy(), top, rtol=1e-6)
        np.testing.assert_array_equal(
            rows[["top1_token", "top2_token", "top3_token"]].to_numpy(), tok
        )
        np.testing.assert_array_equal(rows[["top1_dim", "top2_dim", "top3_dim"]].to_numpy(), dim)
        np.testing.assert_allclose(rows["median"].to_numpy(), med, rtol=1e-6)
        np.testing.assert_allclose(rows["mean"].to_numpy(), mean, rtol=1e-5)
        np.testing.assert_array_equal(rows["n_massive"].to_numpy(), massive)


def test_last_block_is_the_residual_not_the_final_norm():
    config = tiny_config(n_layers=2)
    model = planted_model(config, step=1000).eval()
    ids = torch.arange(12).reshape(1, 12)
    table = measure(model, ids)
    last = table[table["layer"] == 1]
    # The planted bias (8 log 101 ~ 37) lives in the residual; the final norm rescales it away.
    assert last["top1"].item() > 30
    assert (last["top1_dim"] == 3).all()
    with torch.no_grad():
        normed = model(input_ids=ids, output_hidden_states=True).hidden_states[-1]
    assert normed.abs().max().item() < last["top1"].item() / 2


def test_batch_size_does_not_change_results():
    model = planted_model(tiny_config(), step=100).eval()
    ids = torch.randint(0, 300, (5, 9), generator=torch.Generator().manual_seed(2))
    a = measure(model, ids, batch_size=1)
    b = measure(model, ids, batch_size=5)
    np.testing.assert_allclose(
        a[["top1", "median"]].to_numpy(), b[["top1", "median"]].to_numpy(), rtol=1e-5
    )


def test_no_hidden_state_is_kept():
    model = planted_model(tiny_config(), step=100).eval()
    ids = torch.randint(0, 300, (2, 9))
    from massdyn.tracker.measure import ActivationRecorder

    with ActivationRecorder(model) as rec:
        model.base_model(input_ids=ids)
    for parts in rec._parts:
        for part in parts:
            assert part.shape == (2, 3 * 3 + 3)
    assert not any(b._forward_hooks for b in decoder_blocks(model))  # hooks removed


def test_nan_activations_are_reported():
    model = planted_model(tiny_config(), step=10).eval()
    with torch.no_grad():
        model.base_model.layers[1].mlp.dense_4h_to_h.bias[0] = float("nan")
    with pytest.raises(NonFiniteActivationsError, match=r"layer\(s\) \[1\]"):
        measure(model, torch.zeros((1, 4), dtype=torch.long))


class NotATransformer(nn.Module):
    def __init__(self):
        super().__init__()
        self.config = type("Cfg", (), {"model_type": "mystery", "num_hidden_layers": 3})()
        self.stack = nn.ModuleList([nn.Linear(2, 2) for _ in range(2)])


def test_unmappable_architecture_is_a_clear_error():
    with pytest.raises(UnsupportedArchitectureError, match="model type 'mystery'.*gpt_neox"):
        decoder_blocks(NotATransformer())


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("n", [1, 2, 7, 8, 1001])
def test_every_median_method_is_exact(dtype, n):
    from massdyn.tracker.measure import _median_16bit, _median_radix32, _median_select, _median_sort

    a = torch.randn(3, n, generator=torch.Generator().manual_seed(n)).abs().to(dtype)
    a[0, : n // 2 + 1] = a[0, 0]  # many ties at the middle
    ref = np.median(a.float().numpy().astype(np.float64), axis=1)
    bits = [_median_radix32] if dtype == torch.float32 else [_median_16bit]
    methods = [_median_select, _median_sort, *bits]
    for method in methods:
        np.testing.assert_allclose(method(a).numpy(), ref, rtol=1e-7, err_msg=method.__name__)
