"""Tiny checkpoint series with a planted massive activation, for offline trials and tests.

Not a trained model: the planted bias grows over the steps along an emergence-like curve
so that the measurements have a shape to fit.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

SAMPLE_TEXT = (
    "The quick brown fox jumps over the lazy dog. A stitch in time saves nine.\n"
    "To be, or not to be, that is the question. All that glitters is not gold.\n"
    "It was the best of times, it was the worst of times. Call me Ishmael.\n"
)


def tiny_tokenizer(text: str = SAMPLE_TEXT, vocab_size: int = 300):
    """A small BPE tokenizer trained on ``text`` (the sample text by default)."""
    from massdyn.minisuite.corpus import bpe_tokenizer

    return bpe_tokenizer([text], vocab_size)


def tiny_config(
    n_layers: int = 2, hidden: int = 32, heads: int = 4, vocab: int = 300, family: str = "gpt_neox"
):
    """A small config of a supported family (``gpt_neox``, ``llama`` or ``gpt2``)."""
    from transformers import GPT2Config, GPTNeoXConfig, LlamaConfig

    if family == "gpt_neox":
        return GPTNeoXConfig(
            vocab_size=vocab,
            hidden_size=hidden,
            num_hidden_layers=n_layers,
            num_attention_heads=heads,
            intermediate_size=4 * hidden,
            max_position_embeddings=512,
        )
    if family == "llama":
        return LlamaConfig(
            vocab_size=vocab,
            hidden_size=hidden,
            num_hidden_layers=n_layers,
            num_attention_heads=heads,
            num_key_value_heads=heads,
            intermediate_size=4 * hidden,
            max_position_embeddings=512,
            mlp_bias=True,  # the planted activation lives in down_proj's bias
        )
    if family == "gpt2":
        return GPT2Config(
            vocab_size=vocab, n_embd=hidden, n_layer=n_layers, n_head=heads, n_positions=512
        )
    raise ValueError(f"unknown family {family!r}")


def planted_model(config, step: int, seed: int = 0, dim: int = 3, scale: float = 8.0):
    """A randomly initialised causal LM with a planted, growing activation.

    The last block's MLP output bias carries ``scale * log(1 + step / 10)`` in ``dim``, so
    every token's residual stream holds a large value there.
    """
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    with torch.no_grad():
        last = model.base_model
        blocks = getattr(last, "layers", None) or last.h
        mlp = blocks[-1].mlp
        out = getattr(mlp, "dense_4h_to_h", None) or getattr(mlp, "down_proj", None) or mlp.c_proj
        if getattr(out, "bias", None) is None:
            out.bias = torch.nn.Parameter(torch.zeros(config.hidden_size))
        out.bias[dim] += scale * math.log1p(step / 10)
        # Perturb weights with the step so that every checkpoint differs, as in training.
        torch.manual_seed(seed + step + 1)
        for p in model.parameters():
            p.add_(1e-3 * torch.randn_like(p))
    return model


# A planted super weight: (layer, row = output dim, column = input dim) of the MLP's
# down-projection, fed by an input dim made large by its up-projection's bias.
SUPER_WEIGHT = (1, 5, 7)


def plant_super_weight(model, layer: int, row: int, col: int, value: float = 40.0):
    """Make ``W_down[row, col]`` of block ``layer`` a super weight (in place).

    The up-projection's bias drives input dim ``col`` of the down-projection to the
    largest value at every token, and the weight joining it to output dim ``row`` is
    ``value``: that output is then the block's MLP spike, at ``(row, col)``.
    """
    blocks = getattr(model.base_model, "layers", None) or model.base_model.h
    mlp = blocks[layer].mlp
    with torch.no_grad():
        if hasattr(mlp, "dense_4h_to_h"):  # GPT-NeoX
            mlp.dense_h_to_4h.bias[col] += 10.0
            mlp.dense_4h_to_h.weight[row, col] = value
        elif hasattr(mlp, "down_proj"):  # Llama (mlp_bias=True): silu(6) x 6 = 35.9
            mlp.gate_proj.bias[col] += 6.0
            mlp.up_proj.bias[col] += 6.0
            mlp.down_proj.weight[row, col] = value
        else:  # GPT-2: Conv1D stores W transposed
            mlp.c_fc.bias[col] += 10.0
            mlp.c_proj.weight[col, row] = value
    return model


def save_bin_shards(model, folder: str | Path, n_shards: int = 2) -> Path:
    """Save as ``pytorch_model-0000i-of-0000n.bin`` shards with an index.

    That is the layout of older Hub checkpoints; transformers 5 only writes safetensors.
    """
    import json

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.config.save_pretrained(folder)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    names = list(state)
    weight_map, total = {}, 0
    for i in range(n_shards):
        shard_name = f"pytorch_model-{i + 1:05d}-of-{n_shards:05d}.bin"
        shard = {k: state[k] for k in names[i::n_shards]}
        torch.save(shard, folder / shard_name)
        weight_map.update(dict.fromkeys(shard, shard_name))
        total += sum(t.numel() * t.element_size() for t in shard.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (folder / "pytorch_model.bin.index.json").write_text(json.dumps(index, indent=2))
    return folder


def write_series(
    root: str | Path,
    steps=(0, 10, 100, 1000),
    config=None,
    seed: int = 0,
    naming: str = "step{}",
    tokenizer=None,
    bin_shards: int = 0,
    super_weight: tuple[int, int, int] | None = None,
) -> Path:
    """Write a local checkpoint series: ``root/<naming.format(step)>/`` per step.

    With ``bin_shards > 0`` the weights are written as that many pickled ``.bin`` shards;
    with ``super_weight`` (layer, row, col) each checkpoint has that super weight planted,
    growing with the step (see :func:`plant_super_weight`).
    """
    root = Path(root)
    config = config or tiny_config()
    tokenizer = tokenizer or tiny_tokenizer()
    root.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(root)
    for step in steps:
        folder = root / naming.format(step)
        model = planted_model(config, step, seed)
        if super_weight is not None:
            plant_super_weight(model, *super_weight, value=20.0 + 10 * math.log1p(step))
        if bin_shards:
            save_bin_shards(model, folder, bin_shards)
        else:
            model.save_pretrained(folder)
    return root
