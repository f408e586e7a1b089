"""Fused reduction of a 16-bit block output on CUDA: three streaming passes, no sort.

The statistics of :func:`massdyn.tracker.measure.reduce_block_output` for a 16-bit ``h``
computed with three Triton kernels that each read ``h`` once and write only a few numbers per
block of elements, so the reduction costs little more than reading the hidden state three
times. The median is an exact two-level radix selection: ``|h|`` of a 16-bit float is a
15-bit pattern that orders like its value, so a 256-bin histogram of the high 8 bits finds the
bin of each middle element and a 128-bin histogram of the low 7 bits inside that bin finds
the element. Everything between the kernels stays on the device (no host synchronization).

Only imported on CUDA, where Triton ships with PyTorch; :func:`available` tells whether it
can be used.
"""

from __future__ import annotations

from collections import OrderedDict

import torch

from massdyn.tracker.packing import pack, unpack

try:
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - CPU-only installs
    triton = None

BLOCK = 4096
HIGH_BINS = 256  # high 8 of the 15 magnitude bits
LOW_BITS = 7
# First high-8-bit bin of inf/NaN: the exponent field all ones.
NONFINITE_BIN = {torch.bfloat16: 0x7F80 >> LOW_BITS, torch.float16: 0x7C00 >> LOW_BITS}


def available(h: torch.Tensor) -> bool:
    """Whether ``h`` can take the fused path (a 16-bit float tensor on CUDA, Triton present)."""
    return triton is not None and h.is_cuda and h.dtype in NONFINITE_BIN


if triton is not None:

    @triton.jit
    def _bits(x_ptr, row, n, blk, BLOCK: tl.constexpr):
        offs = blk * BLOCK + tl.arange(0, BLOCK)
        mask = offs < n
        x = tl.load(x_ptr + row.to(tl.int64) * n + offs, mask=mask, other=0.0)
        return x, x.to(tl.int16, bitcast=True).to(tl.int32) & 0x7FFF, mask

    @triton.jit
    def _pass_high(
        x_ptr, n, hist_ptr, sum_ptr, top_ptr, pos_ptr, BLOCK: tl.constexpr, K: tl.constexpr
    ):
        row, blk, nblk = tl.program_id(0), tl.program_id(1), tl.num_programs(1)
        x, bits, mask = _bits(x_ptr, row, n, blk, BLOCK)
        hist = tl.histogram(bits >> 7, 256, mask=mask)
        tl.atomic_add(hist_ptr + row * 256 + tl.arange(0, 256), hist)
        a = tl.where(mask, tl.abs(x.to(tl.float32)), 0.0)
        slot = row * nblk + blk
        tl.store(sum_ptr + slot, tl.sum(a, axis=0))
        a = tl.where(mask, a, -1.0)
        lanes = tl.arange(0, BLOCK)
        for j in tl.static_range(K):
            best = tl.argmax(a, axis=0, tie_break_left=True)
            tl.store(top_ptr + slot * K + j, tl.max(a, axis=0))
            tl.store(pos_ptr + slot * K + j, blk * BLOCK + best)
            a = tl.where(lanes == best, -2.0, a)

    @triton.jit
    def _pass_low(x_ptr, n, sel_ptr, hist_ptr, BLOCK: tl.constexpr):
        row, blk = tl.program_id(0), tl.program_id(1)
        _, bits, mask = _bits(x_ptr, row, n, blk, BLOCK)
        high, low = bits >> 7, bits & 127
        for j in tl.static_range(2):
            target = tl.load(sel_ptr + row * 2 + j)
            hist = tl.histogram(tl.where(high == target, low, 255), 256, mask=mask)
            tl.atomic_add(hist_ptr + (row * 2 + j) * 256 + tl.arange(0, 256), hist)

    @triton.jit
    def _pass_count(x_ptr, n, thr_ptr, count_ptr, BLOCK: tl.constexpr):
        row, blk = tl.program_id(0), tl.program_id(1)
        _, bits, mask = _bits(x_ptr, row, n, blk, BLOCK)
        above = (bits > tl.load(thr_ptr + row)) & mask
        tl.atomic_add(count_ptr + row, tl.sum(above.to(tl.int32), axis=0))


