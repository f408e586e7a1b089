"""Walk a checkpoint series: fetch, load, measure, record, release, with prefetch.

Everything that can be checked before the first download is checked first (device, dtype,
options, the series' listing, the inputs against the first checkpoint's config), so a bad
command fails at once, with one message, and leaves no trace in the results folder. Ctrl-C
ends the walk between two writes: every checkpoint measured so far is in the tables, and
:class:`WalkInterrupted` says how many.

Python raises Ctrl-C's ``KeyboardInterrupt`` wherever the main thread is, and one that lands
in a weakref or finalizer callback is printed as "Exception ignored" and then dropped: the
walk would go on as if never asked to stop (seen with the shards of ``--jobs``, which all get
the terminal's Ctrl-C). :func:`_interrupt_latch` remembers every Ctrl-C, so a dropped one
still stops the walk after the checkpoint in hand, and keeps the dropped one off the terminal.
"""

from __future__ import annotations

import contextlib
import gc
import signal
import sys
import threading
import time
from concurrent.futures import Future
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from massdyn.tracker.blocks import BLOCK_INDEX
from massdyn.tracker.config import (
    DTYPE_NAMES,
    WalkConfig,
    WalkSummary,
    human_bytes,
    parse_size,
    walk_settings,
)
from massdyn.tracker.inputs import InputError, TokenInputs, build_inputs
from massdyn.tracker.schedule import known_tokens_per_step
from massdyn.tracker.sources import CheckpointError, Fetched, first_line
from massdyn.tracker.sources.etiquette import HubRefusedError
from massdyn.tracker.store import ResultStore, describe_os_error, folder_identity

TOKENS_PER_BATCH = 32768
DTYPES = {name: getattr(torch, name) for name in DTYPE_NAMES}
# Config fields that bound the positions a model can embed, by family.
POSITION_LIMITS = ("max_position_embeddings", "n_positions", "n_ctx", "max_seq_len")

__all__ = [
    "WalkConfig",
    "WalkInterrupted",
    "WalkSummary",
    "check_inputs",
    "load_model",
    "load_tokenizer",
    "resolve_device",
    "resolve_dtype",
    "walk",
]


class WalkInterrupted(KeyboardInterrupt):
    """Ctrl-C during a walk; the message says what was measured and how to resume."""


