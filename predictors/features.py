"""Architecture features of a decoder config, per layer (arXiv 2508.03616, section 4).

Core features: d_model, n_layers L, n_heads H, d_ff, rotary base, rotary fraction. Derived,
for layer index l: l/L, (l/L)^2, (l/L)^3, sqrt(l/L), H/d, d_ff/d, d/L, H/L, log d, l*L.
Which config field holds each core feature, per family, is data: ``data/architectures.json``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from massdyn.data import path as data_path
from massdyn.data import read_json

CORE = ("d_model", "n_layers", "n_heads", "d_ff", "rotary_base", "rotary_fraction")


class _Layer(NamedTuple):
    """What a derived feature is computed from: one layer of one architecture."""

    index: int  # 0-based layer index l
    f: float  # l / L
    d: int  # d_model
    L: int  # n_layers
    H: int  # n_heads
    d_ff: int


# The one place a derived feature is declared: its name and how it is computed. The
# feature list, the tables and the predictor files' schema all read it.
DERIVED_FEATURES: dict[str, Callable[[_Layer], float]] = {
    "l_frac": lambda x: x.f,
    "l_frac2": lambda x: x.f**2,
    "l_frac3": lambda x: x.f**3,
    "sqrt_l_frac": lambda x: math.sqrt(x.f),
    "heads_per_dim": lambda x: x.H / x.d,
    "ff_ratio": lambda x: x.d_ff / x.d,
    "d_per_layer": lambda x: x.d / x.L,
    "heads_per_layer": lambda x: x.H / x.L,
    "log_d": lambda x: math.log(x.d),
    "l_times_L": lambda x: x.index * x.L,
}
DERIVED = tuple(DERIVED_FEATURES)
FEATURES = CORE + DERIVED


class ConfigError(ValueError):
    """A config lacks a field or holds an invalid one; the message names both and the source."""


@cache
def _family_fields() -> dict[str, dict]:
    spec = read_json("architectures.json")
    return {k: v["features"] for k, v in spec["families"].items() if "features" in v}


@dataclass(frozen=True)
class Architecture:
    """The core architecture features of one model.

    Attributes:
        name: Model name (e.g. ``pythia-160m``).
        family: transformers ``model_type``.
        d_model, n_layers, n_heads, d_ff: Widths and depth.
        rotary_base: Rotary embedding base (0 with learned positions).
        rotary_fraction: Share of each head's dims rotated (0 with learned positions).
        parallel_residual: Attention and MLP read the same block input (GPT-NeoX's
            ``use_parallel_residual``, its default); False when they run in sequence
            (GPT-2, Llama). Not one of the paper's features; the curve predictor uses it.
    """

    name: str
    family: str
    d_model: int
    n_layers: int
    n_heads: int
    d_ff: int
    rotary_base: float
    rotary_fraction: float
    parallel_residual: bool = True

    def layer_features(self, layer: int) -> dict[str, float]:
        """The paper's core and derived features for one layer (0-based index)."""
        if not 0 <= layer < self.n_layers:
            raise ValueError(f"layer {layer} outside 0..{self.n_layers - 1} of {self.name}")
        x = _Layer(
            layer, layer / self.n_layers, self.d_model, self.n_layers, self.n_heads, self.d_ff
        )
        core = {k: float(getattr(self, k)) for k in CORE}
        return {**core, **{name: float(fn(x)) for name, fn in DERIVED_FEATURES.items()}}

    def feature_table(self) -> pd.DataFrame:
        """One row per layer: ``model, layer`` and :data:`FEATURES`."""
        rows = [
            {"model": self.name, "layer": i, **self.layer_features(i)} for i in range(self.n_layers)
        ]
        return pd.DataFrame(rows)


def _lookup(cfg: dict, key: str):
    obj = cfg
    for part in key.split("."):
        if not isinstance(obj, dict) or part not in obj:
            return None
        obj = obj[part]
    return obj


def _first(cfg: dict, keys: list[str]):
    """The value of the first of ``keys`` the config holds (None if none)."""
    return next((v for k in keys if (v := _lookup(cfg, k)) is not None), None)


def _load(source) -> tuple[dict, str]:
    if isinstance(source, dict):
        return source, "dict"
    if hasattr(source, "to_dict"):
        return source.to_dict(), type(source).__name__
    path = Path(str(source))
    if path.is_dir():
        path = path / "config.json"
    if path.suffix == ".json" or path.exists():
        if not path.exists():
            raise ConfigError(f"config file not found: {path}")
        try:
            return json.loads(path.read_text()), str(path)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path} is not valid JSON: {exc}") from None
    raise ConfigError(
        f"{source!r} is neither a config file, a model folder, a dict nor a Hub repo id"
    )


