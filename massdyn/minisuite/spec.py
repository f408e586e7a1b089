"""The suite's schema: members, their shared recipe and seed replicates (no torch here).

The suite itself is data: ``data/minisuite.json``.
"""

from __future__ import annotations

import json
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path

from massdyn.data import read_json


def as_recorded_now(cls, recorded: dict) -> dict:
    """A JSON record of a ``cls`` (Recipe, Member) with the fields it predates at their defaults.

    What was recorded before a field existed was made with that field's default.
    """
    defaults = {f.name: f.default for f in fields(cls) if f.default is not MISSING}
    return {**json.loads(json.dumps(defaults)), **recorded}


@dataclass(frozen=True)
class Recipe:
    """Shared training recipe of the suite.

    The defaults are the shipped recipe of ``data/minisuite.json`` (a test holds them equal),
    so ``Recipe()`` trains as the shipped data set was trained.
    """

    seq_len: int = 256
    batch_size: int = 8
    max_steps: int = 8000
    lr: float = 3e-3
    min_lr_ratio: float = 1.0  # 1.0: constant rate after warm-up
    warmup_steps: int = 100
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float = 0.0  # 0: no clipping
    prepend_bos: bool = True
    checkpoint_every: int = 500
    eval_seqs: int = 8
    eval_seq_len: int = 256
    eval_seed: int = 1
    schedule_every: int = 100
    # 0: measure at Pythia's schedule (0, 1, 2, 4, ... then every schedule_every steps);
    # N: at step 0 and N log-spaced steps up to max_steps (the length pilot's schedule).
    schedule_points: int = 0
    # "bf16-mixed": forward and backward under bfloat16 autocast, weights and optimizer
    # state in float32, as Pythia trained (in fp16). Faster on CPUs with bf16 units.
    precision: str = "bf16-mixed"

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"recipe precision {self.precision!r} is not one of {', '.join(PRECISIONS)}"
            )


PRECISIONS = ("fp32", "bf16-mixed")


@dataclass(frozen=True)
class Member:
    """One architecture of the suite."""

    name: str
    d_model: int
    n_layers: int
    n_heads: int
    seed: int = 1
    # Pythia's layout unless a member says otherwise.
    ff_ratio: float = 4.0  # d_ff / d_model
    rotary_pct: float = 0.25
    parallel_residual: bool = True

    def __post_init__(self):
        if self.d_model % self.n_heads:
            raise ValueError(
                f"member {self.name}: d_model {self.d_model} is not a multiple of n_heads "
                f"{self.n_heads}"
            )
        head = self.d_model // self.n_heads
        # As transformers' GPT-NeoX does: int(), not round(); the rotation pairs dims up.
        dims = int(head * self.rotary_pct)
        if dims < 2 or dims % 2:
            raise ValueError(
                f"member {self.name}: rotary_pct {self.rotary_pct} of head size {head} gives "
                f"{dims} rotary dims; pick a fraction that makes it even and at least 2"
            )

    def config(self, vocab_size: int, max_positions: int):
        """The member's ``GPTNeoXConfig``."""
        from transformers import GPTNeoXConfig

        return GPTNeoXConfig(
            vocab_size=vocab_size,
            hidden_size=self.d_model,
            num_hidden_layers=self.n_layers,
            num_attention_heads=self.n_heads,
            intermediate_size=round(self.ff_ratio * self.d_model),
            max_position_embeddings=max_positions,
            rotary_pct=self.rotary_pct,
            use_parallel_residual=self.parallel_residual,
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
        """Read a suite file (default: the shipped ``data/minisuite.json``).

        A file with ``"extends": "<shipped suite file>"`` takes that suite's recipe, corpus
        and tokenizer (unless it sets them itself) and its own members.
        """
        text = Path(path).read_text() if path else None
        spec = json.loads(text) if text is not None else read_json("minisuite.json")
        if "extends" in spec:
            # A suite that grows another: same recipe, corpus and tokenizer, its own members;
            # recipe keys it sets replace the base's one by one.
            base = read_json(spec["extends"])
            recipe = {**base.get("recipe", {}), **spec.get("recipe", {})}
            spec = {**{k: base[k] for k in ("corpus", "tokenizer") if k in base}, **spec}
            spec["recipe"] = recipe
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
