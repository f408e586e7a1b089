import json
from dataclasses import asdict, replace
from importlib.resources import files

import numpy as np
import pandas as pd
import pytest
import torch

import massdyn.minisuite.train as ms
from massdyn.cli import main
from massdyn.data import path as data_path
from massdyn.fitting.report import emergence_report
from massdyn.minisuite import Member, Recipe, Suite
from massdyn.minisuite.dataset import prepare_data
from massdyn.minisuite.parallel import train_members
from massdyn.minisuite.train import TrainingData, batch_at, lr_at, train_member
from massdyn.testing.synthetic import SAMPLE_TEXT
from massdyn.tracker.inputs import TokenInputs

# Seconds to minutes each (training, servers, subprocesses): outside make test-fast.
pytestmark = pytest.mark.slow

# Set in full where the tests depend on it (the defaults are the shipped recipe's).
TINY = Recipe(
    min_lr_ratio=0.1,
    weight_decay=0.1,
    betas=(0.9, 0.95),
    precision="fp32",
    seq_len=16,
    batch_size=2,
    max_steps=10,
    warmup_steps=2,
    checkpoint_every=5,
    eval_seqs=2,
    eval_seq_len=16,
    schedule_every=4,
)
MEMBER = Member(name="t", d_model=32, n_layers=2, n_heads=4, seed=3)


def test_shipped_suite_is_a_ladder_with_controlled_pairs():
    suite = Suite.load()
    assert len(suite.members) >= 6
    arch = {(m.d_model, m.n_layers, m.n_heads) for m in suite.members}
    depth_pairs = [
        (a, b) for a in arch for b in arch if a[0] == b[0] and a[2] == b[2] and a[1] < b[1]
    ]
    head_pairs = [(a, b) for a in arch for b in arch if a[:2] == b[:2] and a[2] < b[2]]
    assert depth_pairs and head_pairs
    assert suite.recipe.prepend_bos


def test_learning_rate_schedule():
    r = Recipe(lr=1.0, warmup_steps=10, max_steps=110, min_lr_ratio=0.1)
    assert lr_at(0, r) == pytest.approx(0.1) and lr_at(9, r) == pytest.approx(1.0)
    assert lr_at(10, r) == pytest.approx(1.0) and lr_at(110, r) == pytest.approx(0.1)
    assert lr_at(60, r) == pytest.approx(0.55)


def test_batches_are_a_function_of_the_step():
    tokens = np.arange(1000)
    a, b = batch_at(tokens, 7, 1, TINY, bos_id=0), batch_at(tokens, 7, 1, TINY, bos_id=0)
    assert torch.equal(a, b) and not torch.equal(a, batch_at(tokens, 8, 1, TINY, bos_id=0))
    assert (a[:, 0] == 0).all() and a.shape == (2, 16)
    assert (a[:, 2:] - a[:, 1:-1] == 1).all()  # consecutive windows of the stream


def _data():
    """A tiny training stream and fixed evaluation inputs over a 300-token vocabulary."""
    tokens = np.random.default_rng(0).integers(1, 300, 5000)
    inputs = TokenInputs.from_array(np.random.default_rng(1).integers(0, 300, (2, 16)), "t")
    return tokens, inputs


def _train(tmp_path, name):
    tokens, inputs = _data()
    return train_member(
        MEMBER, TINY, TrainingData(tokens, inputs, 300, 0), tmp_path / name, log=lambda *_: None
    )


