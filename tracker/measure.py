"""Massive-activation statistics of every decoder block's output, reduced on the device.

A forward hook on each block reduces its output ``h`` (batch, tokens, d_model) to a few
numbers per sequence as soon as it is produced, so no layer's hidden state is kept or
copied to the host. Per sequence and layer: the top-k of ``|h|`` over all tokens x dims with
the (token, dim) of each, the median and mean of ``|h|``, and the count of entries meeting
the classic massive-activation rule ``|a| > 100`` and ``|a| > 1000 * median`` (arXiv
2402.17762).
"""

from __future__ import annotations

import contextlib

import numpy as np
import pandas as pd
import torch
from torch import nn

from massdyn.tracker.blocks import base_model, block_hidden, decoder_blocks
from massdyn.tracker.packing import pack, unpack

TOP_K = 3
MASSIVE_ABS = 100.0
MASSIVE_RATIO = 1000.0


def _row_histograms(keys: torch.Tensor, bins: int) -> torch.Tensor:
    """Per-row counts of the integer ``keys`` (``(rows, n)``, each in ``[0, bins)``).

    Built with ``index_add_`` rather than ``bincount``, which would wait for the GPU to
    learn the largest value.
    """
    b, n = keys.shape
    offsets = torch.arange(b, device=keys.device, dtype=torch.int32)[:, None] * bins
    flat = (keys.to(torch.int32) + offsets).reshape(-1)
    hist = torch.zeros(b * bins, dtype=torch.int32, device=keys.device)
    hist.index_add_(0, flat, torch.ones(1, dtype=torch.int32, device=keys.device).expand(b * n))
    return hist.reshape(b, bins)


