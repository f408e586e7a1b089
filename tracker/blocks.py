"""Find the decoder blocks of a causal LM, whose outputs are the residual stream."""

from __future__ import annotations

import re
from functools import cache

from torch import nn

from massdyn.data import read_json

# A decoder block's index in a parameter or tensor name (``model.layers.3.mlp...``,
# ``transformer.h.3...``), for checking a checkpoint's blocks against its config.
BLOCK_INDEX = re.compile(r"\.(?:layers|h|blocks|layer)\.(\d+)\.")


class UnsupportedArchitectureError(ValueError):
    """The model's decoder blocks could not be located."""


@cache
def block_paths() -> dict[str, str]:
    """``model_type -> attribute path of the block list`` from ``data/architectures.json``."""
    spec = read_json("architectures.json")
    return {k: v["blocks"] for k, v in spec["families"].items()}


def submodule(root: nn.Module, dotted: str):
    """``root.a.b`` for ``"a.b"`` (a path from ``data/architectures.json``); None if absent."""
    obj = root
    for part in dotted.split("."):
        obj = getattr(obj, part, None)
    return obj


def block_hidden(output):
    """The hidden state in what a decoder block returns: a tensor, or a tuple led by it."""
    return output[0] if isinstance(output, tuple | list) else output


def base_model(model: nn.Module) -> nn.Module:
    """The model without its LM head (``model.base_model`` for transformers models)."""
    return getattr(model, "base_model", model)


def decoder_blocks(model: nn.Module) -> nn.ModuleList:
    """The ordered decoder blocks of a transformers causal LM.

    Known families are looked up by ``config.model_type``; otherwise the one ``ModuleList``
    under the base model whose length equals ``config.num_hidden_layers`` is taken.

    Raises:
        UnsupportedArchitectureError: naming the model type when no block list is found.
    """
    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", type(model).__name__)
    base = base_model(model)
    path = block_paths().get(model_type)
    if path is not None:
        obj = submodule(base, path)
        if isinstance(obj, nn.ModuleList) and len(obj) > 0:
            return obj
    n_layers = getattr(config, "num_hidden_layers", None)
    candidates = [m for m in base.modules() if isinstance(m, nn.ModuleList) and len(m) == n_layers]
    if n_layers and len(candidates) == 1:
        return candidates[0]
    known = ", ".join(sorted(block_paths()))
    raise UnsupportedArchitectureError(
        f"cannot locate the decoder blocks of model type {model_type!r}; "
        f"supported families: {known}. Add it to data/architectures.json."
    )
