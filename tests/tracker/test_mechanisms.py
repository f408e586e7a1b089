"""Attention sinks, super weights and interventions, each against a reference written here."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from massdyn.testing.synthetic import SUPER_WEIGHT, planted_model, tiny_config, write_series
from massdyn.tracker.config import Mechanisms
from massdyn.tracker.measure import measure
from massdyn.tracker.mechanisms import intervene, measure_mechanisms, sink_metric
from massdyn.tracker.streamed import measure_streamed
from tests.conftest import run_cli

BOTH = Mechanisms(attention=True, super_weights=True)


def _config(kind: str):
    """Tiny configs: GPT-NeoX, Llama, Llama with grouped KV heads, Mistral with a window."""
    if kind == "mistral-window":
        from transformers import MistralConfig

        return MistralConfig(
            vocab_size=300,
            hidden_size=32,
            num_hidden_layers=3,
            num_attention_heads=4,
            num_key_value_heads=2,
            intermediate_size=128,
            max_position_embeddings=512,
            sliding_window=6,  # shorter than the 17-token inputs: the mask cuts key 0 off
        )
    config = tiny_config(n_layers=3, family="llama" if kind.startswith("llama") else kind)
    if kind == "llama-gqa":
        config.num_key_value_heads = 2
    return config


def _ids(vocab: int, n: int = 3, length: int = 17) -> torch.Tensor:
    return torch.randint(0, vocab, (n, length), generator=torch.Generator().manual_seed(1))


def eager_reference(model, ids):
    """Sink share per (layer, head) from the full attention matrices of eager attention."""
    model.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            out = model(input_ids=ids, output_attentions=True, output_hidden_states=True)
    finally:
        model.set_attn_implementation("sdpa")
    shares = np.stack([a[:, :, 1:, 0].double().mean(-1).mean(0).numpy() for a in out.attentions])
    # hidden_states[l + 1] is block l's output, but for the last (after the final norm)
    norms = [h[:, 0].double().norm(dim=-1).mean().item() for h in out.hidden_states[1:-1]]
    return shares, norms


@pytest.mark.parametrize("kind", ["gpt_neox", "llama", "llama-gqa", "mistral-window"])
def test_sink_share_equals_eager_attention(kind):
    config = _config(kind)
    model = planted_model(config, step=100).eval()
    ids = _ids(config.vocab_size)
    plain = measure(model, ids, batch_size=2)
    table, tables = measure_mechanisms(model, ids, 2, BOTH)
    pd.testing.assert_frame_equal(table, plain)  # the recorders change nothing measured
    assert model.config._attn_implementation == "sdpa"  # restored after the with block
    attention = tables["attention"]
    assert list(attention.columns) == ["layer", "head", "sink_share", "pos0_norm"]
    shares, norms = eager_reference(model, ids)
    got = attention.pivot(index="layer", columns="head", values="sink_share").to_numpy()
    np.testing.assert_allclose(got, shares, rtol=1e-5, atol=1e-7)
    per_layer = attention.groupby("layer")["pos0_norm"].first().to_numpy()
    np.testing.assert_allclose(per_layer[:-1], norms, rtol=1e-5)
    if kind == "mistral-window":
        # queries past the window cannot see key 0: the share is a mean with zeros in it
        assert (got < 0.5).all()


def test_the_sink_metric_counts_heads_above_epsilon():
    attention = pd.DataFrame(
        {"layer": [0, 0, 0, 0, 1, 1], "head": [0, 1, 2, 3, 0, 1]}
        | {"sink_share": [0.9, 0.31, 0.3, 0.0, 0.1, 0.2]}
    )
    metric = sink_metric(attention).set_index("layer")["sink_metric"]
    assert metric.to_dict() == {0: 0.5, 1: 0.0}  # > 0.3, strictly (Gu et al.)


@pytest.mark.parametrize("family", ["gpt_neox", "llama"])
def test_streamed_mechanisms_equal_the_whole_models(family, tmp_path):
    config = tiny_config(n_layers=3, family=family)
    model = planted_model(config, step=100).eval()
    model.save_pretrained(tmp_path / "ck")
    ids = _ids(config.vocab_size)
    _, whole = measure_mechanisms(model, ids, 2, BOTH)
    _, _, streamed = measure_streamed(tmp_path / "ck", ids, 2, "cpu", torch.float32, False, BOTH)
    for name in ("attention", "superweights"):
        pd.testing.assert_frame_equal(streamed[name], whole[name], check_exact=True)


def _hand_loss(model, ids, layer, table, mode):
    """The reference: a hook written here, then the mean token cross-entropy by hand."""
    rows = table[table["layer"] == layer].set_index("seq")

    def hook(module, inputs, output):
        h = (output[0] if isinstance(output, tuple) else output).clone()
        for seq in range(h.shape[0]):
            pairs = [
                (int(rows.at[seq, f"top{i}_token"]), int(rows.at[seq, f"top{i}_dim"]))
                for i in (1, 2, 3)
            ]
            for token, dim in pairs:
                if mode == "zero":
                    h[seq, token, dim] = 0.0
                else:
                    others = [t for t in range(h.shape[1]) if (t, dim) not in pairs]
                    h[seq, token, dim] = h[seq, others, dim].mean()
        return (h, *output[1:]) if isinstance(output, tuple) else h

    blocks = getattr(model.base_model, "layers", None) or model.base_model.h
    handle = blocks[layer].register_forward_hook(hook) if layer is not None else None
    try:
        with torch.no_grad():
            logits = model(input_ids=ids).logits
    finally:
        if handle:
            handle.remove()
    logp = torch.log_softmax(logits[:, :-1].double(), dim=-1)
    return -logp.gather(-1, ids[:, 1:, None]).mean().item()


@pytest.mark.parametrize("family", ["gpt_neox", "llama"])
def test_interventions_equal_a_hand_written_hook(family):
    config = tiny_config(n_layers=3, family=family)
    model = planted_model(config, step=1000).eval()
    ids = _ids(config.vocab_size)
    table = measure(model, ids, batch_size=2)
    got = intervene(model, ids, table, None, batch_size=2).set_index(["layer", "mode"])
    assert len(got) == 3 * 2
    base = _hand_loss(model, ids, None, table, "zero")
    np.testing.assert_allclose(got["loss_base"], base, rtol=1e-6)
    for layer in range(3):
        for mode in ("zero", "mean"):
            want = _hand_loss(model, ids, layer, table, mode)
            assert got.loc[(layer, mode), "loss"] == pytest.approx(want, rel=1e-6)
    # The planted dim (3) of the last block is the top-1: zeroing it changes the loss.
    assert got.loc[(2, "zero"), "loss"] != pytest.approx(base, rel=1e-4)


@pytest.fixture(scope="module")
def planted_series(tmp_path_factory, tokenizer):
    root = tmp_path_factory.mktemp("planted")
    deep = tiny_config(n_layers=4, family="llama")
    return {
        "neox": write_series(
            root / "neox",
            (0, 10, 100),
            config=tiny_config(n_layers=4),
            tokenizer=tokenizer,
            super_weight=SUPER_WEIGHT,
        ),
        "llama": write_series(
            root / "llama",
            (0, 10, 100),
            config=deep,
            tokenizer=tokenizer,
            super_weight=SUPER_WEIGHT,
        ),
    }


def walk_args(text_file, out):
    return ["--text", text_file, "--seqs", 2, "--seq-len", 16, "--bos", "--out", out]


@pytest.mark.slow
@pytest.mark.parametrize("family", ["neox", "llama"])
def test_the_walk_finds_a_planted_super_weight_at_every_checkpoint(
    planted_series, text_file, tmp_path, family
):
    out = tmp_path / "o"
    args = walk_args(text_file, out)
    done = run_cli("walk", planted_series[family], *args, "--device", "cpu", "--super-weights")
    assert done.returncode == 0, done.stderr
    sw = pd.read_csv(out / "superweights.csv")
    assert sorted(sw["step"].unique()) == [0, 10, 100]
    layer, row, col = SUPER_WEIGHT
    planted = sw[sw["layer"] == layer]
    assert (planted["row"] == row).all() and (planted["col"] == col).all()
    np.testing.assert_allclose(
        planted["weight"], [20.0 + 10 * np.log1p(s) for s in planted["step"]], rtol=1e-6
    )
    assert planted["stands_out"].all()
    assert not sw.loc[sw["layer"] == 0, "stands_out"].any()


@pytest.mark.slow
def test_walk_records_every_mechanism_and_resumes(series, text_file, tmp_path):
    out = tmp_path / "o"
    args = [*walk_args(text_file, out), "--device", "cpu"]
    first = run_cli("walk", series, *args)
    assert first.returncode == 0, first.stderr
    plain = pd.read_csv(out / "measurements.csv")
    # Asked for more later: every checkpoint is measured again for the new tables.
    more = run_cli("walk", series, *args, "--attention", "--super-weights", "--interventions", "1")
    assert more.returncode == 0, more.stderr
    assert "0 already measured, 4 measured now" in more.stdout
    assert f"{out}/attention.csv, {out}/superweights.csv, {out}/interventions.csv" in more.stdout
    pd.testing.assert_frame_equal(pd.read_csv(out / "measurements.csv"), plain)
    attention = pd.read_csv(out / "attention.csv")
    n_steps, n_layers, n_heads = 4, 2, 4
    assert len(attention) == n_steps * n_layers * n_heads
    assert attention["sink_share"].between(0, 1).all()
    interventions = pd.read_csv(out / "interventions.csv")
    assert list(interventions.columns) == ["model", "step", "layer", "mode", "loss_base", "loss"]
    assert set(interventions["layer"]) == {1} and len(interventions) == n_steps * 2
    assert len(pd.read_csv(out / "superweights.csv")) == n_steps * n_layers
    again = run_cli("walk", series, *args, "--attention", "--super-weights", "--interventions", "1")
    assert "4 already measured, 0 measured now" in again.stdout


@pytest.mark.parametrize(
    "flag, edit, says",
    [
        (["--interventions", "9"], None, "--interventions: layer 9 is past the model"),
        (["--interventions", "x"], None, "--interventions 'x': give layer indices"),
        (["--interventions"], ["GPTNeoXModel"], "has no language-model head"),
    ],
)
def test_bad_mechanism_settings_exit_2_with_one_line(
    tmp_path, tokenizer, text_file, flag, edit, says
):
    series = write_series(tmp_path / "s", (0, 10), tokenizer=tokenizer)
    if edit:
        for config in series.glob("step*/config.json"):
            data = json.loads(config.read_text())
            config.write_text(json.dumps({**data, "architectures": edit}))
    out = tmp_path / "o"
    bad = run_cli("walk", series, *walk_args(text_file, out), "--device", "cpu", *flag)
    assert bad.returncode == 2 and says in bad.stderr, bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    assert not (out / "measurements.csv").exists()


def test_a_family_outside_the_attention_interface_is_refused():
    from massdyn.tracker.mechanisms import MechanismError, SinkRecorder

    model = planted_model(tiny_config(n_layers=2), step=0).eval()
    model._supports_attention_backend = False  # as families with attention of their own
    refused = pytest.raises(MechanismError, match="outside transformers' attention interface")
    with refused, SinkRecorder(model):
        pass


def test_a_down_projection_the_data_does_not_name_is_refused():
    from massdyn.tracker.mechanisms import MechanismError, down_projections

    class Bare(nn.Module):
        config = type("C", (), {"model_type": "unheard-of"})()

    with pytest.raises(MechanismError, match='add "down_proj"'):
        down_projections(Bare())


def test_interventions_run_only_the_blocks_after_the_changed_one():
    """A partial pass where the family chains its blocks; else whole passes, same numbers."""
    config = tiny_config(n_layers=3)
    model = planted_model(config, step=1000).eval()
    ids = _ids(config.vocab_size, n=4)
    table = measure(model, ids, batch_size=2)
    blocks = model.base_model.layers
    calls = []
    counting = blocks[0].attention.register_forward_hook(lambda *a: calls.append(1))
    partial = intervene(model, ids, table, [2], batch_size=2)
    assert len(calls) == 2  # the two unchanged passes only: block 0 is skipped after
    # A family that touches the hidden states between blocks cannot resume mid-model.
    touched = blocks[1].register_forward_pre_hook(lambda module, args: (args[0] * 1.0, *args[1:]))
    calls.clear()
    whole = intervene(model, ids, table, [2], batch_size=2)
    counting.remove()
    touched.remove()
    assert len(calls) == 2 * 3  # every pass ran block 0
    pd.testing.assert_frame_equal(partial, whole)
    want = _hand_loss(model, ids, 2, table, "zero")
    assert partial.set_index("mode").loc["zero", "loss"] == pytest.approx(want, rel=1e-6)


def test_sink_share_of_eager_attention_with_softcapping():
    """Gemma 2 runs eager attention by default, with logit soft-capping and local layers."""
    from transformers import AutoModelForCausalLM, Gemma2Config

    config = Gemma2Config(
        vocab_size=300,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        intermediate_size=64,
        sliding_window=6,
        attn_logit_softcapping=1.0,
    )
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config).eval()
    with torch.no_grad():  # logits of a few units, where the capping changes them
        for block in model.model.layers:
            block.self_attn.q_proj.weight.mul_(30.0)
            block.self_attn.k_proj.weight.mul_(30.0)
    assert model.config._attn_implementation == "eager"
    ids = _ids(config.vocab_size)
    _, tables = measure_mechanisms(model, ids, 2, Mechanisms(attention=True))
    got = tables["attention"].pivot(index="layer", columns="head", values="sink_share")
    model.set_attn_implementation("eager")
    with torch.no_grad():
        attentions = model(input_ids=ids, output_attentions=True).attentions
    want = np.stack([a[:, :, 1:, 0].double().mean(-1).mean(0).numpy() for a in attentions])
    np.testing.assert_allclose(got.to_numpy(), want, rtol=1e-5, atol=1e-7)
    assert model.config._attn_implementation == "eager"
