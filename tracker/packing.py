"""One float64 row per sequence holding every statistic of a block output.

Packing lets a forward pass keep one small tensor per layer and copy all layers to the host
at once, instead of one transfer (and one synchronization) per statistic and layer. Every
integer stored (positions, counts) is exact in float64.
"""

from __future__ import annotations

import torch


def pack(top, token, dim, median, mean, n_massive) -> torch.Tensor:
    """Pack per-sequence statistics into a ``(batch, 3k + 3)`` float64 tensor."""
    stats = [median[:, None], mean[:, None], n_massive[:, None]]
    return torch.cat([p.double() for p in (top, token, dim, *stats)], dim=1)


def unpack(packed: torch.Tensor, k: int) -> dict[str, torch.Tensor]:
    """The statistics of :func:`pack` by name, in their natural dtypes."""
    return {
        "top": packed[..., :k].float(),
        "token": packed[..., k : 2 * k].long(),
        "dim": packed[..., 2 * k : 3 * k].long(),
        "median": packed[..., 3 * k].float(),
        "mean": packed[..., 3 * k + 1].float(),
        "n_massive": packed[..., 3 * k + 2].long(),
    }
