import numpy as np
import pandas as pd
import pytest
import torch

from massdyn.testing.synthetic import tiny_config
from massdyn.tracker.inputs import TokenInputs
from massdyn.tracker.live import (
    LiveTracker,
    MassiveActivationCallback,
    attach,
    log_schedule,
    pythia_style_schedule,
)
from massdyn.tracker.sources import LocalSource
from massdyn.tracker.walker import WalkConfig, walk
from tests.conftest import MEASURED


def test_pythia_style_schedule():
    assert pythia_style_schedule(143000, 1000)[:12] == [
        0,
        1,
        2,
        4,
        8,
        16,
        32,
        64,
        128,
        256,
        512,
        1000,
    ]
    assert len(pythia_style_schedule(143000, 1000)) == 154
    s = pythia_style_schedule(3000, 100)
    assert s[-1] == 3000 and 100 in s and 150 not in s
    assert pythia_style_schedule(7, 5) == [0, 1, 2, 4, 5, 7]
    with pytest.raises(ValueError):
        pythia_style_schedule(0)


def tiny_training(tmp_path, steps=12, save=True, **tracker_options):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(tiny_config())
    inputs = TokenInputs.from_array(np.random.default_rng(0).integers(0, 300, (3, 20)), "test")
    tracker = LiveTracker(
        model,
        inputs,
        tmp_path / "live",
        [0, 1, 2, 4, 8, steps],
        "tiny",
        save_checkpoints=save,
        **tracker_options,
    )
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    rng = np.random.default_rng(1)
    for step in range(steps):
        tracker.step(step)
        x = torch.as_tensor(rng.integers(0, 300, (4, 16)))
        model(input_ids=x, labels=x).loss.backward()
        opt.step()
        opt.zero_grad()
    tracker.step(steps)
    return model, inputs, tracker


def test_the_tracker_forecasts_every_nth_measurement_from_the_series_so_far(tmp_path):
    seen = []

    def forecast(steps, ratios):
        seen.append(list(steps))
        return {"forecast/points": len(steps)}

    *_, tracker = tiny_training(tmp_path, save=False, forecast=forecast, forecast_every=2)
    assert seen == [[0, 1], [0, 1, 2, 4], [0, 1, 2, 4, 8, 12]]
    assert tracker.last_scalars["massive/forecast/points"] == 6


def test_live_measurement_equals_walking_the_saved_checkpoints(tmp_path):
    _, inputs, tracker = tiny_training(tmp_path)
    live = pd.read_csv(tmp_path / "live" / "measurements.csv")
    assert sorted(live["step"].unique()) == [0, 1, 2, 4, 8, 12]
    np.save(tmp_path / "ids.npy", inputs.ids)
    from massdyn.tracker.inputs import InputSpec

    cfg = WalkConfig(
        out=str(tmp_path / "walked"),
        inputs=InputSpec(token_ids=str(tmp_path / "ids.npy")),
        progress=False,
        device="cpu",  # where, and in the precision in which, the live run measured
        dtype="float32",
    )
    walk(LocalSource(tmp_path / "live" / "checkpoints"), cfg)
    walked = pd.read_csv(tmp_path / "walked" / "measurements.csv")
    pd.testing.assert_frame_equal(live[MEASURED], walked[MEASURED], rtol=1e-6)
    ck = pd.read_csv(tmp_path / "live" / "checkpoints.csv")
    assert (ck["status"] == "ok").all() and (ck["seconds"] > 0).all()


def test_tracker_restores_train_mode_and_skips_unscheduled_steps(tmp_path):
    model, _, tracker = tiny_training(tmp_path, steps=5, save=False)
    assert model.training
    assert tracker.step(3) is None  # not scheduled
    assert tracker.step(4) is None  # already recorded
    assert set(tracker.last_scalars) >= {"massive/max_top1_over_median", "massive/seconds"}


@pytest.fixture
def trainer_setup(tmp_path):
    from transformers import AutoModelForCausalLM, Trainer, TrainingArguments

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(tiny_config())
    data = [
        {"input_ids": torch.randint(0, 300, (16,)), "labels": torch.randint(0, 300, (16,))}
        for _ in range(32)
    ]
    args = TrainingArguments(
        output_dir=str(tmp_path / "trainer"),
        max_steps=6,
        per_device_train_batch_size=4,
        logging_steps=100,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
    )
    trainer = Trainer(model=model, args=args, train_dataset=data)
    inputs = TokenInputs.from_array(np.random.default_rng(0).integers(0, 300, (2, 12)), "test")
    return trainer, inputs