def test_interrupted_training_resumes_to_the_same_model(tmp_path, monkeypatch):
    _train(tmp_path, "straight")
    real = ms.batch_at

    def crash_at_7(tokens, step, *a, **k):
        if step == 7:
            raise KeyboardInterrupt
        return real(tokens, step, *a, **k)

    monkeypatch.setattr(ms, "batch_at", crash_at_7)
    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path, "resumed")
    monkeypatch.setattr(ms, "batch_at", real)
    info = _train(tmp_path, "resumed")
    assert info["resumed_from"] == 5
    a = torch.load(tmp_path / "straight" / "state.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "resumed" / "state.pt", weights_only=True)["model"]
    for k in a:
        torch.testing.assert_close(a[k], b[k])
    pd.testing.assert_frame_equal(
        pd.read_csv(tmp_path / "straight" / "live" / "measurements.csv"),
        pd.read_csv(tmp_path / "resumed" / "live" / "measurements.csv"),
    )


def test_minisuite_command_writes_the_data_set(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    suite = json.loads(files("massdyn.data").joinpath("minisuite.json").read_text())
    suite["recipe"] = {
        **suite["recipe"],
        **{
            k: getattr(replace(TINY, max_steps=12), k)
            for k in (
                "seq_len",
                "batch_size",
                "max_steps",
                "warmup_steps",
                "checkpoint_every",
                "eval_seqs",
                "eval_seq_len",
                "schedule_every",
            )
        },
    }
    suite["tokenizer"]["vocab_size"] = 300
    suite.pop("replicates")
    suite["members"] = [
        {"name": "a", "d_model": 32, "n_layers": 2, "n_heads": 4, "seed": 1},
        {"name": "b", "d_model": 32, "n_layers": 3, "n_heads": 4, "seed": 1},
    ]
    (tmp_path / "suite.json").write_text(json.dumps(suite))
    (tmp_path / "t.txt").write_text(SAMPLE_TEXT * 300)
    args = [
        "minisuite",
        "--suite",
        str(tmp_path / "suite.json"),
        "--text",
        str(tmp_path / "t.txt"),
        "--out",
        str(tmp_path / "out"),
        "--work",
        str(tmp_path / "work"),
        "--jobs",
        "2",
        "--threads",
        "1",
    ]
    assert main(args) == 0
    m = pd.read_csv(tmp_path / "out" / "measurements.csv")
    assert set(m["model"]) == {"a", "b"} and m["step"].max() == 12
    assert (tmp_path / "out" / "configs" / "b.json").exists()
    prov = json.loads((tmp_path / "out" / "provenance.json").read_text())
    assert {"recipe", "runs", "versions", "eval_inputs"} <= set(prov)
    assert prov["sittings"][-1]["jobs"] == 2 and [r["threads"] for r in prov["runs"]] == [1, 1]
    assert [r["device"] for r in prov["runs"]] == ["cpu", "cpu"]
    assert prov["sittings"][-1]["machine"]["cpus"] >= 1
    assert len(pd.read_csv(tmp_path / "out" / "params.csv")) == 5  # 2 + 3 layers
    # A later sitting that trains one member keeps the other's data, and says so.
    before = m[m["model"] == "a"].reset_index(drop=True)
    assert main([*args[:-4], "--jobs", "1", "--threads", "1", "--members", "b"]) == 0
    again = pd.read_csv(tmp_path / "out" / "measurements.csv")
    pd.testing.assert_frame_equal(again[again["model"] == "a"].reset_index(drop=True), before)
    assert set(again["model"]) == {"a", "b"}
    prov = json.loads((tmp_path / "out" / "provenance.json").read_text())
    assert [s["members"] for s in prov["sittings"]] == [["a", "b"], ["b"]]
    assert sorted(r["name"] for r in prov["runs"]) == ["a", "b"]
    # Another recipe into the same folder is refused before anything is trained or written.
    suite["recipe"]["lr"] = 1e-3
    (tmp_path / "suite.json").write_text(json.dumps(suite))
    assert main(args) == 2
    assert pd.read_csv(tmp_path / "out" / "measurements.csv").equals(again)


def test_resuming_with_another_recipe_is_refused_and_keeps_the_state(tmp_path):
    _train(tmp_path, "run")
    state = (tmp_path / "run" / "state.pt").read_bytes()
    tokens, inputs = _data()
    other = replace(TINY, lr=1e-3, max_steps=20)
    with pytest.raises(ValueError, match=r"recipe\.lr: 0\.003 != 0\.001.*delete .*run or train"):
        train_member(
            MEMBER,
            other,
            TrainingData(tokens, inputs, 300, 0),
            tmp_path / "run",
            log=lambda *_: None,
        )
    assert (tmp_path / "run" / "state.pt").read_bytes() == state


def test_resuming_with_another_thread_count_is_refused_and_keeps_the_state(tmp_path):
    tokens, inputs = _data()
    flat = replace(TINY, min_lr_ratio=1.0, max_steps=6)

    def train(recipe, threads):
        return train_members(
            [MEMBER], recipe, TrainingData(tokens, inputs, 300, 0), tmp_path, 1, threads
        )

    train(flat, 1)
    state = (tmp_path / "t" / "state.pt").read_bytes()
    longer = replace(flat, max_steps=10)
    with pytest.raises(ValueError, match=r"1 torch thread\(s\), this process has 2.*--threads 1"):
        train(longer, 2)
    assert (tmp_path / "t" / "state.pt").read_bytes() == state
    assert train(longer, 1)[0]["resumed_from"] == 6


def test_a_run_resumes_only_on_the_device_it_started_on(tmp_path):
    tokens, inputs = _data()
    flat = replace(TINY, min_lr_ratio=1.0, max_steps=6)
    train_members([MEMBER], flat, TrainingData(tokens, inputs, 300, 0), tmp_path, 1, 1)
    path = tmp_path / "t" / "state.pt"
    state = torch.load(path, weights_only=True)
    assert state["device"] == "cpu"
    state["device"] = "cuda"  # as a GPU sitting would have left it
    torch.save(state, path)
    saved = path.read_bytes()
    longer = replace(flat, max_steps=10)
    with pytest.raises(ValueError, match="trained on cuda, this run asks for cpu.*--device cuda"):
        train_members([MEMBER], longer, TrainingData(tokens, inputs, 300, 0), tmp_path, 1, 1)
    assert path.read_bytes() == saved
    del state["device"]  # a state from before devices were recorded was trained on CPU
    torch.save(state, path)
    assert (
        train_members([MEMBER], longer, TrainingData(tokens, inputs, 300, 0), tmp_path, 1, 1)[0][
            "resumed_from"
        ]
        == 6
    )


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a CPU-only torch")
def test_minisuite_on_cuda_without_a_gpu_is_refused_in_one_line(tmp_path, capsys):
    args = ["minisuite", "--device", "cuda", "--work", str(tmp_path / "w")]
    assert main([*args, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "sees no CUDA device" in err[0] and "--device cpu" in err[0]
    assert not (tmp_path / "o").exists() and not (tmp_path / "w").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_member_trains_on_the_gpu_and_records_it(tmp_path):
    tokens, inputs = _data()
    run = train_members(
        [MEMBER], TINY, TrainingData(tokens, inputs, 300, 0), tmp_path, 1, 1, "cuda"
    )[0]
    assert run["device"].startswith("cuda: ")
    assert torch.load(tmp_path / "t" / "state.pt", weights_only=True)["device"] == "cuda"
    measured = pd.read_csv(tmp_path / "t" / "live" / "measurements.csv")
    assert measured["step"].max() == TINY.max_steps


def test_a_user_text_gets_its_own_tokenizer_cache(tmp_path):
    suite = Suite(recipe=TINY, members=[MEMBER], tokenizer={"vocab_size": 300})
    texts = [tmp_path / "a.txt", tmp_path / "b.txt"]
    texts[0].write_text(SAMPLE_TEXT * 50)
    texts[1].write_text(SAMPLE_TEXT.upper() * 50)
    tokens = [prepare_data(suite, tmp_path / "cache", str(t))[1] for t in texts]
    assert len(list((tmp_path / "cache").glob("text-*"))) == 2
    assert not np.array_equal(tokens[0][:100], tokens[1][:100])


def test_a_constant_rate_run_extends_to_more_steps_like_a_longer_run(tmp_path):
    flat = replace(TINY, min_lr_ratio=1.0)
    tokens, inputs = _data()

    def train(recipe, name):
        return train_member(
            MEMBER, recipe, TrainingData(tokens, inputs, 300, 0), tmp_path / name, log=print
        )

    train(replace(flat, max_steps=6), "extended")
    assert train(replace(flat, max_steps=10), "extended")["resumed_from"] == 6
    trained = train(replace(flat, max_steps=10), "straight")
    again = train(replace(flat, max_steps=10), "straight")  # nothing left to train
    assert again["resumed_from"] == 10 and again["final_loss"] == trained["final_loss"]
    a = torch.load(tmp_path / "straight" / "state.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "extended" / "state.pt", weights_only=True)["model"]
    for k in a:
        torch.testing.assert_close(a[k], b[k])
    with pytest.raises(ValueError, match="holds step 10, past this recipe's max_steps 8"):
        train(replace(flat, max_steps=8), "straight")  # would label a 10-step model as 8
    train(TINY, "decaying")  # min_lr_ratio 0.1: max_steps shaped every step taken
    with pytest.raises(ValueError, match="max_steps"):
        train(replace(TINY, max_steps=12), "decaying")


def test_a_state_saved_before_a_recipe_field_existed_resumes(tmp_path):
    flat = replace(TINY, min_lr_ratio=1.0, max_steps=6)
    tokens, inputs = _data()

    def train(recipe):
        return train_member(
            MEMBER, recipe, TrainingData(tokens, inputs, 300, 0), tmp_path, log=lambda *_: None
        )

    train(flat)
    path = tmp_path / "state.pt"
    state = torch.load(path, weights_only=True)
    identity = json.loads(state["identity"])
    del identity["recipe"]["schedule_points"]  # as saved before the field existed
    state["identity"] = json.dumps(identity, sort_keys=True)
    torch.save(state, path)
    assert train(replace(flat, max_steps=8))["resumed_from"] == 6
    with pytest.raises(ValueError, match=r"recipe\.schedule_points: 0 != 5"):
        train(replace(flat, max_steps=10, schedule_points=5))


def test_a_log_spaced_schedule_is_what_the_live_tracker_measures(tmp_path):
    tokens, inputs = _data()
    recipe = replace(TINY, max_steps=40, schedule_points=6)
    train_member(
        MEMBER, recipe, TrainingData(tokens, inputs, 300, 0), tmp_path, log=lambda *_: None
    )
    steps = sorted(pd.read_csv(tmp_path / "live" / "measurements.csv")["step"].unique())
    # 1, 40^(1/5), ..., 40 rounded: 1, 2.09, 4.37, 9.15, 19.1, 40
    assert steps == [0, 1, 2, 4, 9, 19, 40]


def test_the_pilot_suite_extends_the_shipped_recipe_key_by_key():
    pilot = Suite.load(data_path("minisuite-pilot.json"))
    shipped = Suite.load()
    assert pilot.recipe == replace(shipped.recipe, max_steps=32000, schedule_points=120)
    assert pilot.members == [shipped.member("mini-d128-l4-h4")]


def test_emergence_report_finds_growth_and_a_fixed_position():
    rows = []
    for step in range(0, 10):
        for seq in range(2):
            for layer, top1 in ((0, 6.0), (1, 6.0 + 3 * step), (2, 6.0 + 2 * step)):
                late_fixed = layer == 1 and step >= 6  # the last third: steps 6-9
                token, dim = (0, 5) if late_fixed else (seq + step, step % 3)
                if layer == 2:  # on token 0 throughout; dim 7 overtakes dim 5 at step 9
                    token, dim = 0, 7 if step == 9 else 5
                rows.append(
                    {
                        "model": "m",
                        "step": step,
                        "layer": layer,
                        "seq": seq,
                        "top1": top1,
                        "top2": top1 / 2,
                        "top3": top1 / 3,
                        "median": 1.0,
                        "top1_token": token,
                        "top1_dim": dim,
                    }
                )
    report = emergence_report(pd.DataFrame(rows)).set_index("layer")
    assert report.loc[1, "growth"] == pytest.approx(33 / 6)
    assert (report.loc[1, "top1_token"], report.loc[1, "top1_dim"]) == (0, 5)
    assert report.loc[1, "fixed_share"] == 1.0
    assert report.loc[0, "growth"] == 1.0 and report.loc[0, "fixed_share"] < 1.0
    assert report.loc[0, "token_share"] < 1.0 and report.loc[1, "token_share"] == 1.0
    assert report.loc[2, "fixed_share"] == 0.75 and report.loc[2, "token_share"] == 1.0


def test_an_unknown_precision_is_refused_by_name():
    with pytest.raises(ValueError, match="precision 'fp16'"):
        Recipe(precision="fp16")


def test_mixed_precision_trains_in_bfloat16_and_resumes_exactly(tmp_path):
    tokens, inputs = _data()
    flat = replace(TINY, min_lr_ratio=1.0)  # so that a run can be resumed at more steps
    mixed = replace(flat, precision="bf16-mixed")

    def train(recipe, name):
        out = tmp_path / name
        train_member(MEMBER, recipe, TrainingData(tokens, inputs, 300, 0), out, log=lambda *_: None)
        return torch.load(out / "state.pt", weights_only=True)["model"]

    fp32, bf16 = train(flat, "fp32"), train(mixed, "bf16")
    assert all(v.dtype == torch.float32 for v in bf16.values())  # master weights stay fp32
    assert any(not torch.equal(fp32[k], bf16[k]) for k in fp32)  # autocast took effect
    train(replace(mixed, max_steps=5), "bf16-resumed")
    again = train(mixed, "bf16-resumed")
    for k in bf16:
        torch.testing.assert_close(again[k], bf16[k], rtol=0, atol=0)
    with pytest.raises(ValueError, match="recipe.precision: bf16-mixed != fp32"):
        train(flat, "bf16")


def test_members_trained_in_parallel_equal_members_trained_one_by_one(tmp_path):
    tokens, inputs = _data()
    members = [MEMBER, replace(MEMBER, name="u", n_layers=3, seed=4)]
    threads = torch.get_num_threads()

    def train(work, jobs):
        return train_members(
            members, TINY, TrainingData(tokens, inputs, 300, 0), work, jobs, threads=1
        )

    alone, together = train(tmp_path / "alone", 1), train(tmp_path / "together", 2)
    assert torch.get_num_threads() == threads  # the in-process run gave its threads back
    assert [r["name"] for r in together] == ["t", "u"]
    assert [r["threads"] for r in together] == [1, 1]
    for m in ("t", "u"):
        pd.testing.assert_frame_equal(
            pd.read_csv(tmp_path / "alone" / m / "live" / "measurements.csv"),
            pd.read_csv(tmp_path / "together" / m / "live" / "measurements.csv"),
        )
        a = torch.load(tmp_path / "alone" / m / "state.pt", weights_only=True)["model"]
        b = torch.load(tmp_path / "together" / m / "state.pt", weights_only=True)["model"]
        for k in a:
            torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    assert [r["final_loss"] for r in alone] == [r["final_loss"] for r in together]


def test_a_refused_member_in_parallel_names_its_folder_and_the_others_finish(tmp_path):
    tokens, inputs = _data()
    other = replace(MEMBER, name="u", n_layers=3)
    _train(tmp_path, "u")  # folder u holds member t's state
    with pytest.raises(ValueError, match=r"member\.n_layers: 2 != 3.*delete .*u or train"):
        train_members([MEMBER, other], TINY, TrainingData(tokens, inputs, 300, 0), tmp_path, 2, 1)
    done = torch.load(tmp_path / "t" / "state.pt", weights_only=True)
    assert done["step"] == TINY.max_steps
    with pytest.raises(ValueError, match="jobs must be at least 1, got 0"):
        train_members([MEMBER], TINY, TrainingData(tokens, inputs, 300, 0), tmp_path, 0)


def test_without_bfloat16_units_the_demo_trains_in_float32_and_says_so(tmp_path, monkeypatch):
    from massdyn.demo import train_series

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(ms, "cpu_has_bf16", lambda: False)  # as on an AVX2-only CPU
    words = SAMPLE_TEXT.split()
    rng = np.random.default_rng(0)
    (tmp_path / "t.txt").write_text(" ".join(rng.choice(words, 60_000)))
    notes = []
    run = train_series(
        tmp_path / "demo",
        "mini-d128-l4-h4",
        2,
        str(tmp_path / "t.txt"),
        log=lambda *_: None,
        note=notes.append,
    )
    assert len(notes) == 1 and "no bfloat16 units" in notes[0] and "float32" in notes[0]
    state = torch.load(run / "state.pt", weights_only=True)
    assert json.loads(state["identity"])["recipe"]["precision"] == "fp32"
    assert Suite.load().recipe.precision == "bf16-mixed"  # the shipped recipe is unchanged


def test_with_bfloat16_units_the_recipe_is_kept_and_the_minisuite_warns_only_without():
    recipe = Suite.load().recipe
    assert ms.for_this_cpu(recipe, has_bf16=True) == (recipe, None)
    fp32, note = ms.for_this_cpu(recipe, has_bf16=False)
    assert fp32.precision == "fp32" and "20x slower" in note
    assert ms.precision_note(replace(recipe, precision="fp32"), has_bf16=False) is None


def test_minisuite_command_warns_on_a_cpu_without_bfloat16(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(ms, "cpu_has_bf16", lambda: False)
    # An unknown member stops the command right after the warning, before any training.
    args = ["minisuite", "--members", "nosuch", "--work", str(tmp_path / "w")]
    assert main([*args, "--out", str(tmp_path / "o")]) == 2
    captured = capsys.readouterr()
    assert '"precision": "fp32"' in captured.out and "no member 'nosuch'" in captured.err


def test_replicates_are_the_members_with_other_seeds_and_must_name_members(tmp_path):
    suite = Suite.load()
    rep = suite.member("mini-d160-l4-h4-s3")
    assert rep == replace(suite.member("mini-d160-l4-h4"), name="mini-d160-l4-h4-s3", seed=3)
    spec = json.loads(files("massdyn.data").joinpath("minisuite.json").read_text())
    spec["replicates"]["of"] = ["mini-nosuch"]
    (tmp_path / "s.json").write_text(json.dumps(spec))
    with pytest.raises(ValueError, match="does not define: mini-nosuch"):
        Suite.load(tmp_path / "s.json")


def test_recipe_defaults_are_the_shipped_recipe():
    shipped = json.loads(files("massdyn.data").joinpath("minisuite.json").read_text())["recipe"]
    assert {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(Recipe()).items()} == (
        shipped
    )


def test_member_architecture_fields_reach_the_model_config():
    m = Member(
        "x",
        d_model=96,
        n_layers=2,
        n_heads=3,
        ff_ratio=2.5,
        rotary_pct=0.5,
        parallel_residual=False,
    )
    cfg = m.config(vocab_size=300, max_positions=64)
    assert cfg.intermediate_size == 240 and cfg.rope_parameters["partial_rotary_factor"] == 0.5
    assert cfg.use_parallel_residual is False and cfg.num_attention_heads == 3
    default = Member("y", d_model=128, n_layers=4, n_heads=4).config(300, 64)
    rotary = default.rope_parameters["partial_rotary_factor"]
    assert (default.intermediate_size, rotary, default.use_parallel_residual) == (
        512,
        0.25,
        True,
    )
    with pytest.raises(ValueError, match="not a multiple"):
        Member("z", d_model=100, n_layers=2, n_heads=3)


def test_figures_and_fit_import_neither_torch_nor_transformers(tmp_path):
    import subprocess
    import sys

    code = (
        "import sys; import massdyn.figures, massdyn.minisuite, massdyn.commands.fit;"
        "from massdyn.cli import main; main(['fit', '--help']) if False else None;"
        "bad = [m for m in ('torch', 'transformers') if m in sys.modules]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_the_schedule_pilot_decays_the_shipped_rate_to_a_tenth_with_two_seeds():
    pilot = Suite.load(data_path("minisuite-cosine.json"))
    shipped = Suite.load()
    assert pilot.recipe == replace(
        shipped.recipe, max_steps=16000, min_lr_ratio=0.1, schedule_points=120
    )
    base = shipped.member("mini-d128-l4-h4")
    assert [(m.seed, replace(m, name=base.name, seed=1)) for m in pilot.members] == [
        (1, base),
        (2, base),
    ]