def _middle_ranks(b: int, n: int, device) -> torch.Tensor:
    """The 0-based ranks of the two middle elements of ``n`` values, for ``b`` rows."""
    return torch.tensor([(n - 1) // 2, n // 2], device=device).expand(b, 2).contiguous()


def _median_16bit(a: torch.Tensor) -> torch.Tensor:
    """Exact per-row median of non-negative bfloat16/float16 values from one histogram.

    Non-negative 16-bit floats order like their bit patterns (0..0x7FFF), so one histogram
    of the patterns and a cumulative sum locate both middle elements: a single pass over
    the data instead of a selection per row.
    """
    b, n = a.shape
    cdf = _row_histograms(a.view(torch.int16), 1 << 15).cumsum(dim=1)
    idx = torch.searchsorted(cdf, _middle_ranks(b, n, a.device) + 1).to(torch.int16)
    return idx.view(a.dtype).float().mean(dim=1)


def _median_radix32(a: torch.Tensor) -> torch.Tensor:
    """Exact per-row median of non-negative float32 values: a radix selection.

    Non-negative float32 values order like their bit patterns too. A histogram of the high
    16 bits finds the bins that hold the two middle elements; only the few values in those
    bins are then sorted. On CPUs this is about 4x faster than one ``kthvalue`` per row.
    """
    b, n = a.shape
    high = a.view(torch.int32) >> 16
    hist = _row_histograms(high, 1 << 15)
    cdf = hist.cumsum(dim=1)
    ranks = _middle_ranks(b, n, a.device)
    bins = torch.searchsorted(cdf, ranks + 1)  # (b, 2): the bin of each middle element
    below = torch.where(bins > 0, cdf.gather(1, (bins - 1).clamp(min=0)), 0)
    rank_in = ranks - below  # rank inside its bin
    wanted = bins.to(high.dtype)  # int64 against int32 would copy the whole tensor
    picked = (high == wanted[:, :1]) | (high == wanted[:, 1:])
    # Both bins' values sorted together: the lower bin's come first.
    offset = torch.where(bins[:, 1] > bins[:, 0], hist.gather(1, bins[:, :1])[:, 0], 0)
    rank_in[:, 1] += offset
    values = torch.split(a[picked], torch.count_nonzero(picked, dim=1).tolist())
    middle = torch.stack([torch.sort(v).values[r] for v, r in zip(values, rank_in, strict=True)])
    return middle.float().mean(dim=1)


def _median_select(a: torch.Tensor) -> torch.Tensor:
    """Exact per-row median (numpy's rule) with one selection and two cheap passes."""
    n = a.shape[1]
    lower = torch.kthvalue(a, (n + 1) // 2, dim=1).values
    if n % 2:
        return lower.float()
    # The upper middle element equals the lower one when enough entries tie with it,
    # otherwise it is the smallest entry above it.
    ties = (a <= lower[:, None]).sum(dim=1) >= n // 2 + 1
    above = torch.where(a > lower[:, None], a, torch.full_like(a, float("inf"))).amin(dim=1)
    upper = torch.where(ties, lower, above)
    return (lower.float() + upper.float()) / 2


def _median_sort(a: torch.Tensor) -> torch.Tensor:
    """Exact per-row median (numpy's rule) from a full sort of each row."""
    n = a.shape[1]
    s = torch.sort(a, dim=1).values
    return (s[:, (n - 1) // 2].float() + s[:, n // 2].float()) / 2


def median_abs(a: torch.Tensor) -> torch.Tensor:
    """Per-row median of a non-negative ``(rows, n)`` tensor, as float32.

    The fastest exact method differs by device (timed on 10 x 2048 x 768 values): on CUDA a
    segmented sort (0.7 ms on an H200) beats the histogram, whose atomics contend on the few
    bins around the median (2.1 ms), and per-row selection, which runs one block per row;
    on CPUs a histogram of the (high) 16 bits is fastest: 28 ms for kthvalue against 7 ms
    for the radix selection on 2 x 2048 x 768 float32 values.
    """
    if a.is_cuda:
        return _median_sort(a)
    if a.dtype in (torch.bfloat16, torch.float16):
        return _median_16bit(a)
    if a.dtype == torch.float32:
        return _median_radix32(a)
    return _median_select(a)


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
    return unpack(reduce_packed(h, k), k)


def reduce_packed(h: torch.Tensor, k: int = TOP_K) -> torch.Tensor:
    """:func:`reduce_block_output` as one ``(batch, 3k + 3)`` float64 tensor (see packing).

    A 16-bit ``h`` on CUDA is reduced by the fused kernels of :mod:`massdyn.tracker.fused` (same
    results, a fraction of the time); everything else by the torch code below.
    """
    if h.is_cuda:
        # Imported here: importing Triton costs a CPU-only walk a fifth of a second.
        from massdyn.tracker import fused

        if fused.available(h):
            return fused.reduce_fused_packed(h, k, MASSIVE_ABS, MASSIVE_RATIO)
    b, n_tok, d = h.shape
    a = h.detach().abs().reshape(b, n_tok * d)
    top, idx = torch.topk(a, k, dim=1)
    median = median_abs(a)
    mean = torch.mean(a, dim=1, dtype=torch.float32)
    threshold = torch.clamp(median * MASSIVE_RATIO, min=MASSIVE_ABS)
    n_massive = torch.count_nonzero(a > threshold.to(a.dtype)[:, None], dim=1)
    token = torch.div(idx, d, rounding_mode="floor")
    return pack(top.float(), token, idx % d, median, mean, n_massive)


class Hooks:
    """Hooks that live exactly as long as a ``with`` block.

    A subclass returns the handles of the hooks it registers from :meth:`_attach`;
    leaving the block removes them, however it is left.
    """

    _handles: list

    def _attach(self) -> list:
        raise NotImplementedError

    def __enter__(self):
        self._handles = list(self._attach())
        return self

    def __exit__(self, *exc) -> None:
        for handle in getattr(self, "_handles", ()):
            handle.remove()
        self._handles = []


class ActivationRecorder(Hooks):
    """Forward hooks on every decoder block that reduce outputs on the fly.

    Use as a context manager around forward passes of the base model; then
    :meth:`table` returns one row per (layer, sequence). On CUDA each reduction runs on a
    side stream, so that it overlaps the next blocks' compute instead of delaying it; the
    block output is kept alive until its reduction is done.

    Args:
        model: A transformers causal LM (or its base model).
        k: How many largest ``|h|`` entries to keep per sequence and layer.
        overlap: On CUDA, reduce on a side stream (False: on the forward pass's stream).
    """

    def __init__(self, model: nn.Module, k: int = TOP_K, overlap: bool = True):
        self.model = model
        self.k = k
        self.overlap = overlap
        self._blocks = decoder_blocks(model)
        self._parts: list[list[torch.Tensor]] = [[] for _ in self._blocks]
        self._side: torch.cuda.Stream | None = None

    @property
    def n_layers(self) -> int:
        """Number of decoder blocks hooked."""
        return len(self._blocks)

    def _hook(self, layer: int):
        def fn(module, inputs, output):
            h = block_hidden(output)
            if not (self.overlap and h.is_cuda):
                self._parts[layer].append(reduce_packed(h, self.k))
                return
            if self._side is None:
                self._side = torch.cuda.Stream(h.device)
            self._side.wait_stream(torch.cuda.current_stream(h.device))
            with torch.cuda.stream(self._side):
                self._parts[layer].append(reduce_packed(h, self.k))
            h.record_stream(self._side)

        return fn

    def _attach(self) -> list:
        return [b.register_forward_hook(self._hook(i)) for i, b in enumerate(self._blocks)]

    def table(self) -> pd.DataFrame:
        """Rows ``layer, seq, top1..k, top{i}_token, top{i}_dim, median, mean, n_massive``."""
        if self._side is not None:  # the reductions may still be running there
            self._side.synchronize()
        layers = [i for i, parts in enumerate(self._parts) if parts]
        if not layers:
            return pd.DataFrame()
        # One device-to-host copy for every layer and statistic.
        per_layer = torch.stack([torch.cat(self._parts[i]) for i in layers])
        stats = unpack(per_layer.cpu(), self.k)
        n_layers, n_seq = per_layer.shape[:2]
        cols: dict[str, np.ndarray] = {
            "layer": np.repeat(layers, n_seq),
            "seq": np.tile(np.arange(n_seq), n_layers),
        }
        flat = {key: v.flatten(0, 1).numpy() for key, v in stats.items()}  # (layer, seq) rows
        for i in range(self.k):
            cols[f"top{i + 1}"] = flat["top"][:, i].astype(np.float64)
        cols["median"] = flat["median"].astype(np.float64)
        cols["mean"] = flat["mean"].astype(np.float64)
        cols["n_massive"] = flat["n_massive"]
        for i in range(self.k):
            cols[f"top{i + 1}_token"] = flat["token"][:, i]
            cols[f"top{i + 1}_dim"] = flat["dim"][:, i]
        return pd.DataFrame(cols)


class NonFiniteActivationsError(RuntimeError):
    """Some block output held NaN or inf."""


@torch.inference_mode()
def measure(
    model: nn.Module,
    input_ids: torch.Tensor | np.ndarray,
    batch_size: int = 1,
    overlap: bool = True,
    recorders=(),
) -> pd.DataFrame:
    """Measure every decoder block of ``model`` on fixed inputs.

    Runs the base model only (no LM head), in batches of ``batch_size`` sequences.

    Args:
        model: A transformers causal LM in eval mode, on its device.
        input_ids: ``(n_seqs, seq_len)`` token ids.
        batch_size: Sequences per forward pass.
        overlap: On CUDA, reduce each block output on a side stream (same numbers).
        recorders: Further context managers (:class:`Hooks`) that record in the same
            forward passes (the mechanisms of :mod:`massdyn.tracker.mechanisms`).

    Returns:
        One row per (layer, seq); see :meth:`ActivationRecorder.table`.

    Raises:
        NonFiniteActivationsError: naming the layers whose outputs held NaN or inf.
    """
    device = next(model.parameters()).device
    ids = torch.as_tensor(np.asarray(input_ids), dtype=torch.long)
    body = base_model(model)
    with contextlib.ExitStack() as stack:
        rec = stack.enter_context(ActivationRecorder(model, overlap=overlap))
        for recorder in recorders:
            stack.enter_context(recorder)
        for start in range(0, ids.shape[0], batch_size):
            body(input_ids=ids[start : start + batch_size].to(device), use_cache=False)
    return check_finite(rec.table())


def check_finite(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` itself, or :class:`NonFiniteActivationsError` naming the layers with NaN/inf."""
    finite = np.isfinite(table["top1"].to_numpy())
    if not finite.all():  # numpy, not a masked .loc: that alone took milliseconds
        bad = np.unique(table["layer"].to_numpy()[~finite])
        raise NonFiniteActivationsError(
            f"non-finite activations (NaN/inf) in layer(s) {bad.tolist()}"
        )
    return table
