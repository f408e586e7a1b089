"""The revision grammar: every public suite's names, stages made cumulative, nothing dropped."""

import pytest

from massdyn.tracker.sources import CheckpointError
from massdyn.tracker.sources.revisions import RevisionGrammar, compile_pattern

B = 10**9


@pytest.mark.parametrize(
    "name, step, stage, tokens",
    [
        ("step143000", 143000, "", None),  # Pythia, PolyPythias
        ("step33600-tokens141B", 33600, "", 141 * B),  # OLMo 1, Apertus
        ("stage1-step1000-tokens4B", 1000, "1", 4 * B),  # OLMo 2
        ("step150-tokens1B", 150, "", 1 * B),  # OLMo 2 without the prefix
        ("stage1-step5000", 5000, "1", None),  # OLMo 3
        ("step-40000", 40000, "", None),  # SmolLM2
        ("stage2-step-40000", 40000, "2", None),  # SmolLM3
        ("step-001000-2BT", 1000, "", 2 * B),  # FineWeb ablations
        ("ckpt_012", 12, "", None),  # LLM360 Amber (an index)
        ("CrystalCoder_phase2_checkpoint_000500", 500, "2", None),  # LLM360 Crystal
        ("checkpoint-400000", 400000, "", None),  # Stanford CRFM GPT-2
        ("global_step1000", 1000, "", None),  # BLOOM intermediates
    ],
)
def test_every_public_suite_name_parses(name, step, stage, tokens):
    rev, aside = RevisionGrammar().parse(name)
    assert (rev.step, rev.stage, rev.tokens, aside) == (step, stage, tokens, False)


def test_local_only_patterns_apply_to_folders_only():
    assert RevisionGrammar().parse("iter_0001000") is None
    assert RevisionGrammar(local=True).parse("iter_0001000")[0].step == 1000
    assert RevisionGrammar(local=True).parse("step_16")[0].step == 16


def test_a_listing_keeps_what_matches_nothing_and_sets_parallel_branches_aside():
    names = [
        "main",
        "stage1-step0-tokens0B",
        "step150-tokens1B",
        "stage1-step1000-tokens4B",
        "stage2-ingredient1-step10-tokens1B",
        "fp32",
    ]
    listing = RevisionGrammar().listing(names, "allenai/x")
    assert listing.steps == {
        0: "stage1-step0-tokens0B",
        150: "step150-tokens1B",
        1000: "stage1-step1000-tokens4B",
    }
    assert listing.unmatched == ["fp32", "main"]
    assert listing.set_aside == ["stage2-ingredient1-step10-tokens1B"]


def test_steps_and_tokens_that_restart_per_stage_are_made_cumulative():
    names = [
        "CrystalCoder_phase1_checkpoint_000000",
        "CrystalCoder_phase1_checkpoint_001000",
        "CrystalCoder_phase2_checkpoint_000000",  # phase 1's end, named anew
        "CrystalCoder_phase2_checkpoint_000500",
        "CrystalCoder_phase3_checkpoint_000200",
    ]
    listing = RevisionGrammar().listing(names, "LLM360/CrystalCoder")
    assert sorted(listing.steps) == [0, 1000, 1500, 1700]
    assert listing.revisions[1700].named_step == 200 and listing.revisions[1700].stage == "3"
    assert listing.set_aside == ["CrystalCoder_phase2_checkpoint_000000"]
    olmo = RevisionGrammar().listing(
        ["stage1-step2000-tokens8B", "stage2-step500-tokens2B"], "allenai/x"
    )
    assert olmo.revisions[2500].tokens == 10 * B  # 8B in stage 1, then 2B more
    # Steps that continue across stages are left as they are.
    smol = RevisionGrammar().listing(["stage1-step-1000", "stage2-step-3000"], "x")
    assert sorted(smol.steps) == [1000, 3000]


def test_two_names_for_one_step_are_refused_naming_both():
    with pytest.raises(
        CheckpointError, match="two revisions for step 16: checkpoint-16 and step16"
    ):
        RevisionGrammar(local=True).listing(["step16", "checkpoint-16"], "series")


def test_a_user_pattern_comes_first_and_must_name_the_step():
    grammar = RevisionGrammar(r"^ck-(?P<step>\d+)-(?P<tokens>\d+)tok$")
    rev, _ = grammar.parse("ck-7-14336tok")
    assert (rev.step, rev.tokens) == (7, 14336)
    with pytest.raises(ValueError, match="no \\(\\?P<step>...\\) group"):
        compile_pattern(r"^ck-(\d+)$")
    with pytest.raises(ValueError, match="not a valid regex"):
        compile_pattern(r"^ck-(?P<step>\d+$")
