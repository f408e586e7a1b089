import json
import math
from pathlib import Path

import pytest

from massdyn.predictors.features import (
    FEATURES,
    ConfigError,
    configs_from_dir,
    pythia_architectures,
    read_config,
)


def test_nine_pythia_configs_with_188_layers():
    archs = pythia_architectures()
    assert len(archs) == 9
    assert sum(a.n_layers for a in archs) == 188
    p160 = next(a for a in archs if a.name == "pythia-160m")
    assert (p160.d_model, p160.n_layers, p160.n_heads, p160.d_ff) == (768, 12, 12, 3072)
    assert p160.rotary_fraction == 0.25 and p160.rotary_base == 10000


def test_derived_features():
    a = next(a for a in pythia_architectures() if a.name == "pythia-410m")
    f = a.layer_features(6)
    assert f["l_frac"] == 0.25 and f["l_frac2"] == 0.0625 and f["sqrt_l_frac"] == 0.5
    assert (
        f["heads_per_dim"] == 16 / 1024 and f["d_per_layer"] == 1024 / 24 and f["l_times_L"] == 144
    )
    assert f["log_d"] == pytest.approx(math.log(1024))
    assert list(a.feature_table().columns[2:]) == list(FEATURES)
    with pytest.raises(ValueError, match="layer 24"):
        a.layer_features(24)


@pytest.mark.parametrize("family", ["gpt2", "llama", "opt", "gpt_neox", "mistral", "qwen2", "olmo"])
def test_families_from_transformers_configs(family):
    from transformers import AutoConfig

    cfg = AutoConfig.for_model(family)
    arch = read_config(cfg, name=family)
    assert arch.family == family and arch.d_model > 0 and arch.n_layers > 0
    if family in ("gpt2", "opt"):  # learned positions
        assert arch.rotary_fraction == 0 and arch.rotary_base == 0
    if family == "gpt2":
        assert arch.d_ff == 4 * arch.d_model  # n_inner None
    if family == "llama":
        assert arch.rotary_fraction == 1.0


def test_the_residual_layout_is_read_from_the_config():
    from transformers import AutoConfig, GPTNeoXConfig

    assert read_config(AutoConfig.for_model("gpt_neox"), name="p").parallel_residual
    assert not read_config(GPTNeoXConfig(use_parallel_residual=False), name="s").parallel_residual
    assert not read_config(AutoConfig.for_model("llama"), name="l").parallel_residual
    assert not read_config(AutoConfig.for_model("gpt2"), name="g").parallel_residual
    bad = GPTNeoXConfig().to_dict() | {"use_parallel_residual": "no"}
    with pytest.raises(ConfigError, match="'use_parallel_residual' .* must be true or false"):
        read_config(bad)


def test_sources_path_folder_dict(tmp_path):
    pythia = {
        "model_type": "gpt_neox",
        "hidden_size": 64,
        "num_hidden_layers": 3,
        "num_attention_heads": 4,
        "intermediate_size": 256,
        "rotary_pct": 0.25,
        "rotary_emb_base": 10000,
    }
    (tmp_path / "m.json").write_text(json.dumps(pythia))
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "config.json").write_text(json.dumps(pythia))
    assert read_config(tmp_path / "m.json").n_layers == 3
    assert read_config(tmp_path / "m.json").name == "m"
    assert read_config(tmp_path / "folder").name == "folder"
    assert read_config(pythia, name="d").d_ff == 256
    found = configs_from_dir(tmp_path, ["m", "folder"])
    assert set(found) == {"m", "folder"}
    with pytest.raises(ConfigError, match="no config for model 'nope'"):
        configs_from_dir(tmp_path, ["nope"])


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        ({"hidden_size": 8}, "'model_type' is missing"),
        ({"model_type": "mamba"}, "not supported"),
        (
            {
                "model_type": "gpt_neox",
                "hidden_size": 64,
                "num_hidden_layers": 2,
                "num_attention_heads": 4,
                "intermediate_size": 256,
                "rotary_pct": 0.25,
            },
            "'rotary_emb_base'",
        ),
        (
            {"model_type": "gpt2", "n_embd": "wide", "n_layer": 2, "n_head": 2},
            "d_model must be a non-negative number",
        ),
        (
            {"model_type": "gpt2", "n_embd": 64, "n_layer": 0, "n_head": 2},
            "n_layers must be a positive integer",
        ),
    ],
)
def test_bad_configs_name_field_and_source(cfg, message):
    with pytest.raises(ConfigError, match=message) as err:
        read_config(cfg)
    assert "dict" in str(err.value)


def test_missing_file():
    with pytest.raises(ConfigError, match="not found"):
        read_config("/nonexistent/config.json")


def test_configs_are_found_under_the_names_users_write(tmp_path):
    from importlib.resources import files

    from massdyn.predictors import ConfigError, configs_from_dir

    shipped = Path(str(files("massdyn.data").joinpath("pythia_configs")))
    archs = configs_from_dir(shipped, ["EleutherAI/pythia-160m", "pythia-70m"])
    assert archs["EleutherAI/pythia-160m"].n_layers == 12 and archs["pythia-70m"].n_layers == 6
    (tmp_path / "EleutherAI--pythia-1b.json").write_text((shipped / "pythia-1b.json").read_text())
    assert (
        configs_from_dir(tmp_path, ["EleutherAI/pythia-1b"])["EleutherAI/pythia-1b"].n_layers == 16
    )
    with pytest.raises(ConfigError, match=r"tried EleutherAI/pythia-9b\.json, .*pythia-9b\.json"):
        configs_from_dir(shipped, ["EleutherAI/pythia-9b"])
