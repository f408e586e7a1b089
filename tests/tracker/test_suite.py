"""Suite walks: shards of (source, revision) units, merged, against one-process walks."""

import json

import pandas as pd
import pytest

from massdyn.testing.synthetic import write_series
from massdyn.tracker.config import SourceSpec, WalkConfig
from massdyn.tracker.inputs import InputSpec
from massdyn.tracker.suite import (
    Unit,
    assign,
    expand_sources,
    merge,
    model_dir,
    parse_shard,
    status,
    walk_suite,
)
from tests.conftest import run_cli


def test_suite_files_expand_to_their_sources(tmp_path):
    (tmp_path / "s.json").write_text(json.dumps({"sources": ["a/b", "c/d"]}))
    assert expand_sources([str(tmp_path / "s.json"), "./x"]) == ["a/b", "c/d", "./x"]
    pythia = expand_sources(["data/pythia.json"])
    assert pythia[0].startswith("EleutherAI/pythia-") and len(pythia) == 9
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="lists no sources"):
        expand_sources([str(tmp_path / "bad.json")])
    with pytest.raises(ValueError, match="listed twice: a/b"):
        expand_sources(["a/b", str(tmp_path / "s.json")])


def test_shipped_suites_are_walked_by_name_and_a_local_folder_wins(tmp_path, monkeypatch):
    from massdyn.tracker.schedule import shipped_suites

    names = shipped_suites()
    assert {"pythia", "pythia-deduped", "polypythias", "crfm-gpt2-small", "amber"} <= set(names)
    for name in names:
        sources = expand_sources([name])
        assert sources and all(s.count("/") == 1 for s in sources), name
        assert SourceSpec(source=[name]).is_suite
    assert expand_sources(["pythia"]) == expand_sources(["data/pythia.json"])
    poly = expand_sources(["polypythias"])
    assert len(poly) == 50 and "EleutherAI/pythia-160m-seed9" in poly
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pythia").mkdir()  # a folder of that name here is what the user means
    assert expand_sources(["pythia"]) == ["pythia"]


def test_shards_from_the_option_or_the_slurm_array(monkeypatch):
    assert parse_shard("2/4") == (2, 4)
    for bad in ("4/4", "1", "a/b", "-1/3"):
        with pytest.raises(ValueError, match="--shard"):
            parse_shard(bad)
    monkeypatch.delenv("SLURM_ARRAY_TASK_ID", raising=False)
    assert parse_shard(None) is None
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "5")
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "3")
    monkeypatch.setenv("SLURM_ARRAY_TASK_MIN", "4")
    assert parse_shard(None) == (1, 3)


def test_units_are_shared_once_each_and_balanced_by_bytes():
    units = [Unit("s", f"m{i % 3}", i, f"step{i}", nbytes=(i % 5 + 1) * 100) for i in range(40)]
    shards = assign(units, 4)
    flat = [u for s in shards for u in s]
    assert sorted(flat, key=lambda u: u.step) == sorted(units, key=lambda u: u.step)
    loads = [sum(u.nbytes for u in s) for s in shards]
    assert max(loads) - min(loads) <= 500  # at most the largest unit apart
    assert assign(list(reversed(units)), 4) == shards  # the order given does not matter


def test_a_revision_serving_anothers_weights_goes_with_its_twin():
    units = [Unit("s", "m", i, f"step{i}", nbytes=100 + i) for i in range(6)]
    units.append(Unit("s", "m", 7, "step7", nbytes=100, duplicate_of=2))
    for n in (2, 3, 4):
        shards = assign(units, n)
        home = next(i for i, s in enumerate(shards) if any(u.step == 2 for u in s))
        assert any(u.step == 7 for u in shards[home])
        assert sum(len(s) for s in shards) == 7


def config(out, text_file, seed=1, **kw):
    inputs = InputSpec(n_seqs=2, seq_len=16, text=str(text_file), prepend_bos=True, seed=seed)
    return WalkConfig(out=str(out), inputs=inputs, progress=False, device="cpu", **kw)


def tables(root):
    return {
        p.parent.name: pd.read_csv(p) for p in sorted(root.glob("*/measurements.csv"))
    }, pd.read_csv(root / "measurements.csv")


def test_three_shards_merge_to_the_one_process_walk(suite_sources, text_file, tmp_path):
    one = tmp_path / "one"
    walk_suite(suite_sources, config(one, text_file))
    sharded = tmp_path / "sharded"
    for k in range(3):
        walk_suite(suite_sources, config(sharded, text_file), shard=(k, 3))
    merged = merge(sharded)
    assert (merged["state"] == "done").all() and len(merged) == 7
    (per_a, all_a), (per_b, all_b) = tables(one), tables(sharded)
    assert set(per_a) == {"neox", "llama"} == set(per_b)
    for name in per_a:
        pd.testing.assert_frame_equal(per_a[name], per_b[name])
    pd.testing.assert_frame_equal(all_a, all_b)
    # Merging again changes nothing.
    merge(sharded)
    pd.testing.assert_frame_equal(tables(sharded)[1], all_b)


