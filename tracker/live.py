"""Live tracking of massive activations inside a training run.

The same measurement (:func:`massdyn.tracker.measure.measure`), the same fixed inputs and the same
results folder layout as the walker, taken at scheduled steps of a run instead of from
saved checkpoints. Two front ends: :class:`LiveTracker` for plain PyTorch loops (one call
per step) and :class:`MassiveActivationCallback` for the transformers ``Trainer``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from massdyn.tracker.config import Mechanisms
from massdyn.tracker.inputs import TokenInputs
from massdyn.tracker.store import ResultStore, folder_identity


def pythia_style_schedule(max_steps: int, every: int | None = None) -> list[int]:
    """Log-spaced steps (0, 1, 2, 4, ...) below ``every``, then every ``every`` steps.

    Like Pythia's 0, 1, 2, ..., 512, 1000, 2000, ..., 143000. ``every`` defaults to
    ``max_steps / 25``; ``max_steps`` is always included.
    """
    if max_steps < 1:
        raise ValueError(f"max_steps must be >= 1, got {max_steps}")
    every = every or max(1, int(round(max_steps / 25)))
    log_steps = [0] + [2**k for k in range(64) if 2**k < every]
    linear = list(range(every, max_steps + 1, every))
    return sorted({*log_steps, *linear, max_steps})


def log_schedule(max_steps: int, points: int) -> list[int]:
    """Step 0 and about ``points`` log-spaced steps from 1 to ``max_steps`` (both included).

    Unlike Pythia's schedule, whose linear part puts most measurements late (80 of the
    mini-suite's 88 on a 100-step grid), every decade of steps gets the same share, which
    is what a question about late turning needs over a long run.
    """
    if max_steps < 1 or points < 2:
        raise ValueError(f"need max_steps >= 1 and points >= 2, got {max_steps} and {points}")
    grid = np.unique(np.round(np.geomspace(1, max_steps, points)).astype(int))
    return sorted({0, *grid.tolist(), max_steps})


class LiveTracker:
    """Measure a model at scheduled steps and record into a walker-style results folder.

    Args:
        model: The causal LM being trained.
        inputs: Fixed evaluation inputs (e.g. from :func:`massdyn.tracker.inputs.build_inputs`).
        out: Results folder (``measurements.csv``, ``checkpoints.csv``, ``inputs.npy``).
        schedule: Steps to measure at; see :func:`pythia_style_schedule`.
        name: Series name in the tables.
        save_checkpoints: Also ``save_pretrained`` the model to ``out/checkpoints/step{N}``
            at each measured step, so the run can be walked later.
        batch_size: Evaluation sequences per forward pass (None: all at once).
        forecast: Called as ``forecast(steps, ratios)`` with the series of the most massive
            layer so far (the largest top-1/median ratio at the latest step), returning
            scalars to log beside the measurement, e.g.
            ``massdyn.fitting.forecast.LiveForecaster(until=max_steps)``: the forecast final
            ratio and peak step then converge in TensorBoard/W&B as training goes on.
        forecast_every: Call ``forecast`` at every this many measurements.
        tokens_per_step: Training tokens per optimizer step; the results then carry the
            ``tokens`` column (step x tokens per step), as a walk of a known suite does.
        mechanisms: Attention sinks, super weights and interventions to record as well
            (``attention.csv``, ... as a walk with ``--attention`` etc. writes them).
    """

    def __init__(
        self,
        model,
        inputs: TokenInputs,
        out: str | Path,
        schedule: list[int],
        name: str = "run",
        save_checkpoints: bool = False,
        batch_size: int | None = None,
        forecast: Callable | None = None,
        forecast_every: int = 1,
        tokens_per_step: int | None = None,
        mechanisms: Mechanisms | None = None,
    ):
        if forecast_every < 1:
            raise ValueError(f"forecast_every must be at least 1, got {forecast_every}")
        if tokens_per_step is not None and tokens_per_step < 1:
            raise ValueError(f"tokens_per_step must be at least 1, got {tokens_per_step}")
        self.tokens_per_step = tokens_per_step
        self.model = model
        self.inputs = inputs
        self.out = Path(out)
        self.schedule = set(schedule)
        self.name = name
        self.save_checkpoints = save_checkpoints
        self.batch_size = batch_size
        self.forecast = forecast
        self.forecast_every = forecast_every
        self.last_scalars: dict[str, float] = {}
        self.mechanisms = mechanisms or Mechanisms()
        identity = folder_identity(name, inputs.sha256, tokenizer="live")
        self.store = ResultStore(self.out, identity, extras=self.mechanisms.tables()).open()
        if not (self.out / "inputs.json").exists():
            inputs.save(self.out)

    def due(self, step: int) -> bool:
        """Whether ``step`` is scheduled and not yet recorded."""
        return step in self.schedule and step not in self.store.done_steps()

    def step(self, step: int) -> dict[str, float] | None:
        """Measure if ``step`` is due; returns the logged scalars, else None.

        The model is put in eval mode for the measurement and restored afterwards; no
        gradients are computed.
        """
        if not self.due(step):
            return None
        from massdyn.tracker.mechanisms import measure_mechanisms

        t0 = time.perf_counter()
        was_training = self.model.training
        self.model.eval()
        try:
            batch = self.batch_size or len(self.inputs.ids)
            table, extras = measure_mechanisms(self.model, self.inputs.ids, batch, self.mechanisms)
        finally:
            self.model.train(was_training)
        seconds = time.perf_counter() - t0
        param = next(self.model.parameters())
        if self.save_checkpoints:
            self.model.save_pretrained(self.out / "checkpoints" / f"step{step}")
        self.store.record_measured(
            step,
            table,
            extras=extras,
            revision=f"live-step{step}",
            tokens=step * self.tokens_per_step if self.tokens_per_step else "",
            seconds=round(seconds, 4),
            dtype=str(param.dtype).removeprefix("torch."),
            device=str(param.device),
        )
        self.last_scalars = self.scalars(table, seconds)
        n_done = len(self.store.done_steps())
        if self.forecast is not None and n_done % self.forecast_every == 0:
            self.last_scalars.update(self._forecast())
        return self.last_scalars

    def _forecast(self) -> dict[str, float]:
        """The forecaster's scalars for the most massive layer, prefixed ``massive/``."""
        m = self.store.measurements()
        per = m.groupby(["layer", "step"])[["top1", "median"]].mean()
        ratio = (per["top1"] / per["median"]).rename("ratio").reset_index()
        last = ratio[ratio["step"] == ratio["step"].max()]
        layer = int(last.loc[last["ratio"].idxmax(), "layer"])
        series = ratio[ratio["layer"] == layer].sort_values("step")
        got = self.forecast(series["step"].to_numpy(float), series["ratio"].to_numpy(float))
        return {f"massive/{k}": float(v) for k, v in got.items()}

    @staticmethod
    def scalars(table, seconds: float) -> dict[str, float]:
        """A few numbers for the training log: the largest ratio over layers, and where."""
        per_layer = table.groupby("layer").agg(top1=("top1", "mean"), median=("median", "mean"))
        ratio = per_layer["top1"] / per_layer["median"]
        return {
            "massive/max_top1_over_median": float(ratio.max()),
            "massive/layer_of_max": float(ratio.idxmax()),
            "massive/max_top1": float(per_layer["top1"].max()),
            "massive/n_massive": float(table["n_massive"].sum()),
            "massive/seconds": float(seconds),
        }