class WalkStoppedError(RuntimeError):
    """The system refused a write after some checkpoints were recorded (a full disk)."""

    exit_status = 1  # something was measured and is kept: not "bad input"


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` picks CUDA when available, else the CPU.

    Raises:
        ValueError: for a device this machine does not have, or a name torch does not know.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ValueError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"--device {device}: this machine has no CUDA device (torch {torch.__version__}"
                f"{'' if torch.version.cuda else ', a CPU-only build'}); use --device cpu"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(
                f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) here "
                f"(cuda:0 to cuda:{torch.cuda.device_count() - 1})"
            )
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"--device {device}: MPS is not available here; use --device cpu")
    return dev


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
    """Load a causal LM for measurement: safe unpickling only, eval mode, on ``device``.

    transformers initialises at random, with a warning only, every parameter the weights
    lack: a ``config.json`` without ``num_hidden_layers`` builds the family's default depth
    (44 blocks for GPT-NeoX) around a 2-block checkpoint. Measuring that would record
    random blocks as the checkpoint's, so any parameter the files do not hold, or any
    tensor of theirs the model has no place for, fails the checkpoint instead.

    Raises:
        CheckpointError: naming what is missing or left over, and the config field.
    """
    from transformers import AutoModelForCausalLM

    try:
        model, info = AutoModelForCausalLM.from_pretrained(
            str(path),
            dtype=dtype,
            trust_remote_code=trust_remote_code,
            weights_only=True,
            output_loading_info=True,
        )
    except RuntimeError as exc:
        if "mismatch" not in str(exc):
            raise
        raise CheckpointError(
            "the weights' shapes do not match the model config.json describes (a width such "
            "as hidden_size or intermediate_size missing or wrong): fix config.json"
        ) from None
    check_loaded(model.config, info)
    return model.to(device).eval()


def check_loaded(config, info: dict) -> None:
    """Refuse a model whose weights and config disagree (see :func:`load_model`)."""
    missing, unexpected = list(info.get("missing_keys", ())), list(info.get("unexpected_keys", ()))
    if not missing and not unexpected:
        return
    depth = getattr(config, "num_hidden_layers", None)
    blocks = lambda keys: sorted({int(m.group(1)) for k in keys if (m := BLOCK_INDEX.search(k))})  # noqa: E731
    gone, extra = blocks(missing), blocks(unexpected)
    if gone or extra:
        found = (
            f"blocks {gone[0]}-{gone[-1]} are not in the weights"
            if gone
            else (f"the weights hold blocks up to {extra[-1]}")
        )
        raise CheckpointError(
            f"config.json describes {depth} decoder blocks (num_hidden_layers, or the family's "
            f"name for it, missing or wrong) but {found}: fix config.json"
        )
    names = missing or unexpected
    what = "the weights lack" if missing else "the weights hold unused"
    raise CheckpointError(
        f"{what} {len(names)} tensor(s) the config.json's model does not match (e.g. "
        f"{sorted(names)[0]!r}): the config's sizes (hidden_size and the like) or the weight "
        "files are wrong"
    )


def load_tokenizer(location: str, trust_remote_code: bool = False):
    """A tokenizer from a local folder or repo id.

    Raises:
        InputError: when nothing loadable is there.
    """
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(location, trust_remote_code=trust_remote_code)
    except Exception as exc:
        raise InputError(
            f"cannot load a tokenizer from {location!r} ({type(exc).__name__}); pass an "
            "existing tokenizer folder or repo id to --tokenizer, or --token-ids"
        ) from None


def _identity(source, config: WalkConfig) -> dict:
    """What a results folder belongs to: series, input recipe, tokenizer."""
    inputs = asdict(config.inputs.absolute())  # the folder's walk resumes from anywhere
    return folder_identity(source.name, inputs, config.tokenizer or "series")


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


def check_inputs(ids, model_config: dict | None, where: str) -> None:
    """Refuse inputs the model cannot embed: too long for its positions, ids past its vocab.

    Args:
        ids: ``(n_seqs, seq_len)`` token ids.
        model_config: The checkpoint's ``config.json`` (None: nothing to check against).
        where: Which checkpoint the config is of, for the message.

    Raises:
        InputError: naming the limit and the option to change.
    """
    if not model_config:
        return
    seq_len = ids.shape[1]
    for key in POSITION_LIMITS:
        limit = model_config.get(key)
        if isinstance(limit, int) and seq_len > limit:
            raise InputError(
                f"sequences of {seq_len} tokens are longer than the model's {key} = {limit} "
                f"({where}); use --seq-len {limit} or less"
            )
    vocab = model_config.get("vocab_size")
    top = int(ids.max()) if ids.size else -1
    if isinstance(vocab, int) and top >= vocab:
        raise InputError(
            f"token id {top} is outside the model's vocabulary (vocab_size = {vocab}, {where}); "
            "the token ids or the tokenizer do not belong to this model"
        )


# Where config.json gives the depth, by family: the first key present wins.
DEPTH_KEYS = ("num_hidden_layers", "n_layer", "num_layers")


def check_mechanisms(mechanisms, model_config: dict | None, where: str) -> None:
    """Refuse interventions the model cannot take, before any checkpoint is measured.

    Raises:
        MechanismError: for a layer past the model's depth, or a model whose
            ``architectures`` name no language-model head (nothing to take a loss from).
    """
    from massdyn.tracker.mechanisms import MechanismError, check_layers

    if mechanisms.interventions == () or not model_config:
        return
    heads = model_config.get("architectures") or []
    if heads and not any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in heads):
        raise MechanismError(
            f"--interventions: the model ({', '.join(heads)}, {where}) has no language-model "
            "head to take a loss from; leave out --interventions"
        )
    depth = next((model_config[k] for k in DEPTH_KEYS if isinstance(model_config.get(k), int)), 0)
    if depth and mechanisms.interventions is not None:
        check_layers(mechanisms.interventions, depth)


class _Fetcher:
    """Fetches checkpoints one ahead in a background thread, within a disk budget.

    The thread is a daemon: Ctrl-C does not wait for a download to finish (an earlier
    run's leftovers are cleaned by the next run of the walk, see ``Source.recover``).
    """

    def __init__(self, source, config: WalkConfig):
        self.source = source
        self.budget = None if config.disk_budget_gb is None else config.disk_budget_gb * 1e9
        self.prefetch = config.prefetch
        self.keep = config.keep_cache

    def _fetch(self, step: int, ref: str) -> Fetched:
        if self.budget is not None:
            need = self.source.size_of(ref)
            if need > self.budget:
                raise CheckpointError(
                    f"needs {human_bytes(need)}, more than the disk budget of "
                    f"{human_bytes(self.budget)} (--disk-budget {self.budget / 1e9:g})"
                )
        return self.source.fetch(step, ref)

    def submit(self, step: int, ref: str) -> Future:
        future: Future = Future()

        def run():
            try:
                future.set_result(self._fetch(step, ref))
            except BaseException as exc:  # handed to the walk, which records it
                future.set_exception(exc)

        threading.Thread(target=run, name=f"massdyn-fetch-{step}", daemon=True).start()
        return future

    def stream(self, queue: list[int], available: dict[int, str]):
        """Yield ``(step, fetched or None, error or None)`` for every step of ``queue``.

        The next checkpoint is downloaded while the caller measures this one when prefetch
        is on and both fit in the disk budget; otherwise once this one is released. Each
        checkpoint is released when the caller asks for the next (or closes the stream).
        """
        pending = self.submit(queue[0], available[queue[0]]) if queue else None
        for i, step in enumerate(queue):
            fetched, error = None, None
            try:
                fetched = pending.result()
            except Exception as exc:  # handed to the caller, who records it
                error = exc
            nxt = queue[i + 1] if i + 1 < len(queue) else None
            pending = None
            if nxt is not None and self.fits_beside(fetched, available[nxt]):
                pending = self.submit(nxt, available[nxt])
            try:
                yield step, fetched, error
            finally:
                if fetched is not None:
                    self.source.release(fetched, keep=self.keep)
            if pending is None and nxt is not None:
                pending = self.submit(nxt, available[nxt])

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


def _model_config(source, ref: str) -> dict | None:
    try:
        return source.model_config(ref)
    except CheckpointError:
        return None  # that checkpoint fails on its own, with its reason


def _yaml(data: dict) -> str:
    import yaml

    return yaml.safe_dump(data, sort_keys=False)


def walk(source, config: WalkConfig) -> WalkSummary:
    """Measure every selected checkpoint of a series into ``config.out``.

    Resumable: checkpoints already recorded ``ok`` in the folder are skipped; failed ones
    are tried again. One failing checkpoint never stops the walk; it is recorded with the
    reason.

    Args:
        source: A checkpoint source (:class:`~massdyn.tracker.sources.CheckpointSource`).
        config: Walk settings.

    Returns:
        A summary; the tables are in ``config.out``.

    Raises:
        ValueError: bad settings or inputs (nothing is written then).
        CheckpointError: the series cannot be listed or matches no step.
        StoreError: the folder is in use or belongs to another walk.
        WalkInterrupted: on Ctrl-C, after recording everything measured.
    """
    t_start = time.perf_counter()
    config.check_files()
    device = resolve_device(config.device)
    dtype = resolve_dtype(config.dtype, device)
    available = source.list_steps()
    selected = config.steps.select(list(available))
    if not any(s in available for s in selected):
        shown = ", ".join(map(str, sorted(available)[:8])) + (", ..." if len(available) > 8 else "")
        raise CheckpointError(
            f"no checkpoint of {source.name} matches the step selection; the series has "
            f"{len(available)} steps, {min(available)} to {max(available)} ({shown})"
        )
    created = not Path(config.out).exists()
    try:
        return _walk_into(source, config, available, selected, device, dtype, t_start)
    except BaseException as exc:
        # The system refused a write (a full disk, a read-only folder) after checkpoints
        # were recorded: they are kept, and the walk resumes. Anything else before that
        # leaves no folder it created.
        refused = type(exc) is OSError or isinstance(exc, PermissionError)
        if refused and any((Path(config.out) / "parts").glob("step*.csv")):
            raise WalkStoppedError(
                f"{describe_os_error(exc)}; every checkpoint measured before it is recorded "
                f"in {config.out}: free the space (or fix the folder) and run the same command "
                "to resume"
            ) from exc
        if created:
            _remove_if_nothing_recorded(Path(config.out))
        raise


def _remove_if_nothing_recorded(folder: Path) -> None:
    """Remove a results folder this walk created when it ended before recording anything.

    A refused walk (bad inputs found once the folder was opened) leaves nothing behind;
    a folder holding any checkpoint row or measured part is kept, whatever happened.
    """
    import shutil

    if (folder / "checkpoints.csv").exists() or any((folder / "parts").glob("step*.csv")):
        return
    shutil.rmtree(folder, ignore_errors=True)


def _walk_into(source, config, available, selected, device, dtype, t_start) -> WalkSummary:
    """:func:`walk` once the series is listed and the selection is known to be there."""
    with ResultStore(
        config.out, _identity(source, config), extras=config.mechanisms.tables()
    ).open() as store:
        measured = store.done_steps()
        moved = _moved(source, store, available, measured & set(selected))
        done = measured - set(moved)  # measured again: the revision changed
        # A checkpoint that failed max_attempts times in a row is not tried again: it stays
        # recorded as failed, with its reason, and does not hold up the rest.
        given_up = store.given_up(config.max_attempts)
        todo = [s for s in selected if s not in done and s not in given_up]
        present = [s for s in selected if s in available]
        queue = [s for s in todo if s in available]
        source.recover(store.folder, {available[s] for s in queue}, keep=config.keep_cache)
        first_ref = available[present[0]] if present else None
        inputs = prepare_inputs(source, config, store, first_ref)
        if first_ref is not None:
            where = f"config of {first_ref}"
            model_config = _model_config(source, first_ref)
            check_inputs(inputs.ids, model_config, where)
            check_mechanisms(config.mechanisms, model_config, where)
        store.commit()
        store.write_text("config.yaml", _yaml(walk_settings(source, config)))
        twins = _audited_twins(source, available, selected, queue)
        skipped, saved = {}, 0
        if config.duplicates == "skip":
            skipped, saved = _skip_duplicates(source, store, available, twins)
        queue = [s for s in queue if s not in skipped]
        todo = [s for s in todo if s not in skipped]
        plan = _Plan(available, todo, queue, twins)
        ok, failed, stopped = _walk_queue(source, config, store, inputs, plan, device, dtype)
        table = store.assemble(parquet=config.parquet)
        duplicates = {
            int(r.step): int(r.duplicate_of)
            for r in store.checkpoints_table().itertuples()
            if r.duplicate_of != "" and int(r.step) in selected
        }
    return WalkSummary(
        model=source.name,
        selected=selected,
        already_done=sorted(done & set(selected)),
        ok=ok,
        failed=failed,
        seconds=time.perf_counter() - t_start,
        out=str(store.folder),
        rows=len(table),
        duplicates=duplicates,
        skipped=skipped,
        saved_bytes=saved,
        given_up={s: r for s, r in given_up.items() if s in selected},
        stopped=stopped,
        unmatched=list(getattr(source, "unmatched", [])),
        moved=moved,
        tables=store.extras,
    )


def _moved(source, store, available, done) -> dict[int, tuple[str, str]]:
    """Measured steps whose revision now points at another commit: ``{step: (was, is)}``.

    Only for sources that list commits (the Hub); a step recorded without a commit (by a
    massdyn from before commits were pinned) cannot be judged and stays measured.
    """
    now = getattr(source, "commits", None) or {}
    moved = {}
    for step in sorted(done):
        was = str((store.checkpoint(step) or {}).get("commit") or "")
        is_ = now.get(available.get(step, ""), "")
        if was and is_ and was != is_:
            moved[step] = (was, is_)
    return moved


def _audited_twins(source, available, selected, queue) -> dict[int, tuple[int, int]]:
    """Queued Hub revisions the audit finds serving another step's weights.

    Only for sources that list files without downloading them (the Hub).

    Returns:
        ``step -> (the step whose weights it serves, bytes of those weights)``.
    """
    from massdyn.tracker.sources import HubSource

    if not isinstance(source, HubSource) or not queue:
        return {}
    from massdyn.tracker.audit import audit

    table = audit(source, steps=[s for s in selected if s in available])
    return {
        int(r.step): (int(r.duplicate_of), int(r.bytes))
        for r in table[table["status"] == "duplicate"].itertuples()
        if int(r.step) in queue
    }


def _skip_duplicates(source, store, available, twins):
    """Record the audited twins without downloading them: each set of weights is measured once.

    Returns:
        ``(step -> the step it duplicates, bytes of weights not downloaded)``.
    """
    skipped, saved = {}, 0
    for step, (of, nbytes) in twins.items():
        skipped[step] = of
        saved += nbytes
        store.record(
            None,
            {
                "model": source.name,
                "step": step,
                "revision": available[step],
                "status": "duplicate",
                "reason": f"same weights as step {of} (Hub tree)",
                "duplicate_of": of,
            },
        )
    return skipped, saved


@dataclass(frozen=True)
class _Plan:
    """What a walk measures.

    The series' steps and revisions, the selected steps still to do, those of them to
    fetch in order, and the audit's twins (step: its twin, bytes).
    """

    available: dict[int, str]
    todo: list[int]
    queue: list[int]
    twins: dict[int, tuple[int, int]]


def _walk_queue(source, config, store, inputs, plan: _Plan, device, dtype):
    """Measure ``plan.queue`` in turn, recording each checkpoint; ``(ok, failed, stopped)``."""
    ids = torch.as_tensor(inputs.ids)
    # Few large passes keep the GPU busy; per-pass launch overheads dominate small ones.
    batch_size = config.batch_size or max(1, TOKENS_PER_BATCH // ids.shape[1])
    where = {"dtype": str(dtype).replace("torch.", ""), "device": str(device)}
    per_step = config.tokens_per_step or known_tokens_per_step(source.name)
    named = getattr(source, "revisions", {})

    def time_of(step: int) -> dict:
        """Tokens and stage of a step: from its name, else steps x tokens per step."""
        rev = named.get(step)
        tokens = rev.tokens if rev is not None and rev.tokens is not None else None
        if tokens is None and per_step:
            tokens = step * per_step
        return {"tokens": "" if tokens is None else int(tokens), "stage": rev.stage if rev else ""}

    ok, failed, unreachable, stopped = [], {}, 0, ""
    for s in plan.todo:
        if s not in plan.available:
            failed[s] = f"step {s} is not in the series"
            store.record_failed(s, failed[s], revision="", seconds=0.0, **where)
    bar = _progress(len(plan.queue), config.progress)
    t0 = time.perf_counter()
    try:
        fetching = _Fetcher(source, config).stream(plan.queue, plan.available)
        with _interrupt_latch() as interrupted, contextlib.closing(fetching) as fetches:
            for step, fetched, error in fetches:
                row = {"revision": plan.available[step], **where, **time_of(step)}
                extras: dict = {}
                if step in plan.twins:  # measured anyway: the audit says whose weights these are
                    row["duplicate_of"] = plan.twins[step][0]
                if fetched is not None:
                    row.update(weights_sha256=fetched.weights_sha256, verified=fetched.verified)
                    row["commit"] = getattr(fetched, "commit", None) or ""
                    try:
                        table, extras, row["load"] = _measure_checkpoint(
                            fetched, ids, batch_size, device, dtype, config
                        )
                    except Exception as exc:  # recorded, and the walk goes on
                        error = exc
                row["seconds"] = round(time.perf_counter() - t0, 3)
                if error is None:
                    store.record_measured(step, table, extras=extras, **row)
                    ok.append(step)
                else:
                    failed[step] = _reason(error)
                    store.record_failed(step, failed[step], **row)
                bar.set_postfix_str(f"step {step} {'ok' if error is None else 'FAILED'}")
                bar.update(1)
                t0 = time.perf_counter()
                if interrupted:  # a Ctrl-C that Python dropped in a callback
                    raise KeyboardInterrupt
                unreachable = unreachable + 1 if error is not None and _unreachable(error) else 0
                if unreachable >= MAX_UNREACHABLE:
                    left = sum(1 for s in plan.queue if s not in failed and s not in ok)
                    stopped = (
                        f"stopped: {unreachable} checkpoints in a row could not reach the server "
                        "or were refused by it "
                        f"(last: {failed[step]}); {left} not tried; everything measured is "
                        "recorded: run the same command again once it answers"
                    )
                    break
    except KeyboardInterrupt:
        bar.close()
        have = len(store.done_steps())
        raise WalkInterrupted(
            f"{len(ok)} checkpoint(s) measured in this run, {have} in {store.folder} "
            f"(measurements.csv is up to date); rerun the same command to resume"
        ) from None
    finally:
        bar.close()  # whatever ends the loop, the next line printed starts a line of its own
    return ok, failed, stopped


@contextlib.contextmanager
def _interrupt_latch():
    """Remember each Ctrl-C while the block runs; yields a list that is true once one came.

    The interrupt is still raised at once; the list is for one Python dropped (see the module
    docstring). Only the main thread can own a signal handler, and a handler someone else set
    stays theirs: in either case this does nothing.
    """
    seen: list[int] = []
    previous = signal.getsignal(signal.SIGINT)
    main = threading.current_thread() is threading.main_thread()
    if not main or previous is not signal.default_int_handler:
        yield seen
        return

    def handler(signum, frame):
        seen.append(signum)
        signal.default_int_handler(signum, frame)

    shown = sys.unraisablehook

    def quiet(unraisable):  # a dropped Ctrl-C is latched: not a traceback for the user
        if not (seen and isinstance(unraisable.exc_value, KeyboardInterrupt)):
            shown(unraisable)

    signal.signal(signal.SIGINT, handler)
    sys.unraisablehook = quiet
    try:
        yield seen
    finally:
        signal.signal(signal.SIGINT, previous)
        sys.unraisablehook = shown


# Consecutive checkpoints that could not reach the server before the walk stops: each costs
# the Hub client's own retries (about 23 s), an hour for 150 revisions of a dead server.
MAX_UNREACHABLE = 3


def _unreachable(exc: BaseException) -> bool:
    """Whether a failure was a connection that could not be made, or a lasting refusal."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, (ConnectionError, HubRefusedError)) or type(exc).__name__ in (
            "ConnectError",
            "ConnectTimeout",
        ):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def _measure_checkpoint(fetched, ids, batch_size, device, dtype, config):
    """The checkpoint's table, its mechanisms' tables (by name) and how it was loaded.

    How: ``whole``, ``streamed``, or ``whole (why it could not be streamed)``.
    """
    from massdyn.tracker.mechanisms import measure_mechanisms

    mechanisms = config.mechanisms
    how = "whole"
    if config.max_memory is not None:
        from massdyn.tracker import streamed

        why_not = streamed.streamable(fetched.path)
        if why_not is None:
            need = streamed.weights_nbytes(fetched.path, dtype)
            if need > parse_size(config.max_memory):
                try:
                    table, _, extras = streamed.measure_streamed(
                        fetched.path,
                        ids,
                        batch_size,
                        device,
                        dtype,
                        config.trust_remote_code,
                        mechanisms,
                    )
                    return table, extras, "streamed"
                except streamed.NotStreamableError as exc:
                    how = f"whole ({exc})"
        else:
            how = f"whole ({why_not})"
    model = load_model(fetched.path, device, dtype, config.trust_remote_code)
    try:
        return *measure_mechanisms(model, ids, batch_size, mechanisms), how
    finally:
        del model
        _free(device)


def _reason(exc: BaseException) -> str:
    """A failed checkpoint's reason: the message's first line.

    With the exception's type in front, except for our own checkpoint errors, which are
    written to be read as they are.
    """
    first = first_line(exc)
    if isinstance(exc, CheckpointError) or first == type(exc).__name__:
        return first
    return f"{type(exc).__name__}: {first}"


def _free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _progress(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="ckpt", desc="walk", disable=not enabled)
