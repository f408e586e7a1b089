"""A space-filling design of architectures for growing the suite (no torch here).

The seed replicates showed that the six one-factor-at-a-time members cannot separate
architecture from chance; a predictor learns architecture only from members spread over
every axis at once. :func:`space_filling` picks members from a grid of levels by greedy
maximin distance (in level-index units, every axis scaled to [0, 1]) to the members already
chosen, the shipped ones included, under a training-cost cap, so that the design is cheap
where it can be and still reaches the end of every axis.

The axes and their levels are data (the ``design`` block of ``data/minisuite-design.json``);
the chosen members are written there too, so the suite is data and this module is how it
was made (``python -m massdyn.minisuite.design`` prints it again).
"""

from __future__ import annotations

import itertools
import json
from dataclasses import asdict, dataclass

import numpy as np

from massdyn.data import read_json
from massdyn.minisuite.spec import Member

AXES = ("n_layers", "n_heads", "d_model", "ff_ratio", "rotary_pct")


def training_cost(m: Member, vocab_size: int = 4096) -> float:
    """Weights touched per token, a proxy for CPU time per step: blocks plus embeddings."""
    d = m.d_model
    return m.n_layers * d * d * (4 + 2 * m.ff_ratio) + 2 * vocab_size * d


def member_name(m: Member) -> str:
    """``mini-d<d>-l<L>-h<H>-f<ff>-r<rotary %>`` (``-seq`` for sequential residuals)."""
    name = f"mini-d{m.d_model}-l{m.n_layers}-h{m.n_heads}-f{m.ff_ratio:g}-r{m.rotary_pct * 100:g}"
    return name + ("" if m.parallel_residual else "-seq")


def _valid(values: dict) -> Member | None:
    try:
        return Member(name="candidate", **values)
    except ValueError:  # heads do not divide the width, or odd rotary dims
        return None


@dataclass(frozen=True)
class Design:
    """How the design is drawn: levels per axis, size, cost cap and residual twins."""

    levels: dict[str, tuple]
    n_new: int
    max_cost_ratio: float  # cap on training_cost, relative to the reference member
    reference: str  # a shipped member, the unit of the cost cap
    sequential_twins: tuple[str, ...]  # shipped members repeated with sequential residuals


def _position(m: Member, levels: dict[str, tuple]) -> np.ndarray:
    """A member's place in the unit cube: each axis by level index (nearest level)."""
    out = []
    for axis in AXES:
        lv = np.array(levels[axis], float)
        i = int(np.argmin(np.abs(np.log(lv) - np.log(float(getattr(m, axis))))))
        out.append(i / (len(lv) - 1))
    return np.array(out)


def space_filling(design: Design, existing: list[Member]) -> list[Member]:
    """New members: greedy maximin over the valid grid under the cost cap, plus twins.

    Deterministic: ties go to the cheaper candidate, then to grid order.
    """
    ref = next(m for m in existing if m.name == design.reference)
    cap = design.max_cost_ratio * training_cost(ref)
    grid = [
        m
        for combo in itertools.product(*(design.levels[a] for a in AXES))
        if (m := _valid(dict(zip(AXES, combo, strict=True)))) is not None
        and training_cost(m) <= cap
    ]
    pos = np.stack([_position(m, design.levels) for m in grid])
    cost = np.array([training_cost(m) for m in grid])
    chosen = np.stack([_position(m, design.levels) for m in existing])
    picked: list[Member] = []
    for _ in range(design.n_new):
        dist = np.min(np.linalg.norm(pos[:, None, :] - chosen[None, :, :], axis=2), axis=1)
        order = np.lexsort((np.arange(len(grid)), cost, -np.round(dist, 9)))
        best = int(order[0])
        m = grid[best]
        picked.append(Member(name=member_name(m), **{a: getattr(m, a) for a in AXES}))
        chosen = np.vstack([chosen, pos[best]])
    by_name = {m.name: m for m in existing}
    for twin in design.sequential_twins:
        base = by_name[twin]
        picked.append(
            Member(
                name=f"{twin}-seq",
                **{a: getattr(base, a) for a in AXES},
                parallel_residual=False,
            )
        )
    return sorted(picked, key=training_cost)


def load_design(spec: dict) -> Design:
    """The ``design`` block of a design file."""
    d = spec["design"]
    return Design(
        levels={a: tuple(d["levels"][a]) for a in AXES},
        n_new=int(d["n_new"]),
        max_cost_ratio=float(d["max_cost_ratio"]),
        reference=d["reference"],
        sequential_twins=tuple(d.get("sequential_twins", ())),
    )


def main() -> None:
    """Print the members the shipped design block draws (as the file's ``members``)."""
    from massdyn.minisuite.spec import Suite

    spec = read_json("minisuite-design.json")
    members = space_filling(load_design(spec), Suite.load().members)
    print(json.dumps([asdict(m) for m in members], indent=2))


if __name__ == "__main__":
    main()
