"""The Hub code path for real, against olah serving git repos on loopback."""

import json
import os

import pandas as pd
import pytest

from massdyn.tracker.inputs import InputSpec, build_inputs
from massdyn.tracker.schedule import StepSelection
from massdyn.tracker.sources import CheckpointError, HubSource
from massdyn.tracker.walker import WalkConfig, walk
from tests.conftest import run_cli

# Seconds to minutes each (training, servers, subprocesses): outside make test-fast.
pytestmark = pytest.mark.slow


def hub_env(hub, cache, **extra):
    return {"HF_ENDPOINT": hub.url, "HF_HUB_CACHE": str(cache), "HF_HUB_DISABLE_XET": "1", **extra}


def snapshots_of(cache, repo_id):
    """The revisions of ``repo_id`` left in a Hub cache (none when the repo folder is gone)."""
    folder = cache / f"models--{repo_id.replace('/', '--')}" / "snapshots"
    return sorted(folder.iterdir()) if folder.exists() else []


def walk_args(text_file, out):
    return ["--text", text_file, "--seqs", 2, "--seq-len", 16, "--bos", "--out", out]


def test_lists_step_branches_and_ignores_others(hub, tmp_path):
    src = HubSource("tiny/neox", cache_dir=str(tmp_path), endpoint=hub.url)
    assert src.list_steps() == {0: "step0", 10: "step10", 100: "step100", 1000: "step1000"}


def test_cli_walk_through_the_hub_verifies_and_deletes_what_it_downloaded(hub, text_file, tmp_path):
    cache = tmp_path / "cache"
    out = run_cli(
        "walk", "tiny/neox-lfs", *walk_args(text_file, tmp_path / "o"), env=hub_env(hub, cache)
    )
    assert out.returncode == 0, out.stderr
    ck = pd.read_csv(tmp_path / "o" / "checkpoints.csv").set_index("step")
    assert list(ck.index) == [0, 10, 100, 101, 1000]
    # step101 serves step100's weights: the audit of the Hub's tree says so before any
    # download, and it is recorded, not downloaded or measured.
    assert ck.loc[101, "status"] == "duplicate" and ck.loc[101, "duplicate_of"] == 100
    assert (ck.drop(101)["verified"] == "lfs-sha256").all()
    assert pd.isna(ck.loc[10, "duplicate_of"])
    assert snapshots_of(cache, "tiny/neox-lfs") == []
    m = pd.read_csv(tmp_path / "o" / "measurements.csv")
    assert (m["model"] == "tiny/neox-lfs").all() and len(m) == 4 * 2 * 2
    assert 101 not in set(m["step"])
    assert "saved" in out.stdout and "not downloaded" in out.stdout
    again = run_cli(
        "walk", "tiny/neox-lfs", *walk_args(text_file, tmp_path / "o"), env=hub_env(hub, cache)
    )
    assert again.returncode == 0, again.stderr
    assert "4 already measured, 0 measured now" in again.stdout
    assert pd.read_csv(tmp_path / "o" / "measurements.csv").equals(m)


