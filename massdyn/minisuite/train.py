"""Training one member: plain PyTorch, deterministic and resumable, tracked live.

The batch of step ``s`` is drawn from a generator seeded by ``(seed, s)``, and model and
optimizer state are saved atomically every ``checkpoint_every`` steps. Massive activations
are measured at the Pythia-style schedule by :class:`massdyn.tracker.live.LiveTracker` on
fixed held-out inputs.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from massdyn.minisuite.spec import Member, Recipe, as_recorded_now
from massdyn.tracker.inputs import TokenInputs
from massdyn.tracker.live import LiveTracker, log_schedule, pythia_style_schedule

# Measured for one mini-suite step: about 0.2 s with bfloat16 units, about 4 s under
# bf16 autocast on an AVX2-only CPU, which emulates bfloat16.
BF16_EMULATION_SLOWDOWN = 20


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX tiles).

    ``torch.backends.cpu.get_cpu_capability()`` says ``AVX512`` both with and without
    bfloat16 units, so torch's finer probes are asked; without them, only a CPU that torch
    calls more than AVX512 counts.
    """
    probes = [
        getattr(torch.cpu, n, None) for n in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    ]
    if any(p is not None for p in probes):
        return any(bool(p()) for p in probes if p is not None)
    return torch.backends.cpu.get_cpu_capability() not in ("DEFAULT", "NO AVX", "AVX2", "AVX512")


def precision_note(recipe: Recipe, has_bf16: bool) -> str | None:
    """What to tell a user whose CPU would run ``recipe`` slowly, or None."""
    if recipe.precision != "bf16-mixed" or has_bf16:
        return None
    return (
        f"this CPU ({torch.backends.cpu.get_cpu_capability()}) has no bfloat16 units: "
        f"bf16-mixed training runs about {BF16_EMULATION_SLOWDOWN}x slower here"
    )


def for_this_cpu(recipe: Recipe, has_bf16: bool | None = None) -> tuple[Recipe, str | None]:
    """``recipe`` in float32 on a CPU without bfloat16 units (with the line to print)."""
    has_bf16 = cpu_has_bf16() if has_bf16 is None else has_bf16
    note = precision_note(recipe, has_bf16)
    if note is None:
        return recipe, None
    return replace(recipe, precision="fp32"), f"{note}; training in float32 instead"


