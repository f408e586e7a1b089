"""``massdyn export``: walk folders as a Hugging Face dataset folder, read back by datasets."""

import pandas as pd
import pytest
from huggingface_hub import DatasetCard

from massdyn.cli import main
from tests.conftest import run_cli

GOOD = ["--seqs", 2, "--seq-len", 16, "--bos"]


@pytest.fixture(scope="module")
def walked(tmp_path_factory, series, text_file):
    root = tmp_path_factory.mktemp("export")
    run_cli("walk", series, "--text", text_file, *GOOD, "--out", root / "w", check=True)
    run_cli("fit", root / "w" / "measurements.csv", "--out", root / "params.csv", "--jobs", 1)
    return root


def test_the_folder_loads_with_datasets_and_holds_every_row(walked, tmp_path, capsys):
    from datasets import load_dataset

    out = tmp_path / "ds"
    args = ["export", str(walked / "w"), "--out", str(out), "--params", str(walked / "params.csv")]
    assert main(args) == 0
    assert "hf upload USER/NAME" in capsys.readouterr().out
    for name in ("measurements", "checkpoints", "params"):
        source = walked / "w" / f"{name}.csv" if name != "params" else walked / "params.csv"
        want = pd.read_csv(source)
        # A cache of its own: datasets' default one can serve an earlier run's folder.
        cache = tmp_path / "datasets-cache"
        got = load_dataset(str(out), name, split="train", cache_dir=str(cache)).to_pandas()
        assert list(got.columns) == list(want.columns) and len(got) == len(want)
        numeric = want.select_dtypes("number").columns
        pd.testing.assert_frame_equal(
            got[numeric].reset_index(drop=True), want[numeric], check_dtype=False
        )
    card = DatasetCard.load(out / "README.md")
    meta = card.data.to_dict()
    assert meta["license"] == "cc-by-4.0" and "massive-activations" in meta["tags"]
    assert [c["config_name"] for c in meta["configs"]] == ["measurements", "checkpoints", "params"]
    sha = pd.read_json(walked / "w" / "inputs.json", typ="series")["sha256"]
    assert sha in card.text and str(walked / "w") not in card.text  # sources, not folders
    assert str(series_source(walked)) in card.text


def series_source(walked):
    import yaml

    return yaml.safe_load((walked / "w" / "config.yaml").read_text())["source"][0]


@pytest.mark.parametrize(
    "case, message",
    [
        ("not empty", "exists and is not an empty folder"),
        ("inside the input", "lies in the input folder"),
        ("no measurements", "holds no measurements.csv"),
        ("twice", "repeat a (model, step, layer, seq) key"),
    ],
)
def test_bad_exports_are_one_line_and_write_nothing(walked, tmp_path, capsys, case, message):
    out, folders = tmp_path / "ds", [str(walked / "w")]
    if case == "not empty":
        out.mkdir()
        (out / "keep.txt").write_text("mine")
    elif case == "inside the input":
        out = walked / "w" / "ds"
    elif case == "no measurements":
        (tmp_path / "empty").mkdir()
        folders = [str(tmp_path / "empty")]
    else:
        folders = folders * 2
    before = sorted(p.name for p in (walked / "w").iterdir())
    assert main(["export", *folders, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert sorted(p.name for p in (walked / "w").iterdir()) == before
    assert not (out / "data").exists()
    if case == "not empty":
        assert (out / "keep.txt").read_text() == "mine"
