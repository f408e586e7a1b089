"""``massdyn fit --by architecture``: the seeds of one architecture fitted as one series."""

import pandas as pd
import pytest

from massdyn.cli import main


def test_fit_by_architecture_pools_the_seeds_and_gives_their_spread(tmp_path, capsys):
    import shutil

    from massdyn.data import path as data_path

    shipped = data_path("minisuite")
    both = pd.concat(
        [
            pd.read_csv(shipped / "measurements.csv"),
            pd.read_csv(shipped / "seeds" / "measurements.csv"),
        ]
    )
    both = both[both["model"].str.startswith("mini-d160-l4-h4")]
    both.to_csv(tmp_path / "m.csv", index=False)
    configs = tmp_path / "configs"
    configs.mkdir()
    for f in [
        *(shipped / "configs").glob("mini-d160*"),
        *(shipped / "seeds" / "configs").glob("mini-d160*"),
    ]:
        shutil.copy(f, configs / f.name)
    args = ["fit", str(tmp_path / "m.csv"), "--out", str(tmp_path / "p.csv"), "--jobs", "1"]
    assert main([*args, "--by", "architecture"]) == 2
    assert "--by architecture needs --configs" in capsys.readouterr().err
    assert main([*args, "--by", "architecture", "--configs", str(configs)]) in (0, 1)
    p = pd.read_csv(tmp_path / "p.csv")
    assert set(p["model"]) == {"mini-d160-l4-h4"} and (p["seeds"] == 3).all()
    last = both[both["step"] == both["step"].max()]
    per = last.groupby(["model", "layer"])[["top1", "median"]].mean()
    ratio = (per["top1"] / per["median"]).groupby("layer")
    assert p.set_index("layer")["final_seed_lo"].to_dict() == pytest.approx(ratio.min().to_dict())
    assert p.set_index("layer")["final_seed_hi"].to_dict() == pytest.approx(ratio.max().to_dict())
    assert "1 architecture(s) from 3 model(s), seeds pooled" in capsys.readouterr().out
