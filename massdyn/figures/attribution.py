"""Feature attributions of the parameter regressors (paper figures 9 and 10).

The paper shows SHAP values; here each bar is the permutation importance (the drop in R^2,
in the transformed target space, when one feature is shuffled) of a random forest trained
on every (model, layer) row, with its spread over repeats. Both rank features by how much
the regressor relies on them.
"""

from __future__ import annotations

import matplotlib.pyplot as plt

from massdyn.figures.common import COLUMN_WIDTH, FigureData, register

FEATURE_LABELS = {
    "d_model": "d",
    "n_layers": "L",
    "n_heads": "H",
    "d_ff": "d_ff",
    "rotary_base": "rotary base",
    "rotary_fraction": "rotary fraction",
    "l_frac": "l/L",
    "l_frac2": "(l/L)$^2$",
    "l_frac3": "(l/L)$^3$",
    "sqrt_l_frac": "$\\sqrt{l/L}$",
    "heads_per_dim": "H/d",
    "ff_ratio": "d_ff/d",
    "d_per_layer": "d/L",
    "heads_per_layer": "H/L",
    "log_d": "log d",
    "l_times_L": "l L",
}


def attribution_figure(importance, target: str, top: int = 10):
    """Horizontal bars of the ``top`` features for one target."""
    imp = importance[importance["target"] == target].head(top).iloc[::-1]
    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH, 2.4))
    labels = [FEATURE_LABELS.get(f, f) for f in imp["feature"]]
    ax.barh(labels, imp["importance"], xerr=imp["std"], color="C0")
    name = "$\\lambda$" if target == "lambda" else target
    ax.set_xlabel(f"permutation importance for {name} (R$^2$ drop)")
    ax.set_title(f"what drives {name}")
    return fig


@register(9, "attribution_K", needs_archs=True)
def figure9(data: FigureData):
    """Feature attributions for K."""
    return attribution_figure(data.importance, "K")


@register(10, "attribution_lambda", needs_archs=True)
def figure10(data: FigureData):
    """Feature attributions for lambda."""
    return attribution_figure(data.importance, "lambda")