def test_an_interrupted_shard_is_pending_then_resumed(
    suite_sources, text_file, tmp_path, monkeypatch
):
    import massdyn.tracker.walker as walker

    out = tmp_path / "o"
    for k in (0, 2):
        walk_suite(suite_sources, config(out, text_file), shard=(k, 3))
    real = walker._measure_checkpoint
    calls = []

    def cancelled(*args, **kwargs):  # as scancel would, after the first checkpoint
        if calls:
            raise KeyboardInterrupt
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(walker, "_measure_checkpoint", cancelled)
    with pytest.raises(walker.WalkInterrupted):
        walk_suite(suite_sources, config(out, text_file), shard=(1, 3))
    monkeypatch.setattr(walker, "_measure_checkpoint", real)
    before = status(out)
    assert (before["state"] == "pending").any() and (before["state"] == "done").any()
    walk_suite(suite_sources, config(out, text_file), shard=(1, 3))  # the same command again
    assert (merge(out)["state"] == "done").all()
    one = tmp_path / "one"
    walk_suite(suite_sources, config(one, text_file))
    pd.testing.assert_frame_equal(tables(one)[1], tables(out)[1])


def test_merge_refuses_shards_walked_with_other_inputs(suite_sources, text_file, tmp_path):
    out = tmp_path / "o"
    walk_suite(suite_sources, config(out, text_file), shard=(0, 2))
    walk_suite(suite_sources, config(out, text_file, seed=7), shard=(1, 2))
    with pytest.raises(ValueError, match="refusing to merge .* their inputs sha256 differ"):
        merge(out)
    assert not (out / "measurements.csv").exists()


def test_status_names_a_failed_unit_with_its_reason(tmp_path, tokenizer, text_file):
    series = write_series(tmp_path / "s", (0, 10), tokenizer=tokenizer)
    for f in (series / "step10").glob("*.safetensors"):
        f.unlink()  # a revision without weights
    walk_suite([str(series)], config(tmp_path / "o", text_file), shard=(0, 1))
    table = status(tmp_path / "o").set_index("step")
    assert table.loc[0, "state"] == "done"
    assert table.loc[10, "state"] == "failed" and "no model weights" in table.loc[10, "reason"]


@pytest.mark.slow
def test_cli_jobs_runs_the_shards_as_processes_and_merges(suite_sources, text_file, tmp_path):
    args = ["--text", text_file, "--seqs", 2, "--seq-len", 16, "--bos", "--device", "cpu"]
    out = run_cli("walk", *suite_sources, *args, "--out", tmp_path / "j", "--jobs", 2)
    assert out.returncode == 0, out.stderr
    assert "7 units: 7 done" in out.stdout
    assert "run: massdyn merge" not in out.stdout  # the parent merged already
    again = run_cli("walk", *suite_sources, *args, "--out", tmp_path / "j", "--jobs", 3)
    assert again.returncode == 2 and "was planned as 2 shards" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1
    one = run_cli("walk", *suite_sources, *args, "--out", tmp_path / "one")
    assert one.returncode == 0, one.stderr
    pd.testing.assert_frame_equal(tables(tmp_path / "j")[1], tables(tmp_path / "one")[1])
    st = run_cli("status", tmp_path / "j")
    assert st.returncode == 0 and "7 units: 7 done" in st.stdout
    bad = run_cli("walk", *suite_sources, *args, "--name", "x", "--out", tmp_path / "n")
    assert bad.returncode == 2 and "--name names one series" in bad.stderr
    assert model_dir("EleutherAI/pythia-70m") == "EleutherAI--pythia-70m"


def test_shards_that_never_ran_leave_their_units_pending_and_merge_exits_1(
    suite_sources, text_file, tmp_path
):
    out = tmp_path / "o"
    walk_suite(suite_sources, config(out, text_file), shard=(0, 3))
    table = merge(out)
    assert len(table) == 7  # the whole suite, not only shard 0's units
    assert set(table["state"]) == {"done", "pending"} and (table["state"] == "done").sum() < 7
    run = run_cli("merge", out)
    assert run.returncode == 1 and "pending" in run.stdout
    st = run_cli("status", out)
    assert "7 units: " in st.stdout and "pending" in st.stdout


