"""Where the top entries sit and how much the ratio grew: per (model, layer), per step."""

from __future__ import annotations


def emergence_report(measurements, last_fraction: float = 1 / 3):
    """Per (model, layer): how much the top1/median ratio grew, and where top-1 sits late.

    The ratio is the fitting package's (:func:`massdyn.fitting.series.aggregate`), so a walk's or a
    live run's measurements table (with ``top1_token, top1_dim``) can be passed as is.

    Returns:
        A DataFrame with ``model, layer, ratio_first, ratio_last, growth`` (last over first
        step), ``top1_token, top1_dim`` (the most common position of the top-1 entry over
        every sequence and step in the last ``last_fraction`` of training) and
        ``fixed_share``, the share of those (sequence, step) rows whose top-1 sits there
        (1.0: the classic signature, one fixed (token, dim)), and ``token_share``, the share
        whose top-1 sits on that token in any dimension (an outlier that stays on one token
        while two of its dimensions trade places has ``token_share`` 1.0 and a lower
        ``fixed_share``).
    """
    import pandas as pd

    from massdyn.fitting.series import aggregate

    ratio = aggregate(measurements, "ratio").groupby(["model", "layer"])["value"]
    first, final = ratio.first(), ratio.last()
    rows = []
    for (model, layer), g in measurements.groupby(["model", "layer"]):
        last = g["step"].max()
        late = g[g["step"] >= last - last_fraction * (last - g["step"].min())]
        counts = late.groupby(["top1_token", "top1_dim"]).size().sort_values(ascending=False)
        token, dim = counts.index[0]
        rows.append(
            {
                "model": model,
                "layer": layer,
                "ratio_first": first[model, layer],
                "ratio_last": final[model, layer],
                "growth": final[model, layer] / first[model, layer],
                "top1_token": token,
                "top1_dim": dim,
                "fixed_share": counts.iloc[0] / len(late),
                "token_share": (late["top1_token"] == token).mean(),
            }
        )
    return pd.DataFrame(rows)


LOCATION_COLUMNS = ("top1_token", "top1_dim", "top2_dim", "top3_dim")


def locations(measurements):
    """Where the massive activations sit, per (model, step, layer), and how that turns over.

    From what a measurements table already holds (each sequence's top-3 (token, dim)):

    - ``on_first_token``: share of sequences whose top-1 entry is at position 0 (the first
      token, or the BOS a walk prepends);
    - ``top_dim`` and ``top_dim_share``: the most common top-1 dimension and the share of
      sequences whose top-1 is in it;
    - ``dims``: the outlier dimensions, every dimension among the top-3 of any sequence
      (space-separated), and their Jaccard overlap with the previous measured step's
      (``overlap_prev``; NaN at the first) and with the last step's (``overlap_last``).

    Raises:
        ValueError: when the table lacks the location columns (a table from before they
            were recorded, or the paper's released data, which has none).
    """
    import numpy as np
    import pandas as pd

    missing = [c for c in LOCATION_COLUMNS if c not in measurements.columns]
    if missing:
        raise ValueError(
            f"the measurements table has no {', '.join(missing)}: where the top entries sit "
            "is recorded by massdyn walk and the live tracker (not in the paper's released data)"
        )
    rows = []
    for (model, layer), g in measurements.groupby(["model", "layer"], sort=True):
        per_step = {}
        for step, s in g.groupby("step", sort=True):
            dims = set(s[["top1_dim", "top2_dim", "top3_dim"]].to_numpy().ravel().tolist())
            common = s["top1_dim"].value_counts()
            per_step[step] = (s, dims, int(common.index[0]), float(common.iloc[0] / len(s)))
        steps = sorted(per_step)
        last_dims = per_step[steps[-1]][1]
        previous = None
        for step in steps:
            s, dims, top_dim, share = per_step[step]
            rows.append(
                {
                    "model": model,
                    "step": step,
                    "layer": layer,
                    "on_first_token": float((s["top1_token"] == 0).mean()),
                    "top_dim": top_dim,
                    "top_dim_share": share,
                    "dims": " ".join(map(str, sorted(int(d) for d in dims))),
                    "overlap_prev": np.nan if previous is None else jaccard(dims, previous),
                    "overlap_last": jaccard(dims, last_dims),
                }
            )
            previous = dims
    return pd.DataFrame(rows)


def with_position0_norm(locations, attention):
    """``locations`` with ``pos0_norm`` (position 0's hidden-state norm) from an attention table.

    Args:
        locations: :func:`locations`' table.
        attention: An attention table (``model, step, layer, pos0_norm``, one row per head).

    Returns:
        ``locations`` with ``pos0_norm`` (NaN where the attention table has no such step).
    """
    norms = attention.groupby(["model", "step", "layer"], as_index=False)["pos0_norm"].first()
    return locations.merge(norms, on=["model", "step", "layer"], how="left")


def super_weight_persistence(superweights):
    """Whether each layer's super weight stays where it is over training.

    Args:
        superweights: A super-weights table (``model, step, layer, row, col, stands_out``),
            one row per (checkpoint, layer).

    Returns:
        One row per (model, layer, row, col) that is some checkpoint's spike: in how many
        checkpoints (``checkpoints``, of ``of``) and in how many of those it stood out
        (``stood_out``), its first and last step, and whether it is the layer's spike at
        the last checkpoint (``at_last``); most persistent first.
    """
    import pandas as pd

    rows = []
    for (model, layer), g in superweights.groupby(["model", "layer"], sort=True):
        last = g.loc[g["step"].idxmax(), ["row", "col"]].tolist()
        for (row, col), h in g.groupby(["row", "col"], sort=False):
            rows.append(
                {
                    "model": model,
                    "layer": layer,
                    "row": int(row),
                    "col": int(col),
                    "checkpoints": len(h),
                    "of": len(g),
                    "stood_out": int(h["stands_out"].astype(bool).sum()),
                    "first_step": h["step"].min(),
                    "last_step": h["step"].max(),
                    "at_last": [row, col] == last,
                }
            )
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    return table.sort_values(["model", "checkpoints"], ascending=[True, False], kind="stable")


def jaccard(a: set, b: set) -> float:
    """The overlap ``|a & b| / |a | b|`` of two sets of outlier dimensions (NaN if both empty)."""
    return len(a & b) / len(a | b) if a | b else float("nan")