def test_duplicates_measure_measures_identical_revisions_and_flags_them(hub, text_file, tmp_path):
    out = run_cli(
        "walk",
        "tiny/neox-lfs",
        *walk_args(text_file, tmp_path / "o"),
        "--duplicates",
        "measure",
        env=hub_env(hub, tmp_path / "cache"),
    )
    assert out.returncode == 0, out.stderr
    ck = pd.read_csv(tmp_path / "o" / "checkpoints.csv").set_index("step")
    assert (ck["status"] == "ok").all() and (ck["verified"] == "lfs-sha256").all()
    assert ck.loc[101, "duplicate_of"] == 100
    m = pd.read_csv(tmp_path / "o" / "measurements.csv")
    assert len(m) == 5 * 2 * 2
    assert set(m.loc[m["duplicate_of"] == 100, "step"]) == {101}
    same = m[m["step"] == 100].drop(columns=["step", "duplicate_of"]).reset_index(drop=True)
    again = m[m["step"] == 101].drop(columns=["step", "duplicate_of"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(same, again)


def test_hub_and_local_walks_agree(hub, series, text_file, tmp_path):
    env = hub_env(hub, tmp_path / "cache")
    assert (
        run_cli("walk", "tiny/neox", *walk_args(text_file, tmp_path / "h"), env=env).returncode == 0
    )
    tok = series  # the local series carries the same tokenizer files
    local = run_cli(
        "walk",
        series,
        *walk_args(text_file, tmp_path / "l"),
        "--tokenizer",
        tok,
        "--name",
        "tiny/neox",
    )
    assert local.returncode == 0, local.stderr
    cols = ["step", "layer", "seq", "top1", "top2", "top3", "median"]
    pd.testing.assert_frame_equal(
        pd.read_csv(tmp_path / "h" / "measurements.csv")[cols],
        pd.read_csv(tmp_path / "l" / "measurements.csv")[cols],
    )


def test_keep_cache_and_never_delete_what_was_cached_before(hub, text_file, tmp_path):
    cache = tmp_path / "cache"
    env = hub_env(hub, cache)
    run_cli(
        "walk",
        "tiny/neox",
        "--steps",
        "0",
        "--keep-cache",
        *walk_args(text_file, tmp_path / "a"),
        env=env,
        check=True,
    )
    assert len(snapshots_of(cache, "tiny/neox")) == 1
    run_cli(
        "walk",
        "tiny/neox",
        "--steps",
        "0,10",
        *walk_args(text_file, tmp_path / "b"),
        env=env,
        check=True,
    )
    # step0 was in the cache before this walk and stays; step10 was downloaded and deleted.
    assert len(snapshots_of(cache, "tiny/neox")) == 1
    assert (cache / "models--tiny--neox" / "refs" / "step0").exists()


def test_corrupt_download_is_recorded_and_the_walk_goes_on(hub, text_file, tmp_path):
    out = run_cli(
        "walk",
        "tiny/neox-corrupt",
        *walk_args(text_file, tmp_path / "o"),
        env=hub_env(hub, tmp_path / "c"),
    )
    assert out.returncode == 1
    ck = pd.read_csv(tmp_path / "o" / "checkpoints.csv").set_index("step")
    assert "integrity check failed for model.safetensors" in ck.loc[10, "reason"]
    assert (ck.drop(10)["status"] == "ok").all()


def test_missing_revision(hub, text_file, tmp_path):
    src = HubSource("tiny/neox", cache_dir=str(tmp_path / "c"), endpoint=hub.url)
    with pytest.raises(CheckpointError, match="not available"):
        src.fetch(5, "step5")
    cfg = WalkConfig(
        out=str(tmp_path / "o"),
        steps=StepSelection.parse("0,5"),
        inputs=InputSpec(n_seqs=2, seq_len=16, text=str(text_file)),
        progress=False,
    )
    summary = walk(src, cfg)
    assert summary.ok == [0] and "not in the series" in summary.failed[5]


def test_pre_populated_cache_with_hub_offline(hub, text_file, tmp_path):
    cache = tmp_path / "cache"
    run_cli(
        "walk",
        "tiny/neox",
        "--keep-cache",
        "--steps",
        "0,100",
        *walk_args(text_file, tmp_path / "online"),
        env=hub_env(hub, cache),
        check=True,
    )
    # No server at all now: a closed port, and offline mode.
    env = {"HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    out = run_cli("walk", "tiny/neox", *walk_args(text_file, tmp_path / "offline"), env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    ck = pd.read_csv(tmp_path / "offline" / "checkpoints.csv")
    assert list(ck["step"]) == [0, 100] and (ck["verified"] == "unverified").all()
    assert len(snapshots_of(cache, "tiny/neox")) == 2  # nothing deleted
    pd.testing.assert_frame_equal(
        pd.read_csv(tmp_path / "online" / "measurements.csv"),
        pd.read_csv(tmp_path / "offline" / "measurements.csv"),
    )


def test_disk_budget(hub, text_file, tmp_path):
    src = HubSource("tiny/neox", cache_dir=str(tmp_path / "c"), endpoint=hub.url)
    size_gb = src.size_of("step0") / 1e9
    base = {"inputs": InputSpec(n_seqs=2, seq_len=16, text=str(text_file)), "progress": False}
    tight = walk(src, WalkConfig(out=str(tmp_path / "a"), disk_budget_gb=size_gb / 2, **base))
    assert not tight.ok and all("disk budget" in r for r in tight.failed.values())
    one = walk(src, WalkConfig(out=str(tmp_path / "b"), disk_budget_gb=size_gb * 1.5, **base))
    assert one.ok == [0, 10, 100, 1000]


def test_dataset_inputs_from_the_hub(hub, tokenizer, tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", hub.url)
    monkeypatch.setattr(
        constants,
        "HUGGINGFACE_CO_URL_TEMPLATE",
        hub.url + "/{repo_id}/resolve/{revision}/{filename}",
    )
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    got = build_inputs(InputSpec(n_seqs=3, seq_len=16, dataset="tiny/text"), tokenizer)
    assert got.ids.shape == (3, 16) and "dataset tiny/text" in got.source


def test_environment_is_honoured(hub, text_file, tmp_path):
    # HF_HOME alone decides the cache location when HF_HUB_CACHE is unset.
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_CACHE"}
    env.update(
        {"HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path / "home"), "HF_HUB_DISABLE_XET": "1"}
    )
    out = run_cli(
        "walk",
        "tiny/neox",
        "--steps",
        "0",
        "--keep-cache",
        *walk_args(text_file, tmp_path / "o"),
        env=env,
    )
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "home" / "hub" / "models--tiny--neox" / "refs" / "step0").exists()


def test_branches_sharing_a_commit_are_measured_once_and_nothing_is_left(hub, text_file, tmp_path):
    cache = tmp_path / "cache"
    out = run_cli(
        "walk", "tiny/neox-alias", *walk_args(text_file, tmp_path / "o"), env=hub_env(hub, cache)
    )
    assert out.returncode == 0, out.stdout
    ck = pd.read_csv(tmp_path / "o" / "checkpoints.csv").set_index("step")
    assert list(ck.index) == [0, 10, 100, 1000, 2000]
    # step1000 and step2000 both serve main's weights, the final model's: they belong to
    # the last step (as pythia-2.8b's mid-training branches serving main do), so the
    # earlier branch is the one recorded as the duplicate.
    assert (ck.drop(1000)["status"] == "ok").all() and ck.loc[1000, "status"] == "duplicate"
    assert ck.loc[1000, "duplicate_of"] == 2000
    assert snapshots_of(cache, "tiny/neox-alias") == []
    # Measured anyway on request: same commit, same weights, both measured, cache clean.
    again = run_cli(
        "walk",
        "tiny/neox-alias",
        *walk_args(text_file, tmp_path / "m"),
        "--duplicates",
        "measure",
        env=hub_env(hub, cache),
    )
    assert again.returncode == 0, again.stdout
    ck = pd.read_csv(tmp_path / "m" / "checkpoints.csv").set_index("step")
    assert (ck["status"] == "ok").all() and ck.loc[1000, "duplicate_of"] == 2000
    assert ck["duplicate_of"].isna().sum() == 4
    assert snapshots_of(cache, "tiny/neox-alias") == []
    # Its rows carry the flag, so a fit of this table leaves them out.
    m = pd.read_csv(tmp_path / "m" / "measurements.csv")
    assert set(m.loc[m["duplicate_of"].notna(), "step"]) == {1000}
    fitted = run_cli(
        "fit", str(tmp_path / "m" / "measurements.csv"), "--out", str(tmp_path / "p.csv")
    )
    # Five steps are too few for the five parameters: the failure counts the points it got.
    assert "left out" in fitted.stdout and "got 4" in fitted.stdout, fitted.stdout
    assert "got 5" not in fitted.stdout


def test_what_a_killed_walk_downloaded_is_deleted_by_its_next_run(hub, text_file, tmp_path):
    cache, out = tmp_path / "cache", tmp_path / "o"
    cfg = WalkConfig(
        out=str(out),
        steps=StepSelection.parse("0,10"),
        inputs=InputSpec(n_seqs=2, seq_len=16, text=str(text_file), prepend_bos=True),
        progress=False,
    )
    # A walk that downloads step0 and step100 and dies before measuring or releasing them:
    # the same calls the walker makes, then the process "ends".
    dead = HubSource("tiny/neox", cache_dir=str(cache), endpoint=hub.url)
    dead.recover(out, {"step0", "step100"})
    dead.fetch(0, "step0")
    dead.fetch(100, "step100")
    assert len(snapshots_of(cache, "tiny/neox")) == 2
    assert set(json.loads((out / "downloads.json").read_text())) == {"step0", "step100"}
    # Its next run: step0 is still to be measured and is used as it is; step100 is not
    # selected any more and is deleted at the start. Both are gone at the end.
    src = HubSource("tiny/neox", cache_dir=str(cache), endpoint=hub.url)
    summary = walk(src, cfg)
    assert summary.ok == [0, 10]
    assert snapshots_of(cache, "tiny/neox") == []
    assert not (out / "downloads.json").exists()


def test_name_is_used_for_hub_sources_and_the_summary_counts_duplicates(hub, text_file, tmp_path):
    out = run_cli(
        "walk",
        "tiny/neox-lfs",
        "--name",
        "my-series",
        *walk_args(text_file, tmp_path / "o"),
        env=hub_env(hub, tmp_path / "c"),
    )
    assert out.returncode == 0, out.stderr
    assert (pd.read_csv(tmp_path / "o" / "measurements.csv")["model"] == "my-series").all()
    assert "1 duplicates of another step" in out.stdout
    assert "step 101 has the same weights as step 100" in out.stdout


def test_disk_budget_message_names_sizes_in_readable_units(hub, text_file, tmp_path):
    src = HubSource("tiny/neox", cache_dir=str(tmp_path / "c"), endpoint=hub.url)
    need = src.size_of("step0")
    cfg = WalkConfig(
        out=str(tmp_path / "a"),
        steps=StepSelection.parse("0"),
        disk_budget_gb=need / 2e9,
        inputs=InputSpec(n_seqs=2, seq_len=16, text=str(text_file)),
        progress=False,
    )
    reason = walk(src, cfg).failed[0]
    assert f"needs {need / 1e3:.2f} kB, more than the disk budget of {need / 2e3:.2f} kB" in reason


def test_keep_cache_of_the_walk_config_is_obeyed(hub, text_file, tmp_path, monkeypatch):
    # WalkConfig.keep_cache used to be ignored: only the CLI's source object saw it.
    cache = tmp_path / "cache"
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    src = HubSource("tiny/neox", cache_dir=str(cache), endpoint=hub.url)
    base = dict(
        steps=StepSelection.parse("0,10"),
        inputs=InputSpec(n_seqs=2, seq_len=16, text=str(text_file)),
        progress=False,
    )
    walk(src, WalkConfig(out=str(tmp_path / "a"), keep_cache=True, **base))
    assert len(snapshots_of(cache, "tiny/neox")) == 2
    other = tmp_path / "cache2"
    src = HubSource("tiny/neox", cache_dir=str(other), endpoint=hub.url)
    walk(src, WalkConfig(out=str(tmp_path / "b"), **base))
    assert snapshots_of(other, "tiny/neox") == []


def test_every_source_implements_the_declared_protocol(hub, tmp_path, series, monkeypatch):
    from massdyn.tracker.sources import CachedHubSource, CheckpointSource, LocalSource, open_source

    online = HubSource("tiny/neox", cache_dir=str(tmp_path), endpoint=hub.url)
    for src in (online, CachedHubSource("tiny/neox"), LocalSource(series)):
        assert isinstance(src, CheckpointSource), type(src).__name__
    assert type(open_source("tiny/neox")) is HubSource
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    assert type(open_source("tiny/neox", name="n")) is CachedHubSource


@pytest.mark.parametrize(
    "repo, steps, tokens, stages, unmatched",
    [
        (
            "allenai/OLMo-2-tiny",
            [0, 10, 100, 150],
            [0, 10**9, 2 * 10**9, 3 * 10**9],  # from the names, stage 2's made cumulative
            ["1", "", "1", "2"],
            "fp32, stage2-ingredient1-step50-tokens1B",
        ),
        (
            "HuggingFaceTB/SmolLM3-3B-checkpoints",
            [0, 10, 100, 1000],
            [s * 2_359_296 for s in (0, 10, 100, 1000)],  # data/: SmolLM3's tokens per step
            ["1", "1", "2", "3"],
            "readme-fix",
        ),
    ],
)
def test_walks_olmo2_and_smollm3_names_with_nothing_but_the_repo_id(
    hub, text_file, tmp_path, repo, steps, tokens, stages, unmatched
):
    from huggingface_hub import HfApi

    out = run_cli("walk", repo, *walk_args(text_file, tmp_path / "o"), env=hub_env(hub, tmp_path))
    assert out.returncode == 0, out.stderr
    assert f"match no checkpoint pattern: {unmatched}" in out.stdout
    ck = pd.read_csv(tmp_path / "o" / "checkpoints.csv", dtype={"stage": str})
    assert list(ck["step"]) == steps and list(ck["tokens"]) == tokens
    assert list(ck["stage"].fillna("")) == stages
    # Pinned: each row's commit is the commit its branch points at.
    refs = HfApi(endpoint=hub.url).list_repo_refs(repo)
    commit = {b.name: b.target_commit for b in refs.branches}
    assert list(ck["commit"]) == [commit[r] for r in ck["revision"]]
    m = pd.read_csv(tmp_path / "o" / "measurements.csv")
    assert dict(zip(m["step"], m["tokens"], strict=True)) == dict(zip(steps, tokens, strict=True))


def test_a_repo_with_no_checkpoint_names_shows_some_and_the_fix(hub, text_file, tmp_path):
    args = walk_args(text_file, tmp_path / "o")
    out = run_cli("walk", "tiny/odd", *args, env=hub_env(hub, tmp_path))
    assert out.returncode == 2
    assert "tiny/odd has no branches or tags named like checkpoints (it has: ck-0, ck-10" in (
        out.stderr
    )
    assert "--revision-pattern" in out.stderr and not (tmp_path / "o").exists()
    pattern = "^ck-(?P<step>\\d+)$"
    out = run_cli(
        "walk", "tiny/odd", "--revision-pattern", pattern, *args, env=hub_env(hub, tmp_path)
    )
    assert out.returncode == 0, out.stderr
    assert list(pd.read_csv(tmp_path / "o" / "checkpoints.csv")["revision"]) == ["ck-0", "ck-10"]


def test_a_server_that_dies_mid_walk_stops_the_walk_after_three_checkpoints(
    tmp_path, tokenizer, text_file, monkeypatch
):
    """Not an hour of retries: three unreachable checkpoints in a row, then stop, exit 1."""
    import massdyn.tracker.walker as walker
    from massdyn.testing.localhub import LocalHub
    from massdyn.testing.synthetic import write_series

    steps = (0, 10, 20, 30, 40, 50, 60, 70)
    series = write_series(tmp_path / "s", steps, tokenizer=tokenizer)
    for s in steps:  # Hub revisions carry the tokenizer
        tokenizer.save_pretrained(series / f"step{s}")
    server = LocalHub(tmp_path / "hub")
    server.add_model_repo("tiny/dying", {f"step{s}": series / f"step{s}" for s in steps})
    server.start("tiny/dying")
    real = walker._measure_checkpoint

    def then_die(*args, **kwargs):
        server.stop()  # the server goes away after the first checkpoint is downloaded
        return real(*args, **kwargs)

    monkeypatch.setattr(walker, "_measure_checkpoint", then_die)
    inputs = InputSpec(n_seqs=2, seq_len=16, text=str(text_file), prepend_bos=True)
    config = WalkConfig(out=str(tmp_path / "o"), inputs=inputs, progress=False, device="cpu")
    try:
        summary = walk(HubSource("tiny/dying", str(tmp_path / "c"), server.url), config)
    finally:
        server.stop()
    assert summary.ok and len(summary.failed) == 3
    assert summary.stopped.startswith("stopped: 3 checkpoints in a row could not reach")
    assert len(summary.ok) + len(summary.failed) < len(steps)  # the rest were not tried
    measured = pd.read_csv(tmp_path / "o" / "measurements.csv")
    assert sorted(measured["step"].unique()) == summary.ok


def test_a_branch_that_moved_since_it_was_measured_is_said_and_measured_again(
    hub, text_file, tmp_path
):
    cache, out = tmp_path / "cache", tmp_path / "o"
    first = run_cli("walk", "tiny/neox-moving", *walk_args(text_file, out), env=hub_env(hub, cache))
    assert first.returncode == 0, first.stderr
    before = pd.read_csv(out / "checkpoints.csv").set_index("step")
    rows = len(pd.read_csv(out / "measurements.csv"))
    new = hub.commit_to("tiny/neox-moving", "step10", {"NOTE.md": "a fixed model card"})
    again = run_cli("walk", "tiny/neox-moving", *walk_args(text_file, out), env=hub_env(hub, cache))
    assert again.returncode == 0, again.stderr
    was = before.loc[10, "commit"]
    assert f"step 10: its revision moved from commit {was[:12]} to {new[:12]}" in again.stdout
    assert "3 already measured, 1 measured now" in again.stdout
    after = pd.read_csv(out / "checkpoints.csv").set_index("step")
    assert after.loc[10, "commit"] == new and after.drop(10)["commit"].equals(
        before.drop(10)["commit"]
    )
    m = pd.read_csv(out / "measurements.csv")
    assert len(m) == rows and not m.duplicated(["step", "layer", "seq"]).any()
    third = run_cli("walk", "tiny/neox-moving", *walk_args(text_file, out), env=hub_env(hub, cache))
    assert "4 already measured, 0 measured now" in third.stdout
    assert "its revision moved" not in third.stdout


def test_a_shipped_suite_is_walked_by_its_name(hub, text_file, tmp_path):
    from tests.conftest import CRFM

    out = tmp_path / "crfm"
    done = run_cli(
        "walk", "crfm-gpt2-small", *walk_args(text_file, out), env=hub_env(hub, tmp_path)
    )
    assert done.returncode == 0, done.stderr
    merged = pd.read_csv(out / "measurements.csv")
    assert sorted(merged["model"].unique()) == sorted(CRFM)
    assert set(merged.groupby("model")["step"].apply(lambda s: tuple(sorted(set(s))))) == {(0, 10)}
    audited = run_cli(
        "audit", "crfm-gpt2-small", "--out", tmp_path / "a.csv", env=hub_env(hub, tmp_path)
    )
    assert audited.returncode == 0, audited.stderr
    table = pd.read_csv(tmp_path / "a.csv")
    assert len(table) == 2 * len(CRFM)
