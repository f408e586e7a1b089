import pytest

from massdyn.tracker.schedule import (
    StepSelection,
    is_pythia,
    paper_subset,
    pythia_facts,
    pythia_steps,
)


def test_pythia_schedule_has_154_revisions():
    steps = pythia_steps()
    assert len(steps) == 154
    assert steps[:11] == [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
    assert steps[11:] == list(range(1000, 143001, 1000))
    assert sum(m["n_layers"] for m in pythia_facts()["models"].values()) == 188


def test_paper_subset_is_about_37_spread_over_training():
    sub = paper_subset(pythia_steps())
    assert len(sub) == 37
    assert sub[0] == 0 and sub[-1] == 143000
    assert sub == sorted(set(sub)) and set(sub) <= set(pythia_steps())
    late = [s for s in sub if s >= 1000]
    gaps = [b - a for a, b in zip(late, late[1:], strict=False)]
    assert max(gaps) <= 2 * min(gaps)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("all", [0, 10, 20, 30, 40]),
        ("every:2", [0, 20, 40]),
        ("10,30,99", [10, 30, 99]),
    ],
)
def test_selection_modes(spec, expected):
    assert StepSelection.parse(spec).select([40, 0, 10, 30, 20]) == expected


def test_min_max_step():
    assert StepSelection.parse("all", min_step=10, max_step=30).select([0, 10, 20, 30, 40]) == [
        10,
        20,
        30,
    ]


@pytest.mark.parametrize("spec", ["every:0", "ten", "1,x"])
def test_bad_selection(spec):
    with pytest.raises(ValueError, match="steps"):
        StepSelection.parse(spec)


def test_is_pythia():
    assert is_pythia("EleutherAI/pythia-160m") and not is_pythia("gpt2/pythia-160m")