def _trainer_callback_base():
    from transformers import TrainerCallback

    return TrainerCallback


class MassiveActivationCallback(_trainer_callback_base()):
    """A transformers ``TrainerCallback`` that measures at scheduled global steps.

    Step 0 is measured when training begins; step ``s`` after the ``s``-th optimizer
    step. The scalars of :meth:`LiveTracker.scalars` go to the Trainer's log (and so to
    TensorBoard/W&B) when the callback knows its trainer; use :func:`attach` for that.

    Args:
        inputs: Fixed evaluation inputs.
        out: Results folder.
        schedule: Steps to measure at (default: :func:`pythia_style_schedule` of
            ``args.max_steps``).
        name: Series name.
        save_checkpoints: Save the model at each measured step.
        forecast: A forecaster for :class:`LiveTracker` (e.g.
            ``massdyn.fitting.forecast.LiveForecaster(until=args.max_steps)``).
        forecast_every: Forecast at every this many measurements.
        tokens_per_step: Training tokens per optimizer step, when known.
        seq_len: Else the training sequence length: tokens per step are then the
            Trainer's batch x gradient accumulation x world size x ``seq_len``.
        mechanisms: What :class:`LiveTracker` records beside the block statistics.
    """

    def __init__(
        self,
        inputs,
        out,
        schedule=None,
        name="run",
        save_checkpoints=False,
        forecast=None,
        forecast_every=1,
        tokens_per_step=None,
        seq_len=None,
        mechanisms=None,
    ):
        self.mechanisms = mechanisms
        self.tokens_per_step = tokens_per_step
        self.seq_len = seq_len
        self.forecast = forecast
        self.forecast_every = forecast_every
        self.inputs = inputs
        self.out = out
        self.schedule = schedule
        self.name = name
        self.save_checkpoints = save_checkpoints
        self.trainer = None
        self.tracker: LiveTracker | None = None

    def _ensure(self, args, state, model) -> LiveTracker:
        if self.tracker is None:
            schedule = self.schedule or pythia_style_schedule(
                max(state.max_steps, args.max_steps, 1)
            )
            self.tracker = LiveTracker(
                model,
                self.inputs,
                self.out,
                schedule,
                self.name,
                self.save_checkpoints,
                forecast=self.forecast,
                forecast_every=self.forecast_every,
                tokens_per_step=self._tokens_per_step(args),
                mechanisms=self.mechanisms,
            )
        return self.tracker

    def _tokens_per_step(self, args) -> int | None:
        """Given, or the Trainer's: batch x accumulation x world size x sequence length."""
        if self.tokens_per_step is not None or self.seq_len is None:
            return self.tokens_per_step
        batch = args.train_batch_size * args.gradient_accumulation_steps * args.world_size
        return int(batch * self.seq_len)

    def _measure(self, args, state, model, step):
        if not state.is_world_process_zero:
            return
        scalars = self._ensure(args, state, model).step(step)
        if scalars is not None:
            if self.trainer is not None:
                self.trainer.log(dict(scalars))
            else:
                state.log_history.append({**scalars, "step": step})

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        """Measure step 0 (or the resumed step) before the first update."""
        self._measure(args, state, model, state.global_step)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        """Measure after an optimizer step when it is scheduled."""
        self._measure(args, state, model, state.global_step)


def attach(trainer, inputs, out, schedule=None, name="run", save_checkpoints=False, **more):
    """Add a :class:`MassiveActivationCallback` to ``trainer`` that logs through it.

    ``forecast``, ``forecast_every``, ``tokens_per_step``, ``seq_len`` and ``mechanisms``
    pass on to the callback.
    """
    cb = MassiveActivationCallback(inputs, out, schedule, name, save_checkpoints, **more)
    cb.trainer = trainer
    trainer.add_callback(cb)
    return cb


__all__ = [
    "LiveTracker",
    "MassiveActivationCallback",
    "attach",
    "pythia_style_schedule",
]
