"""Import and export the layout of the paper's released measurements.

The dataset "Aimpoint-Digital/pythia-massive-activations" keeps, per model,
``pythia_{size}/stats/exp2_pythia_{size}_step{N}``: the text form of a numpy array shaped
(n_seqs, 4, n_layers) whose rows per sequence are top1, top2, top3 and median.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

STATS = ("top1", "top2", "top3", "median")
_FLOAT = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|nan|inf", re.IGNORECASE)
_STEP_FILE = re.compile(r"^exp2_pythia_(?P<size>.+)_step(?P<step>\d+)$")


def parse_stats_text(text: str) -> np.ndarray:
    """Parse a stats file written by numpy (``repr``/``print`` brackets or ``savetxt`` rows).

    Returns:
        Array shaped (n_seqs, 4, n_layers).

    Raises:
        ValueError: when the numbers do not form (n, 4, L).
    """
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    groups = re.findall(r"\[([^\[\]]+)\]", body)
    rows = groups if groups else [ln for ln in body.splitlines() if ln.strip()]
    if not rows:
        raise ValueError("empty stats file")
    n_layers = len(_FLOAT.findall(rows[0]))
    values = np.array([float(v) for v in _FLOAT.findall(body.replace("array(", ""))], dtype=float)
    if n_layers == 0 or values.size % (4 * n_layers):
        raise ValueError(f"{values.size} numbers do not form (n_seqs, 4, {n_layers})")
    return values.reshape(-1, 4, n_layers)


def import_paper_stats(
    root: str | Path, sizes: list[str] | None = None, skipped: list | None = None
) -> pd.DataFrame:
    """Read ``root/pythia_{size}/stats/*`` into a long measurements table.

    Args:
        root: Folder holding the ``pythia_{size}`` folders.
        sizes: Only these sizes (e.g. ``["14m", "160m"]``); all found by default.
        skipped: When given, a malformed file is appended to it as ``(path, reason)`` and
            left out (the published ``pythia_1b_step0`` is one) instead of raising.

    Returns:
        Columns ``model, step, layer, seq, top1, top2, top3, median`` with model
        ``pythia-{size}``.

    Raises:
        FileNotFoundError: when no stats files are found.
        ValueError: naming a file that cannot be parsed.
    """
    root = Path(root)
    frames = []
    for model_dir in sorted(root.glob("pythia_*")):
        size = model_dir.name.removeprefix("pythia_")
        if sizes and size not in sizes:
            continue
        for f in sorted((model_dir / "stats").glob("exp2_pythia_*_step*")):
            m = _STEP_FILE.match(f.name)
            if not m:
                continue
            try:
                arr = parse_stats_text(f.read_text())
                if not np.isfinite(arr).all() or (arr < 0).any():
                    raise ValueError("holds NaN, inf or negative magnitudes")
            except (ValueError, UnicodeDecodeError) as exc:
                if skipped is None:
                    raise ValueError(f"{f}: {exc}") from None
                skipped.append((f, str(exc)))
                continue
            n_seq, _, n_layer = arr.shape
            seq, layer = np.meshgrid(np.arange(n_seq), np.arange(n_layer), indexing="ij")
            data = {
                "model": f"pythia-{size}",
                "step": int(m["step"]),
                "layer": layer.ravel(),
                "seq": seq.ravel(),
            }
            data.update({name: arr[:, i, :].ravel() for i, name in enumerate(STATS)})
            frames.append(pd.DataFrame(data))
    if not frames:
        raise FileNotFoundError(f"no pythia_*/stats/exp2_pythia_*_step* files under {root}")
    return pd.concat(frames, ignore_index=True).sort_values(
        ["model", "step", "layer", "seq"], ignore_index=True
    )


def export_paper_stats(
    measurements: pd.DataFrame, root: str | Path, size: str | None = None
) -> list[Path]:
    """Write a measurements table in the paper's layout (one text file per step).

    Each file is ``np.savetxt`` of the (n_seqs * 4, n_layers) rows, with a comment header;
    :func:`parse_stats_text` reads it back as (n_seqs, 4, n_layers).

    Args:
        measurements: Long table of one model.
        root: Destination folder.
        size: The ``{size}`` in the names; by default the model name after ``pythia-``.

    Returns:
        The files written.

    Raises:
        ValueError: for a table of several models, or with missing (step, layer, seq) cells.
    """
    models = measurements["model"].unique()
    if len(models) != 1:
        raise ValueError(f"export one model at a time; the table holds {list(models)}")
    size = size or str(models[0]).rsplit("/", 1)[-1].removeprefix("pythia-")
    out = Path(root) / f"pythia_{size}" / "stats"
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for step, grp in measurements.groupby("step"):
        n_seq, n_layer = grp["seq"].nunique(), grp["layer"].nunique()
        if len(grp) != n_seq * n_layer:
            raise ValueError(
                f"step {step}: {len(grp)} rows, expected {n_seq} seqs x {n_layer} layers"
            )
        grp = grp.sort_values(["seq", "layer"])
        arr = np.stack([grp[s].to_numpy().reshape(n_seq, n_layer) for s in STATS], axis=1)
        path = out / f"exp2_pythia_{size}_step{int(step)}"
        header = f"shape ({n_seq}, 4, {n_layer}); rows per sequence: {', '.join(STATS)}"
        np.savetxt(path, arr.reshape(n_seq * 4, n_layer), header=header, fmt="%.9g")
        written.append(path)
    return written