def lr_at(step: int, r: Recipe) -> float:
    """Linear warm-up, then cosine decay to ``min_lr_ratio * lr``."""
    if step < r.warmup_steps:
        return r.lr * (step + 1) / r.warmup_steps
    progress = (step - r.warmup_steps) / max(1, r.max_steps - r.warmup_steps)
    return r.lr * (r.min_lr_ratio + (1 - r.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def batch_at(tokens: np.ndarray, step: int, seed: int, r: Recipe, bos_id: int) -> torch.Tensor:
    """The training batch of ``step``: random windows, BOS first when the recipe says so."""
    body = r.seq_len - 1 if r.prepend_bos else r.seq_len
    rng = np.random.default_rng([seed, step])
    starts = rng.integers(0, tokens.size - body, size=r.batch_size)
    x = np.stack([tokens[s : s + body] for s in starts])
    if r.prepend_bos:
        x = np.hstack([np.full((r.batch_size, 1), bos_id), x])
    return torch.as_tensor(x, dtype=torch.long)


def _identity(member: Member, recipe: Recipe, vocab_size: int) -> dict:
    """The run's member, recipe and vocabulary, as stored in (and read back from) JSON."""
    identity = {"member": asdict(member), "recipe": asdict(recipe), "vocab_size": vocab_size}
    return json.loads(json.dumps(identity))


def _resumable_as(identity: dict) -> dict:
    """What a saved state must match to be resumed under ``identity``.

    With a constant rate after warm-up, ``max_steps`` does not shape the steps already
    taken, so a finished run can be extended by raising it; with a decaying rate it does.
    A state saved before a member or recipe field existed was trained with its default.
    """
    recipe = as_recorded_now(Recipe, identity.get("recipe", {}))
    if recipe.get("min_lr_ratio") == 1.0:
        recipe.pop("max_steps", None)
    member = as_recorded_now(Member, identity.get("member", {}))
    return {**identity, "recipe": recipe, "member": member}


def _save_state(
    path: Path, model, optimizer, step: int, seconds: float, loss: float, identity: dict
) -> None:
    tmp = path.with_suffix(".tmp")
    device = next(model.parameters()).device.type
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "step": step,
        "seconds": seconds,
        "loss": loss,
        "identity": json.dumps(identity, sort_keys=True),
        "threads": torch.get_num_threads(),
        "device": device,
    }
    torch.save(state, tmp)
    os.replace(tmp, path)


@dataclass(frozen=True)
class TrainingData:
    """What every member of a suite trains on and is measured on.

    Attributes:
        tokens: The training token stream.
        eval_inputs: The fixed inputs the live tracker measures.
        vocab_size: The tokenizer's vocabulary size.
        bos_id: The BOS token id.
    """

    tokens: np.ndarray
    eval_inputs: TokenInputs
    vocab_size: int
    bos_id: int


def train_member(
    member: Member,
    recipe: Recipe,
    data: TrainingData,
    out: Path,
    save_checkpoints: bool = False,
    log=print,
    device: str = "cpu",
    mechanisms=None,
) -> dict:
    """Train one member (resuming from ``out/state.pt`` when present), tracked live.

    ``device`` is ``"cpu"`` or ``"cuda"``. A run stays on the device it started on: the
    two round differently, and a member is one run. ``mechanisms`` (a
    :class:`massdyn.tracker.config.Mechanisms`) are recorded live beside the block
    statistics; they change no number of the training.

    Returns:
        ``{"name", "steps", "seconds", "resumed_from", "final_loss"}``; ``seconds`` is the
        training wall time summed over every sitting.

    Raises:
        ValueError: when ``out`` holds the state of a different member or recipe, which
            resuming would silently mix into this run, of another device or (on CPU) torch
            thread count (other rounding), or of a later step than ``recipe.max_steps``.
    """
    from transformers import GPTNeoXForCausalLM

    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(member.seed)
    model = GPTNeoXForCausalLM(
        member.config(data.vocab_size, max(recipe.seq_len, recipe.eval_seq_len))
    )
    model.to(device)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": recipe.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=recipe.lr,
        betas=recipe.betas,
        fused=True,
    )
    state_file = out / "state.pt"
    identity = _identity(member, recipe, data.vocab_size)
    start, before, loss_value = 0, 0.0, math.nan
    if state_file.exists():
        state = torch.load(state_file, weights_only=True, map_location=device)
        saved = _resumable_as(json.loads(state.get("identity", "{}")))
        if saved != _resumable_as(identity):
            raise ValueError(
                f"{state_file} was trained with a different member or recipe "
                f"({_differences(saved, _resumable_as(identity))}); "
                f"delete {out} or train into another folder"
            )
        saved_device = state.get("device", "cpu")  # states from before devices were CPU's
        if saved_device != device:
            raise ValueError(
                f"{state_file} was trained on {saved_device}, this run asks for {device}; "
                f"the two round differently: resume with --device {saved_device} or delete {out}"
            )
        saved_threads, threads = state.get("threads"), torch.get_num_threads()
        if device == "cpu" and saved_threads is not None and saved_threads != threads:
            raise ValueError(
                f"{state_file} was trained with {saved_threads} torch thread(s), this process "
                f"has {threads}; the order of floating-point sums, and so the numbers, depend "
                f"on it: resume with torch.set_num_threads({saved_threads}) (massdyn minisuite "
                f"--threads {saved_threads}) or delete {out}"
            )
        start, before = int(state["step"]), float(state.get("seconds", 0.0))
        loss_value = float(state.get("loss", math.nan))
        if start > recipe.max_steps:
            raise ValueError(
                f"{state_file} holds step {start}, past this recipe's max_steps "
                f"{recipe.max_steps}; raise max_steps or train into another folder"
            )
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
    model.config.save_pretrained(out)
    schedule = (
        log_schedule(recipe.max_steps, recipe.schedule_points)
        if recipe.schedule_points
        else pythia_style_schedule(recipe.max_steps, recipe.schedule_every)
    )
    tracker = LiveTracker(
        model,
        data.eval_inputs,
        out / "live",
        schedule,
        member.name,
        save_checkpoints,
        tokens_per_step=recipe.seq_len * recipe.batch_size,
        mechanisms=mechanisms,
    )
    t0 = time.perf_counter()
    model.train()
    for step in range(start, recipe.max_steps):
        tracker.step(step)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, recipe)
        x = batch_at(data.tokens, step, member.seed, recipe, data.bos_id).to(device)
        with torch.autocast(device, torch.bfloat16, enabled=recipe.precision == "bf16-mixed"):
            loss = model(input_ids=x, labels=x).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if recipe.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
        optimizer.step()
        loss_value = loss.item()
        done = step + 1
        if done % recipe.checkpoint_every == 0 or done == recipe.max_steps:
            seconds = before + time.perf_counter() - t0
            _save_state(state_file, model, optimizer, done, seconds, loss_value, identity)
        if done % 100 == 0:
            elapsed = time.perf_counter() - t0
            progress = f"step {done}/{recipe.max_steps} loss {loss_value:.3f}"
            log(f"{member.name}: {progress} ({elapsed:.0f} s)")
    tracker.step(recipe.max_steps)
    model.save_pretrained(out / "final")
    return {
        "name": member.name,
        "steps": recipe.max_steps,
        "seconds": before + time.perf_counter() - t0,
        "resumed_from": start,
        "final_loss": loss_value,
    }


def _differences(saved: dict, current: dict) -> str:
    """The recorded-vs-requested fields that differ, as ``a.b: x != y`` items."""

    def flat(d, prefix=""):
        for k, v in d.items():
            if isinstance(v, dict):
                yield from flat(v, f"{prefix}{k}.")
            else:
                yield f"{prefix}{k}", v

    a, b = dict(flat(saved)), dict(flat(current))
    keys = sorted(set(a) | set(b))
    return "; ".join(f"{k}: {a.get(k)} != {b.get(k)}" for k in keys if a.get(k) != b.get(k))