def _reduce_packed(
    x: torch.Tensor, d: int, k: int, massive_abs: float, massive_ratio: float
) -> torch.Tensor:
    """The kernels and their glue on ``x`` (rows, n), packed as float64 (rows, 3k + 3).

    Columns: top-k values, their tokens, their dims, median, mean, n_massive (every integer
    here is exact in float64). Nothing in here copies from the host or synchronizes, so the
    whole function can be captured in a CUDA graph.
    """
    b, n = x.shape
    dev = x.device
    nblk = triton.cdiv(n, BLOCK)
    grid = (b, nblk)
    hist = torch.zeros(b, HIGH_BINS, dtype=torch.int32, device=dev)
    sums = torch.empty(b, nblk, dtype=torch.float32, device=dev)
    tops = torch.empty(b, nblk * k, dtype=torch.float32, device=dev)
    pos = torch.empty(b, nblk * k, dtype=torch.int32, device=dev)
    _pass_high[grid](x, n, hist, sums, tops, pos, BLOCK=BLOCK, K=k, num_warps=4)

    # Ranks (1-based) of numpy's two middle elements, their high bins and what lies below.
    ranks = torch.full((b, 2), n // 2 + 1, dtype=torch.int32, device=dev)
    ranks[:, 0] = (n - 1) // 2 + 1
    cdf = hist.cumsum(dim=1, dtype=torch.int32)
    high = torch.searchsorted(cdf, ranks).to(torch.int32)
    below = torch.where(high > 0, cdf.gather(1, (high - 1).clamp(min=0).long()), 0)
    low_hist = torch.zeros(b, 2, 256, dtype=torch.int32, device=dev)
    _pass_low[grid](x, n, high, low_hist, BLOCK=BLOCK, num_warps=8)
    low_cdf = low_hist.cumsum(dim=2, dtype=torch.int32)
    low = torch.searchsorted(low_cdf, (ranks - below).unsqueeze(2)).squeeze(2).to(torch.int32)
    middle = ((high << LOW_BITS) | low).to(torch.int16).view(x.dtype).float()
    median = middle.mean(dim=1)

    threshold = torch.clamp(median * massive_ratio, min=massive_abs).to(x.dtype)
    thr_bits = threshold.view(torch.int16).to(torch.int32).contiguous()
    count = torch.zeros(b, dtype=torch.int32, device=dev)
    _pass_count[grid](x, n, thr_bits, count, BLOCK=BLOCK, num_warps=8)

    top, where = torch.topk(tops, k, dim=1)
    idx = pos.gather(1, where)
    # The kernels' max ignores NaN; a row holding one must not look finite.
    nonfinite = hist[:, NONFINITE_BIN[x.dtype] :].sum(dim=1) > 0
    hidden = (nonfinite & torch.isfinite(top[:, 0]))[:, None]
    top = torch.where(hidden, torch.full_like(top, float("nan")), top)
    token = torch.div(idx, d, rounding_mode="floor")
    return pack(top, token, idx % d, median, sums.sum(dim=1) / n, count)


class _GraphedReduction:
    """The reduction of one input shape captured once as a CUDA graph, then replayed.

    Replaying costs one launch where the eager reduction costs about twenty, whose host
    time, not the kernels', dominated a measured forward pass.
    """

    def __init__(self, shape, dtype, device, k: int, massive_abs: float, massive_ratio: float):
        self.input = torch.zeros(shape, dtype=dtype, device=device)
        args = (shape[2], k, massive_abs, massive_ratio)
        x = self.input.view(shape[0], -1)
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):  # compile the kernels outside the capture
            _reduce_packed(x, *args)
        torch.cuda.current_stream(device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        # thread_local: the walker's prefetch thread may use CUDA during the capture.
        with torch.cuda.graph(self.graph, capture_error_mode="thread_local"):
            self.output = _reduce_packed(x, *args)

    def __call__(self, h: torch.Tensor) -> torch.Tensor:
        self.input.copy_(h)
        self.graph.replay()
        return self.output.clone()


_GRAPHS: OrderedDict[tuple, _GraphedReduction] = OrderedDict()
MAX_GRAPHS = 8  # distinct input shapes kept (a walk usually sees one or two)


def reduce_fused(
    h: torch.Tensor, k: int, massive_abs: float, massive_ratio: float, graph: bool = True
) -> dict[str, torch.Tensor]:
    """The statistics of :func:`massdyn.tracker.measure.reduce_block_output`, by the fused kernels.

    See :func:`reduce_fused_packed` for the arguments.

    Returns:
        The same keys, shapes and dtypes as :func:`massdyn.tracker.measure.reduce_block_output`.
        Where a row holds NaN its ``top`` values are NaN or inf, so callers see it.
    """
    return unpack(reduce_fused_packed(h, k, massive_abs, massive_ratio, graph), k)


def reduce_fused_packed(
    h: torch.Tensor, k: int, massive_abs: float, massive_ratio: float, graph: bool = True
) -> torch.Tensor:
    """The fused reduction, as rows of :func:`massdyn.tracker.packing.pack`.

    Args:
        h: ``(batch, tokens, d_model)`` bfloat16 or float16 tensor, on CUDA (or on the CPU
            under Triton's interpreter).
        k: How many of the largest ``|h|`` to keep.
        massive_abs: Absolute floor of the massive-activation threshold.
        massive_ratio: Multiple of the median of the threshold.
        graph: Replay a CUDA graph captured once per input shape (CUDA only, and not while
            the caller is itself capturing one).

    Returns:
        ``(batch, 3k + 3)`` float64, on the device of ``h``.
    """
    h = h.detach()
    if not (graph and h.is_cuda) or torch.cuda.is_current_stream_capturing():
        b, n_tok, d = h.shape
        x = h.reshape(b, n_tok * d).contiguous()
        return _reduce_packed(x, d, k, massive_abs, massive_ratio)
    key = (tuple(h.shape), h.dtype, h.device, k, massive_abs, massive_ratio)
    if key not in _GRAPHS:
        _GRAPHS[key] = _GraphedReduction(h.shape, h.dtype, h.device, k, massive_abs, massive_ratio)
        while len(_GRAPHS) > MAX_GRAPHS:
            _GRAPHS.popitem(last=False)
    _GRAPHS.move_to_end(key)
    return _GRAPHS[key](h)
