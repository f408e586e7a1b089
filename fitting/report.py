"""Where the top-1 entry sits and how much the ratio grew, per (model, layer)."""

from __future__ import annotations


def emergence_report(measurements, last_fraction: float = 1 / 3):
    """Per (model, layer): how much the top1/median ratio grew, and where top-1 sits late.

    The ratio is the fitting package's (:func:`massdyn.fitting.batch.aggregate`), so a walk's or a
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

    from massdyn.fitting.batch import aggregate

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
