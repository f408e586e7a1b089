"""The shipped mini-suite data set: present, small, complete, and showing emergence."""

import json
from importlib.resources import files

import pandas as pd
import pytest

from massdyn.fitting.report import emergence_report
from massdyn.tracker.live import pythia_style_schedule

DATA = files("massdyn.data").joinpath("minisuite")
SUITE = json.loads(files("massdyn.data").joinpath("minisuite.json").read_text())


@pytest.fixture(scope="module")
def suite():
    return SUITE


@pytest.fixture(scope="module")
def measurements():
    return pd.read_csv(DATA.joinpath("measurements.csv"))


@pytest.fixture(scope="module")
def provenance():
    return json.loads(DATA.joinpath("provenance.json").read_text())


@pytest.fixture(scope="module")
def report(measurements):
    return emergence_report(measurements)


def test_small_and_documented(suite, provenance):
    # The data set grows with every member trained (seed replicates, the grown suite), so
    # "small" is per measured row: tables and configs only, no checkpoint or stray file.
    paths = list(_walk(DATA))
    assert {p.name.rsplit(".", 1)[-1] for p in paths} <= {"csv", "json"}
    tables = [p for p in paths if p.name == "measurements.csv"]
    rows = sum(len(pd.read_csv(p)) for p in tables)
    assert sum(p.stat().st_size for p in paths) < 250 * rows + 2**20
    assert {"recipe", "members", "corpus", "versions", "runs"} <= set(provenance)
    # Trained in one sitting (members in parallel), whose wall time bounds every member's.
    assert all(r["resumed_from"] == 0 for r in provenance["runs"])
    assert provenance["sitting"]["wall_seconds"] < 90 * 60
    assert max(r["seconds"] for r in provenance["runs"]) <= provenance["sitting"]["wall_seconds"]
    for m in suite["members"]:
        cfg = json.loads(DATA.joinpath("configs", f"{m['name']}.json").read_text())
        assert (cfg["hidden_size"], cfg["num_hidden_layers"], cfg["num_attention_heads"]) == (
            m["d_model"],
            m["n_layers"],
            m["n_heads"],
        )


def test_made_by_the_suite_file_as_it_stands(suite, provenance):
    # Editing the recipe or a member in minisuite.json without regenerating the data (make
    # minisuite) would leave the data set describing another suite.
    for key in ("recipe", "members", "corpus", "tokenizer"):
        assert provenance[key] == suite[key], key


def test_every_member_every_step_layer_and_sequence(suite, measurements):
    r = suite["recipe"]
    schedule = pythia_style_schedule(r["max_steps"], r["schedule_every"])
    for m in suite["members"]:
        mine = measurements[measurements["model"] == m["name"]]
        assert sorted(mine["step"].unique()) == schedule
        assert len(mine) == len(schedule) * m["n_layers"] * r["eval_seqs"]


def test_every_member_grows_at_least_threefold(suite, report):
    for m in suite["members"]:
        if m["n_layers"] >= 3:
            assert report.loc[report["model"] == m["name"], "growth"].max() >= 3, m["name"]


@pytest.mark.parametrize("name", [m["name"] for m in SUITE["members"] if m["n_layers"] >= 3])
def test_classic_signature(name, report):
    mine = report[report["model"] == name]
    # Some layer grew >= 3x and its top-1 sat at one (token, dim) over the last third.
    signature = mine[(mine["growth"] >= 3) & (mine["fixed_share"] == 1.0)]
    assert len(signature), f"{name}:\n{mine.round(2).to_string()}"


def test_fits_of_the_shipped_params_cover_every_layer(suite):
    params = pd.read_csv(DATA.joinpath("params.csv"))
    for m in suite["members"]:
        layers = params.loc[params["model"] == m["name"], "layer"]
        assert sorted(layers) == list(range(m["n_layers"]))
    assert params["status"].ne("failed").all()


def _walk(root):
    for p in root.iterdir():
        if p.is_dir():
            yield from _walk(p)
        else:
            yield p


def test_the_schedule_pilot_is_shipped_as_its_suite_file_describes():
    """Both seeds, every layer, step 0 and the 120 log-spaced steps to 16,000, its recipe."""
    from dataclasses import asdict

    from massdyn.minisuite import Suite
    from massdyn.tracker.live import log_schedule

    folder = files("massdyn.data").joinpath("minisuite", "cosine")
    cosine = Suite.load(str(files("massdyn.data").joinpath("minisuite-cosine.json")))
    m = pd.read_csv(folder.joinpath("measurements.csv"))
    prov = json.loads(folder.joinpath("provenance.json").read_text())
    assert json.loads(json.dumps(asdict(cosine.recipe))) == prov["recipe"]
    assert sorted(m["model"].unique()) == sorted(x.name for x in cosine.members)
    steps = sorted(log_schedule(cosine.recipe.max_steps, cosine.recipe.schedule_points))
    for _, g in m.groupby("model"):
        assert sorted(g["step"].unique()) == steps and g["layer"].nunique() == 4
    params = pd.read_csv(folder.joinpath("params.csv"))
    assert len(params) == 8 and params["r2"].min() > 0.95
