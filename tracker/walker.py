"""Walk a checkpoint series: fetch, load, measure, record, release, with prefetch."""

from __future__ import annotations

import gc
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

import torch

from tracker.inputs import InputSpec, TokenInputs, build_inputs
from tracker.measure import measure
from tracker.schedule import StepSelection
from tracker.sources import CheckpointError, Fetched
from tracker.store import ResultStore

TOKENS_PER_BATCH = 32768
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass
class WalkConfig:
    """Settings of a walk.

    Attributes:
        out: Results folder.
        steps: Which checkpoints to measure.
        inputs: Evaluation input recipe.
        device: ``auto`` (CUDA when present), ``cpu``, ``cuda``, ``cuda:1``, ...
        dtype: ``auto`` (bfloat16 on GPUs that support it, else float16; float32 on CPU),
            ``float32``, ``float16`` or ``bfloat16``.
        batch_size: Sequences per forward pass; None: as many as fit in
            :data:`TOKENS_PER_BATCH` tokens (all 10 x 2048 of the paper's inputs at once).
        keep_cache: Keep downloaded revisions in the Hub cache.
        disk_budget_gb: Most gigabytes of downloaded checkpoints held at once (None: no limit).
        prefetch: Download the next checkpoint while measuring the current one.
        tokenizer: Tokenizer to use instead of the series' own (path or repo id).
        trust_remote_code: Allow model code from the checkpoint (off unless asked).
        progress: Show a progress bar.
        parquet: Also write ``measurements.parquet`` (needs pyarrow).
    """

    out: str = "massdyn-walk"
    steps: StepSelection = field(default_factory=StepSelection)
    inputs: InputSpec = field(default_factory=InputSpec)
    device: str = "auto"
    dtype: str = "auto"
    batch_size: int | None = None
    keep_cache: bool = False
    disk_budget_gb: float | None = None
    prefetch: bool = True
    tokenizer: str | None = None
    trust_remote_code: bool = False
    progress: bool = True
    parquet: bool = False