def test_a_shard_count_that_changed_between_shards_is_refused(suite_sources, text_file, tmp_path):
    out = tmp_path / "o"
    walk_suite(suite_sources, config(out, text_file), shard=(0, 2))
    with pytest.raises(ValueError, match="was planned as 2 shards; --shard K/3"):
        walk_suite(suite_sources, config(out, text_file), shard=(1, 3))
    with pytest.raises(ValueError, match="planned with 7 units .* this walk plans [0-9]+ "):
        walk_suite(suite_sources[:1], config(out, text_file), shard=(1, 2))
    walk_suite(suite_sources, config(out, text_file), shard=(1, 2))
    assert (merge(out)["state"] == "done").all()


def test_a_shard_table_cut_short_is_unreadable_not_nan(suite_sources, text_file, tmp_path):
    out = tmp_path / "o"
    for k in range(2):
        walk_suite(suite_sources, config(out, text_file), shard=(k, 2))
    shard_table = next(out.glob("*/shards/1-of-2/measurements.csv"))
    text = shard_table.read_text()
    shard_table.write_text(text[: len(text) - 40])  # a partial copy, cut mid-line
    last_step = int(pd.read_csv(shard_table)["step"].iloc[-1])
    table = merge(out)
    model = shard_table.parent.parent.parent.name
    failed = table[table["state"] == "failed"]
    assert list(zip(failed["model"], failed["step"], strict=True)) == [(model, last_step)]
    assert "cut short" in failed["reason"].iloc[0]
    merged = pd.read_csv(out / "measurements.csv")
    assert not merged.isna().any().any() and last_step not in set(
        merged.loc[merged["model"] == model, "step"]
    )


def test_shipped_suites_declare_the_schedules_that_are_known():
    from massdyn.tracker.suite import expand_suites

    pythia = dict(expand_suites(["pythia", "polypythias"]))
    steps = pythia["EleutherAI/pythia-70m"].schedule.steps()
    assert len(steps) == 154 and steps[:3] == [0, 1, 2] and steps[-1] == 143000
    assert pythia["EleutherAI/pythia-14m-seed3"].schedule.steps() == steps
    assert any("pythia-2.8b" in f for f in pythia["EleutherAI/pythia-70m"].known_faults)
    # a Pythia repo named alone has Pythia's; a suite that declares none has None
    alone = dict(expand_suites(["EleutherAI/pythia-1b"]))["EleutherAI/pythia-1b"]
    assert alone.schedule is not None and alone.suite == ""
    others = dict(expand_suites(["amber", "olmo-2-0425-1b"]))
    assert {f.schedule for f in others.values()} == {None}


def test_every_shipped_suite_names_grammar_patterns_that_exist():
    from massdyn.data import read_json
    from massdyn.tracker.schedule import shipped_suites
    from massdyn.tracker.suite import expand_suites

    patterns = {p["name"] for p in read_json("revisions.json")["patterns"]}
    for name in shipped_suites():
        facts = {f for _, f in expand_suites([name])}
        assert len(facts) == 1, name
        (f,) = facts
        assert f.suite == name and f.revisions and set(f.revisions) <= patterns, name


def test_shards_merge_the_mechanism_tables_too(suite_sources, text_file, tmp_path):
    everything = {"attention": True, "super_weights": True, "interventions": "0"}
    one = tmp_path / "one"
    walk_suite(suite_sources, config(one, text_file, **everything))
    sharded = tmp_path / "sharded"
    for k in range(3):
        walk_suite(suite_sources, config(sharded, text_file, **everything), shard=(k, 3))
    merge(sharded)
    for name in ("attention", "superweights", "interventions"):
        for model in ("neox", "llama"):
            a = pd.read_csv(one / model / f"{name}.csv")
            b = pd.read_csv(sharded / model / f"{name}.csv")
            pd.testing.assert_frame_equal(a, b)
            assert sorted(a["step"].unique()) == sorted(
                pd.read_csv(one / model / "measurements.csv")["step"].unique()
            )
        pd.testing.assert_frame_equal(
            pd.read_csv(one / f"{name}.csv"), pd.read_csv(sharded / f"{name}.csv")
        )


def test_units_measured_without_a_mechanism_asked_for_are_pending(
    suite_sources, text_file, tmp_path
):
    """What a Slurm submission sends: a walk asked for --attention does not skip them."""
    from massdyn.tracker.suite import pending_units

    out = tmp_path / "suite"
    walk_suite(suite_sources, config(out, text_file))
    assert pending_units(suite_sources, config(out, text_file)) == []
    wanted = config(out, text_file, attention=True)
    assert len(pending_units(suite_sources, wanted)) == 7
    walk_suite(suite_sources, wanted)
    assert pending_units(suite_sources, wanted) == []
    assert len(pd.read_csv(out / "attention.csv")["step"].unique()) > 1
