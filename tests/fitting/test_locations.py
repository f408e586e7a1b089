"""Where the top entries sit: a table worked by hand, and through the CLI."""

import math

import pandas as pd
import pytest

from massdyn.cli import main
from massdyn.fitting.report import locations


def table():
    # (step, seq, top1_token, top1_dim, top2_dim, top3_dim) for layer 0 of model m.
    cells = [
        (0, 0, 5, 7, 1, 2),
        (0, 1, 0, 3, 1, 4),
        (100, 0, 0, 7, 1, 9),
        (100, 1, 0, 7, 2, 9),
        (200, 0, 0, 7, 9, 1),
        (200, 1, 0, 7, 9, 1),
    ]
    rows = [
        dict(model="m", step=s, layer=0, seq=q, top1=10.0, top2=5.0, top3=4.0, median=1.0,
             top1_token=t, top1_dim=d1, top2_dim=d2, top3_dim=d3)
        for s, q, t, d1, d2, d3 in cells
    ]  # fmt: skip
    return pd.DataFrame(rows)


def test_shares_dims_and_their_turnover_worked_by_hand():
    got = locations(table()).set_index("step")
    assert list(got["on_first_token"]) == [0.5, 1.0, 1.0]
    assert list(got.loc[[100, 200], "top_dim"]) == [7, 7]  # step 0: dims 7 and 3 tie
    assert list(got["top_dim_share"]) == [0.5, 1.0, 1.0]
    assert list(got["dims"]) == ["1 2 3 4 7", "1 2 7 9", "1 7 9"]
    # {1,2,3,4,7} vs {1,2,7,9}: 3 shared of 6; {1,2,7,9} vs {1,7,9}: 3 of 4.
    assert math.isnan(got.loc[0, "overlap_prev"])
    assert got.loc[100, "overlap_prev"] == pytest.approx(3 / 6)
    assert got.loc[200, "overlap_prev"] == pytest.approx(3 / 4)
    assert list(got["overlap_last"]) == pytest.approx([2 / 6, 3 / 4, 1.0])


def test_the_cli_writes_the_table_and_refuses_one_without_locations(tmp_path, capsys):
    table().to_csv(tmp_path / "m.csv", index=False)
    assert main(["locate", str(tmp_path / "m.csv"), "--out", str(tmp_path / "l.csv")]) == 0
    assert "m layer 0 at step 200: top-1 on the first token in 100%" in capsys.readouterr().out
    assert len(pd.read_csv(tmp_path / "l.csv")) == 3
    table().drop(columns=["top1_token"]).to_csv(tmp_path / "bare.csv", index=False)
    assert main(["locate", str(tmp_path / "bare.csv"), "--out", str(tmp_path / "x.csv")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "has no top1_token" in err[0]