@dataclass
class WalkSummary:
    """What a walk did."""

    model: str
    selected: list[int]
    already_done: list[int]
    ok: list[int]
    failed: dict[int, str]
    seconds: float
    out: str
    rows: int

    def describe(self) -> str:
        """A few lines for the terminal."""
        lines = [
            f"{self.model}: {len(self.selected)} checkpoints selected, "
            f"{len(self.already_done)} already measured, {len(self.ok)} measured now, "
            f"{len(self.failed)} failed, {self.seconds:.1f} s",
            f"results: {self.out}/measurements.csv ({self.rows} rows), {self.out}/checkpoints.csv",
        ]
        lines += [f"  failed step {s}: {r}" for s, r in sorted(self.failed.items())]
        return "\n".join(lines)


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` picks CUDA when available, else the CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """``auto``: bfloat16 (or float16) on GPUs, float32 on CPU.

    Raises:
        ValueError: for an unknown dtype name.
    """
    if dtype == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; choose auto or one of {', '.join(DTYPES)}")
    return DTYPES[dtype]


def load_model(path, device: torch.device, dtype: torch.dtype, trust_remote_code: bool = False):
    """Load a causal LM for measurement: safe unpickling only, eval mode, on ``device``."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        str(path), dtype=dtype, trust_remote_code=trust_remote_code, weights_only=True
    )
    return model.to(device).eval()


def load_tokenizer(location: str, trust_remote_code: bool = False):
    """A tokenizer from a local folder or repo id."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(location, trust_remote_code=trust_remote_code)


def _identity(source, config: WalkConfig) -> dict:
    spec = asdict(config.inputs)
    return {"model": source.name, "inputs": spec, "tokenizer": config.tokenizer or "series"}


def prepare_inputs(
    source, config: WalkConfig, store: ResultStore, first_ref: str | None
) -> TokenInputs:
    """Reuse the inputs stored with the results, else build and store them once."""
    if (store.folder / "inputs.json").exists():
        return TokenInputs.load(store.folder)
    tokenizer = None
    if not config.inputs.token_ids:
        if config.tokenizer:
            location = config.tokenizer
        elif first_ref is not None:
            location = source.tokenizer_location(first_ref)
        else:
            raise CheckpointError("no checkpoint to take the tokenizer from; pass --tokenizer")
        tokenizer = load_tokenizer(location, config.trust_remote_code)
    inputs = build_inputs(config.inputs, tokenizer)
    inputs.save(store.folder)
    return inputs


class _Fetcher:
    """Fetches checkpoints one ahead in a background thread, within a disk budget."""

    def __init__(self, source, config: WalkConfig):
        self.source = source
        self.budget = None if config.disk_budget_gb is None else config.disk_budget_gb * 1e9
        self.prefetch = config.prefetch
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="massdyn-fetch")

    def _fetch(self, step: int, ref: str) -> Fetched:
        if self.budget is not None:
            need = self.source.size_of(ref)
            if need > self.budget:
                raise CheckpointError(
                    f"needs {need / 1e9:.2f} GB, more than the disk budget "
                    f"of {self.budget / 1e9:.2f} GB"
                )
        return self.source.fetch(step, ref)

    def submit(self, step: int, ref: str) -> Future:
        return self.pool.submit(self._fetch, step, ref)

    def fits_beside(self, held: Fetched | None, ref: str) -> bool:
        """Whether the next download may start while ``held`` is still on disk."""
        if not self.prefetch:
            return False
        if self.budget is None or held is None or not held.downloaded:
            return True
        try:
            return held.nbytes + self.source.size_of(ref) <= self.budget
        except CheckpointError:
            return True  # let the fetch itself report the problem

    def close(self):
        self.pool.shutdown(wait=True, cancel_futures=True)


def walk(source, config: WalkConfig) -> WalkSummary:
    """Measure every selected checkpoint of a series into ``config.out``.

    Resumable: checkpoints already recorded ``ok`` in the folder are skipped; failed ones
    are tried again. One failing checkpoint never stops the walk; it is recorded with the
    reason.

    Args:
        source: A :class:`~tracker.sources.LocalSource` or :class:`~tracker.sources.HubSource`.
        config: Walk settings.

    Returns:
        A summary; the tables are in ``config.out``.
    """
    t_start = time.perf_counter()
    device = resolve_device(config.device)
    dtype = resolve_dtype(config.dtype, device)
    store = ResultStore(config.out, _identity(source, config)).open()
    available = source.list_steps()
    selected = config.steps.select(list(available))
    done = store.done_steps()
    todo = [s for s in selected if s not in done]
    present = [s for s in selected if s in available]
    inputs = prepare_inputs(source, config, store, available[present[0]] if present else None)
    ids = torch.as_tensor(inputs.ids)
    # Few large passes keep the GPU busy; per-pass launch overheads dominate small ones.
    batch_size = config.batch_size or max(1, TOKENS_PER_BATCH // ids.shape[1])

    def base_row(step):
        return {
            "model": source.name,
            "step": step,
            "revision": available.get(step, ""),
            "dtype": str(dtype).replace("torch.", ""),
            "device": str(device),
        }

    ok, failed = [], {}
    fetcher = _Fetcher(source, config)
    queue = [s for s in todo if s in available]
    for s in todo:
        if s not in available:
            reason = f"step {s} is not in the series"
            store.record(
                None, {**base_row(s), "status": "failed", "reason": reason, "seconds": 0.0}
            )
            failed[s] = reason
    bar = _progress(len(queue), config.progress)
    pending: Future | None = fetcher.submit(queue[0], available[queue[0]]) if queue else None
    try:
        for i, step in enumerate(queue):
            t0 = time.perf_counter()
            row = base_row(step)
            fetched, reason = None, ""
            try:
                fetched = pending.result()
            except Exception as exc:  # recorded, and the walk goes on
                reason = _reason(exc)
            nxt = queue[i + 1] if i + 1 < len(queue) else None
            pending = None
            if nxt is not None and fetcher.fits_beside(fetched, available[nxt]):
                pending = fetcher.submit(nxt, available[nxt])
            if fetched is not None:
                row.update(weights_sha256=fetched.weights_sha256, verified=fetched.verified)
                try:
                    model = load_model(fetched.path, device, dtype, config.trust_remote_code)
                    try:
                        table = measure(model, ids, batch_size)
                    finally:
                        del model
                        _free(device)
                    table.insert(0, "step", step)
                    table.insert(0, "model", source.name)
                    row.update(status="ok", reason="", seconds=round(time.perf_counter() - t0, 3))
                    store.record(table, row)
                    ok.append(step)
                except Exception as exc:
                    reason = _reason(exc)
                finally:
                    source.release(fetched)
            if step not in ok:
                row.update(
                    status="failed", reason=reason, seconds=round(time.perf_counter() - t0, 3)
                )
                store.record(None, row)
                failed[step] = reason
            if pending is None and nxt is not None:
                pending = fetcher.submit(nxt, available[nxt])
            bar.set_postfix_str(f"step {step} {'ok' if step in ok else 'FAILED'}")
            bar.update(1)
    finally:
        bar.close()
        fetcher.close()
    table = store.assemble(parquet=config.parquet)
    return WalkSummary(
        model=source.name,
        selected=selected,
        already_done=sorted(done & set(selected)),
        ok=ok,
        failed=failed,
        seconds=time.perf_counter() - t_start,
        out=str(store.folder),
        rows=len(table),
    )


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return first if isinstance(exc, CheckpointError) else f"{type(exc).__name__}: {first}"


def _free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _progress(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="ckpt", desc="walk", disable=not enabled)
