"""Massive-activation statistics of every decoder block's output, reduced on the device.

A forward hook on each block reduces its output ``h`` (batch, tokens, d_model) to a few
numbers per sequence as soon as it is produced, so no layer's hidden state is kept or
copied to the host. Per sequence and layer: the top-k of ``|h|`` over all tokens x dims with
the (token, dim) of each, the median and mean of ``|h|``, and the count of entries meeting
the classic massive-activation rule ``|a| > 100`` and ``|a| > 1000 * median`` (arXiv
2402.17762).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import nn

from tracker.blocks import base_model, decoder_blocks

TOP_K = 3
MASSIVE_ABS = 100.0
MASSIVE_RATIO = 1000.0


def reduce_block_output(h: torch.Tensor, k: int = TOP_K) -> dict[str, torch.Tensor]:
    """Per-sequence statistics of one block output, computed where ``h`` lives.

    Args:
        h: ``(batch, tokens, d_model)`` block output.
        k: How many of the largest ``|h|`` to keep.

    Returns:
        Tensors with leading dimension ``batch``: ``top`` (batch, k) values, ``token`` and
        ``dim`` (batch, k) positions, ``median``, ``mean`` (float32) and ``n_massive``.
        The median of an even count is the mean of the two middle values (numpy's rule).
    """
    b, n_tok, d = h.shape
    a = h.detach().abs().reshape(b, n_tok * d)
    top, idx = torch.topk(a, k, dim=1)
    n = a.shape[1]
    lower = torch.kthvalue(a, (n + 1) // 2, dim=1).values.float()
    if n % 2 == 0:
        upper = torch.kthvalue(a, n // 2 + 1, dim=1).values.float()
        median = (lower + upper) / 2
    else:
        median = lower
    mean = torch.mean(a, dim=1, dtype=torch.float32)
    threshold = torch.clamp(median * MASSIVE_RATIO, min=MASSIVE_ABS)
    n_massive = (a > threshold.to(a.dtype)[:, None]).sum(dim=1)
    return {
        "top": top.float(),
        "token": torch.div(idx, d, rounding_mode="floor"),
        "dim": idx % d,
        "median": median,
        "mean": mean,
        "n_massive": n_massive,
    }


@dataclass
class _LayerBuffer:
    parts: list[dict[str, torch.Tensor]] = field(default_factory=list)


class ActivationRecorder:
    """Forward hooks on every decoder block that reduce outputs on the fly.

    Use as a context manager around forward passes of the base model; then
    :meth:`table` returns one row per (layer, sequence).

    Args:
        model: A transformers causal LM (or its base model).
        k: How many largest ``|h|`` entries to keep per sequence and layer.
    """

    def __init__(self, model: nn.Module, k: int = TOP_K):
        self.model = model
        self.k = k
        self._blocks = decoder_blocks(model)
        self._buffers = [_LayerBuffer() for _ in self._blocks]
        self._handles: list = []

    @property
    def n_layers(self) -> int:
        """Number of decoder blocks hooked."""
        return len(self._blocks)

    def _hook(self, layer: int):
        def fn(module, inputs, output):
            h = output[0] if isinstance(output, tuple | list) else output
            self._buffers[layer].parts.append(reduce_block_output(h, self.k))

        return fn

    def __enter__(self) -> ActivationRecorder:
        self._handles = [b.register_forward_hook(self._hook(i)) for i, b in enumerate(self._blocks)]
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def table(self) -> pd.DataFrame:
        """Rows ``layer, seq, top1..k, top{i}_token, top{i}_dim, median, mean, n_massive``."""
        frames = []
        for layer, buf in enumerate(self._buffers):
            if not buf.parts:
                continue
            cat = {
                key: torch.cat([p[key] for p in buf.parts]).cpu().numpy() for key in buf.parts[0]
            }
            n_seq = cat["median"].shape[0]
            cols: dict[str, np.ndarray] = {"layer": np.full(n_seq, layer), "seq": np.arange(n_seq)}
            for i in range(self.k):
                cols[f"top{i + 1}"] = cat["top"][:, i].astype(np.float64)
            cols["median"] = cat["median"].astype(np.float64)
            cols["mean"] = cat["mean"].astype(np.float64)
            cols["n_massive"] = cat["n_massive"].astype(np.int64)
            for i in range(self.k):
                cols[f"top{i + 1}_token"] = cat["token"][:, i].astype(np.int64)
                cols[f"top{i + 1}_dim"] = cat["dim"][:, i].astype(np.int64)
            frames.append(pd.DataFrame(cols))
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


class NonFiniteActivationsError(RuntimeError):
    """Some block output held NaN or inf."""


@torch.inference_mode()
def measure(
    model: nn.Module, input_ids: torch.Tensor | np.ndarray, batch_size: int = 1
) -> pd.DataFrame:
    """Measure every decoder block of ``model`` on fixed inputs.

    Runs the base model only (no LM head), in batches of ``batch_size`` sequences.

    Args:
        model: A transformers causal LM in eval mode, on its device.
        input_ids: ``(n_seqs, seq_len)`` token ids.
        batch_size: Sequences per forward pass.

    Returns:
        One row per (layer, seq); see :meth:`ActivationRecorder.table`.

    Raises:
        NonFiniteActivationsError: naming the layers whose outputs held NaN or inf.
    """
    device = next(model.parameters()).device
    ids = torch.as_tensor(np.asarray(input_ids), dtype=torch.long)
    body = base_model(model)
    with ActivationRecorder(model) as rec:
        for start in range(0, ids.shape[0], batch_size):
            body(input_ids=ids[start : start + batch_size].to(device), use_cache=False)
    table = rec.table()
    bad = table.loc[~np.isfinite(table["top1"].to_numpy()), "layer"].unique()
    if bad.size:
        raise NonFiniteActivationsError(
            f"non-finite activations (NaN/inf) in layer(s) {bad.tolist()}"
        )
    return table
