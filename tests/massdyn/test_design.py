"""The grown suite's design: data and the code that drew it agree, and it spans the axes."""

import json
from dataclasses import asdict

import pytest

from massdyn.data import path as data_path
from massdyn.minisuite import Member, Suite
from massdyn.minisuite.design import AXES, load_design, space_filling, training_cost


@pytest.fixture(scope="module")
def spec():
    return json.loads(data_path("minisuite-design.json").read_text())


@pytest.fixture(scope="module")
def grown(spec):
    return Suite.load(data_path("minisuite-design.json"))


def test_the_file_holds_what_its_design_block_draws(spec):
    drawn = space_filling(load_design(spec), Suite.load().members)
    assert [asdict(m) for m in drawn] == spec["members"]


def test_same_recipe_corpus_and_tokenizer_as_the_shipped_suite(grown):
    shipped = Suite.load()
    assert grown.recipe == shipped.recipe
    assert grown.corpus == shipped.corpus and grown.tokenizer == shipped.tokenizer


def test_the_grown_suite_spans_every_axis(grown):
    everyone = [*Suite.load().members, *grown.members]
    archs = {tuple(getattr(m, a) for a in (*AXES, "parallel_residual")) for m in everyone}
    assert len(archs) == len(everyone) >= 24  # distinct architectures, no repeats
    for axis in AXES:
        assert len({getattr(m, axis) for m in everyone}) >= 3, axis
    assert {m.n_layers for m in everyone} >= {2, 8}
    assert {m.n_heads for m in everyone} >= {1, 16}
    assert {m.d_model for m in everyone} >= {96, 256}
    heads_per_dim = [m.n_heads / m.d_model for m in everyone]
    assert max(heads_per_dim) / min(heads_per_dim) > 10
    assert sum(not m.parallel_residual for m in everyone) >= 2


def test_the_cost_cap_holds_and_cheapest_come_first(spec, grown):
    ref = Suite.load().member(spec["design"]["reference"])
    cap = spec["design"]["max_cost_ratio"] * training_cost(ref)
    costs = [training_cost(m) for m in grown.members]
    assert max(costs) <= cap and costs == sorted(costs)


def test_odd_rotary_dims_are_refused_as_transformers_would_build_them():
    # Head size 6 at 25%: transformers rotates int(1.5) = 1 dim, which cannot be paired.
    with pytest.raises(ValueError, match="1 rotary dims"):
        Member("m", d_model=96, n_layers=2, n_heads=16, rotary_pct=0.25)
    Member("m", d_model=96, n_layers=2, n_heads=16, rotary_pct=1.0)  # 6 dims: fine