def test_trainer_callback(tmp_path, trainer_setup):
    trainer, inputs = trainer_setup
    cb = attach(
        trainer,
        inputs,
        tmp_path / "live",
        schedule=[0, 2, 6],
        name="hf",
        save_checkpoints=True,
        seq_len=16,
    )
    assert isinstance(cb, MassiveActivationCallback)
    trainer.train()
    live = pd.read_csv(tmp_path / "live" / "measurements.csv")
    assert sorted(live["step"].unique()) == [0, 2, 6]
    # Tokens seen: 4 sequences of 16 tokens a step, one device, no accumulation.
    assert (live["tokens"] == live["step"] * 4 * 16).all()
    ck = pd.read_csv(tmp_path / "live" / "checkpoints.csv")
    assert ck.set_index("step")["tokens"].to_dict() == {0: 0, 2: 128, 6: 384}
    logged = [h for h in trainer.state.log_history if "massive/max_top1_over_median" in h]
    assert len(logged) == 3
    # The checkpoint saved at step 6 is the trained model, walkable like any other.
    assert (tmp_path / "live" / "checkpoints" / "step6" / "config.json").exists()


def test_trainer_callback_logs_a_forecast_that_converges_with_each_measurement(
    tmp_path, trainer_setup
):
    from massdyn.fitting import ForecastConfig, LiveForecaster, forecast_series

    trainer, inputs = trainer_setup
    until = 100
    forecaster = LiveForecaster(until=until, config=ForecastConfig(n_boot=8))
    attach(
        trainer,
        inputs,
        tmp_path / "live",
        schedule=[0, 1, 2, 3, 4, 5, 6],
        name="hf",
        forecast=forecaster,
        forecast_every=1,
    )
    trainer.train()
    logged = [h for h in trainer.state.log_history if "massive/max_top1_over_median" in h]
    with_forecast = [h for h in logged if "massive/forecast/final" in h]
    # With every measurement once the series has the 5 points a forecast needs.
    assert len(logged) == 7 and len(with_forecast) == 3
    # The logged forecast is the forecaster's on the most massive layer, recomputed here
    # from the results folder.
    m = pd.read_csv(tmp_path / "live" / "measurements.csv")
    per = m.groupby(["layer", "step"])[["top1", "median"]].mean()
    ratio = (per["top1"] / per["median"]).rename("r").reset_index()
    last = ratio[ratio["step"] == 6]
    layer = last.loc[last["r"].idxmax(), "layer"]
    series = ratio[ratio["layer"] == layer].sort_values("step")
    f = forecast_series(series["step"], series["r"], until, config=forecaster.config)
    assert with_forecast[-1]["massive/forecast/final"] == pytest.approx(f.final)
    assert with_forecast[-1]["massive/forecast/final_lo"] <= f.final


def test_log_schedule_gives_every_decade_the_same_share():
    steps = log_schedule(32000, 120)
    assert steps[0] == 0 and steps[-1] == 32000 and steps == sorted(set(steps))
    # 120 points over log10(32000) = 4.5 decades: about 26.6 per decade once the
    # integer rounding no longer merges neighbours.
    per_decade = [sum(lo <= s < 10 * lo for s in steps) for lo in (100, 1000)]
    assert all(25 <= n <= 28 for n in per_decade), per_decade
    assert sum(s > 8000 for s in steps) >= 15
    with pytest.raises(ValueError, match="points >= 2"):
        log_schedule(100, 1)


def test_live_mechanisms_equal_walking_the_saved_checkpoints_with_them(tmp_path):
    """Sinks, super weights and interventions recorded live = the walk of the saved run."""
    from massdyn.tracker.config import Mechanisms
    from massdyn.tracker.inputs import InputSpec

    everything = Mechanisms(attention=True, super_weights=True, interventions=None)
    model, inputs, tracker = tiny_training(tmp_path, mechanisms=everything)
    assert model.config._attn_implementation == "sdpa" and model.training
    np.save(tmp_path / "ids.npy", inputs.ids)
    cfg = WalkConfig(
        out=str(tmp_path / "walked"),
        inputs=InputSpec(token_ids=str(tmp_path / "ids.npy")),
        progress=False,
        device="cpu",
        dtype="float32",
        attention=True,
        super_weights=True,
        interventions="all",
    )
    walk(LocalSource(tmp_path / "live" / "checkpoints"), cfg)
    for name in ("attention", "superweights", "interventions"):
        live = pd.read_csv(tmp_path / "live" / f"{name}.csv").drop(columns="model")
        walked = pd.read_csv(tmp_path / "walked" / f"{name}.csv").drop(columns="model")
        assert sorted(live["step"].unique()) == [0, 1, 2, 4, 8, 12], name
        pd.testing.assert_frame_equal(live, walked, rtol=1e-5, check_dtype=False)