def read_config(source, name: str | None = None, revision: str | None = None) -> Architecture:
    """Read the architecture of a decoder model.

    Args:
        source: A ``config.json`` path, a model folder, a Hub repo id (only ``config.json``
            is fetched, at ``revision``), a dict, or a transformers config object.
        name: Model name (default: ``_name_or_path`` or the file/folder name).
        revision: Hub revision for repo ids.

    Raises:
        ConfigError: naming the missing or invalid field and the source.
    """
    src = str(source) if not isinstance(source, dict) else None
    if src is not None and re.fullmatch(r"[\w.-]+/[\w.-]+", src) and not Path(src).exists():
        from huggingface_hub import hf_hub_download

        try:
            source = hf_hub_download(src, "config.json", revision=revision)
        except Exception as exc:
            raise ConfigError(
                f"cannot fetch config.json of {src}@{revision or 'main'}: {exc}"
            ) from exc
        name = name or src.split("/")[-1]
    cfg, where = _load(source)
    family = cfg.get("model_type")
    if not family:
        raise ConfigError(f"{where}: field 'model_type' is missing")
    fields = _family_fields().get(family)
    if fields is None:
        raise ConfigError(
            f"{where}: model_type {family!r} is not supported; "
            f"known: {', '.join(sorted(_family_fields()))}"
        )
    values: dict[str, float] = {}
    for feat in CORE:
        spec = fields[feat]
        keys, default = (
            (spec, None) if isinstance(spec, list) else (spec["keys"], spec.get("default"))
        )
        value = _first(cfg, keys)
        if value is None and default == "4*d_model":
            value = 4 * values["d_model"]
        elif value is None:
            value = default
        if value is None:
            raise ConfigError(
                f"{where}: field {' or '.join(repr(k) for k in keys)} ({feat}) is missing"
            )
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ConfigError(
                f"{where}: field for {feat} must be a non-negative number, got {value!r}"
            )
        values[feat] = value
    for feat in ("d_model", "n_layers", "n_heads", "d_ff"):
        if values[feat] <= 0 or int(values[feat]) != values[feat]:
            raise ConfigError(f"{where}: {feat} must be a positive integer, got {values[feat]!r}")
    if values["d_model"] % values["n_heads"]:
        raise ConfigError(
            f"{where}: the width {int(values['d_model'])} is not a multiple of the "
            f"{int(values['n_heads'])} attention heads, which no model can be built with"
        )
    if values["rotary_fraction"] > 1:
        raise ConfigError(
            f"{where}: rotary fraction must be <= 1, got {values['rotary_fraction']!r}"
        )
    parallel = _residual_layout(cfg, fields, where)
    if not name:
        stem = Path(where).parent.name if Path(where).name == "config.json" else Path(where).stem
        name = str(cfg.get("_name_or_path") or stem).split("/")[-1]
    return Architecture(
        name=name,
        family=family,
        d_model=int(values["d_model"]),
        n_layers=int(values["n_layers"]),
        n_heads=int(values["n_heads"]),
        d_ff=int(values["d_ff"]),
        rotary_base=float(values["rotary_base"]),
        rotary_fraction=float(values["rotary_fraction"]),
        parallel_residual=parallel,
    )


def _residual_layout(cfg: dict, fields: dict, where: str) -> bool:
    spec = fields["parallel_residual"]
    value = _first(cfg, spec["keys"])
    value = spec["default"] if value is None else value
    if not isinstance(value, bool):
        raise ConfigError(
            f"{where}: field {' or '.join(map(repr, spec['keys']))} (parallel_residual) must "
            f"be true or false, got {value!r}"
        )
    return value


def pythia_architectures() -> list[Architecture]:
    """The nine Pythia models from ``data/pythia_configs``."""
    folder = data_path("pythia_configs")
    out = []
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        if entry.name.endswith(".json"):
            out.append(
                read_config(json.loads(entry.read_text()), name=entry.name.removesuffix(".json"))
            )
    return sorted(out, key=lambda a: (a.d_model * a.d_model * a.n_layers, a.name))


def config_candidates(folder: Path, model: str) -> list[Path]:
    """Where a model's config may be: by its full name, ``org--name`` and the bare name.

    Walks of Hub series are named like ``EleutherAI/pythia-160m``, shipped configs like
    ``pythia-160m.json``: every spelling a user is likely to have is accepted.
    """
    model = str(model)
    names = dict.fromkeys([model, model.replace("/", "--"), model.rsplit("/", 1)[-1]])
    return [p for n in names for p in (folder / f"{n}.json", folder / n / "config.json")]


def configs_from_dir(folder, models) -> dict[str, Architecture]:
    """Architectures for ``models`` from ``DIR/<model>.json`` or ``DIR/<model>/config.json``.

    ``<model>`` may also be the model's name without its organisation, or with ``/``
    written ``--`` (see :func:`config_candidates`). ``folder`` may be a list of folders,
    searched in turn.

    Raises:
        ConfigError: naming a model without a config in ``folder`` and the files tried.
    """
    folders = [Path(f) for f in (folder if isinstance(folder, (list, tuple)) else [folder])]
    for f in folders:
        if not f.is_dir():
            raise ConfigError(f"--configs {f}: no such folder")
    out = {}
    for model in models:
        tried = [(f, p) for f in folders for p in config_candidates(f, model)]
        found = next((p for _, p in tried if p.exists()), None)
        if found is None:
            raise ConfigError(
                f"no config for model {model!r} in {', '.join(map(str, folders))}; tried "
                + ", ".join(str(p.relative_to(f)) for f, p in tried)
            )
        out[model] = read_config(found, name=str(model))
    return out
