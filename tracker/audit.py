"""A pre-flight audit of a checkpoint series: what each revision serves, before any download.

Public checkpoint series are broken in ways that cost terabytes: in pythia-2.8b 86 of 154
branches serve final-era weights, pythia-12b's step50000/step58000 serve the final first
shard, step0 and step1 are identical in every Pythia model, some branches are missing. The
Hub's tree API gives every file's size and LFS sha256 without downloading it, so the
audit lists each revision's weight files and says per revision:

- ``ok``;
- ``duplicate``: its weights (the files the walker would load) equal an earlier
  revision's, named in ``duplicate_of``; the weights of a Hub repo's ``main`` (the final
  model) belong to the last step serving them, so a mid-training branch serving them is
  the duplicate, not the final step;
- ``shard duplicate``: some weight file equals one of an earlier revision or of ``main``
  (``detail`` names which), the set as a whole does not;
- ``mixed formats``: safetensors and ``.bin`` weights side by side (the walk loads the
  safetensors);
- ``format change``: weights in another format than most revisions' (``.bin`` among
  safetensors);
- ``size anomaly``: its weights' total size differs from most revisions' (not when it
  only splits the same bytes into another number of files, give or take the shards'
  headers: that is ``ok``, resharded, with the detail);
- ``missing``: a step of the suite's declared schedule with no such revision (the suite
  file's ``"schedule"``; Pythia's for a Pythia repo; none is judged for a series without
  one), no weights, or a revision that cannot be listed.

Local series are audited the same way, hashing their files (nothing is downloaded there
either). Contract: :func:`audit` takes a source with ``list_steps`` and ``tree_files``
and returns one row per revision (:data:`AUDIT_COLUMNS`); it never raises for a single
revision's fault.
"""

from __future__ import annotations

import collections

import pandas as pd

from massdyn.tracker.sources.base import CheckpointError, first_line
from massdyn.tracker.sources.integrity import combined_digest, weight_files

AUDIT_COLUMNS = (
    "model",
    "step",
    "revision",
    "status",
    "duplicate_of",
    "detail",
    "bytes",
    "n_files",
    "format",
    "weights_digest",
)
WEIGHT_SUFFIXES = (".safetensors", ".bin")
# Bytes per weight file by which a resharded revision may differ from the usual size: a
# safetensors header's length field and per-file metadata, tens of bytes, generously
# bounded (the tree API gives sizes, not tensors).
RESHARD_SLACK = 1024


def _formats(names) -> set[str]:
    return {
        "safetensors" if n.endswith(".safetensors") else "bin"
        for n in names
        if n.endswith(WEIGHT_SUFFIXES)
    }


def audit(source, steps=None, expected=None) -> pd.DataFrame:
    """Audit every revision of ``source`` (or those of ``steps``) from file listings alone.

    Args:
        source: A checkpoint source with ``tree_files(ref)`` (the Hub and local sources).
        steps: Steps to audit (default: every step the source lists).
        expected: The series' declared schedule (a :class:`Schedule`, or its steps): the
            steps it lacks are reported ``missing``. None: nothing is judged missing.

    Returns:
        One row per revision, by step, with :data:`AUDIT_COLUMNS`.

    Raises:
        CheckpointError: when the series itself cannot be listed.
        ValueError: when the source cannot list files without downloading them.
    """
    if not hasattr(source, "tree_files"):
        raise ValueError(
            f"{source.name}: this source cannot list its files without downloading them "
            "(an offline Hub cache); audit it online or as a local folder"
        )
    available = source.list_steps()
    wanted = sorted(available if steps is None else set(steps))
    rows, listed = [], {}
    for step in wanted:
        row = dict.fromkeys(AUDIT_COLUMNS, "")
        row.update(model=source.name, step=step, revision=available.get(step, ""))
        rows.append(row)
        if step not in available:
            row.update(status="missing", detail="no such revision in the series")
            continue
        try:
            files = source.tree_files(available[step])
        except CheckpointError as exc:
            row.update(status="missing", detail=first_line(exc))
            continue
        chosen = _weights(files)
        if not chosen:
            row.update(status="missing", detail="no weight files (*.safetensors, *.bin)")
            continue
        row.update(
            status="ok",
            bytes=sum(files[f][0] for f in chosen),
            n_files=len(chosen),
            format="+".join(sorted(_formats(files))),
            weights_digest=combined_digest(chosen),
        )
        listed[step] = chosen
    ref = getattr(source, "main_ref", None)
    main = _listed_weights(source, ref) if ref else {}
    main_digest = combined_digest(main) if main else None
    owner = _owners(source, available, rows, main_digest)
    first_file = {d: ("main", f) for f, d in main.items()}
    for row in rows:
        if row["status"] != "ok":
            continue
        step, digest = row["step"], row["weights_digest"]
        of_main = " (the weights of main, the final model)" if digest == main_digest else ""
        if owner[digest] != step:
            row.update(status="duplicate", duplicate_of=owner[digest])
            row["detail"] = f"the weights of step {owner[digest]}, byte for byte{of_main}"
            continue
        chosen = listed[step]
        shared = []
        if digest != main_digest:
            shared = [
                f"{f} = {_where(first_file[d][0])}'s {first_file[d][1]}"
                for f, d in chosen.items()
                if d in first_file
            ]
        for f, d in chosen.items():
            first_file.setdefault(d, (step, f))
        if shared:
            row.update(status="shard duplicate", detail="; ".join(shared))
        elif "+" in row["format"]:
            row.update(
                status="mixed formats",
                detail="safetensors and .bin weights side by side; the walk loads safetensors",
            )
    if hasattr(expected, "steps"):
        expected = expected.steps(max(available, default=None))
    for step in sorted(set(expected or ()) - set(available)):
        if steps is None or step in steps:
            row = dict.fromkeys(AUDIT_COLUMNS, "")
            row.update(
                model=source.name,
                step=step,
                status="missing",
                detail="in the series' schedule, but no such branch",
            )
            rows.append(row)
    table = pd.DataFrame(rows, columns=list(AUDIT_COLUMNS)).sort_values("step", kind="stable")
    _flag_sizes(table)
    _flag_formats(table)
    return table.reset_index(drop=True)


def _where(step) -> str:
    return "main" if step == "main" else f"step {step}"


def _weights(files: dict[str, tuple[int, str]]) -> dict[str, str]:
    """Weight file -> digest, of the files of a listing the walker would load."""
    return {f: files[f][1] for f in weight_files(files) if f.endswith(WEIGHT_SUFFIXES)}


def _listed_weights(source, ref: str) -> dict[str, str]:
    """:func:`_weights` of revision ``ref``; empty when it cannot be listed."""
    try:
        return _weights(source.tree_files(ref))
    except CheckpointError:
        return {}


def _owners(source, available, rows, main_digest) -> dict[str, int]:
    """The step each set of weights belongs to: its earliest step, except for main's.

    Main's weights are the end of training: a step branch serving them before the series'
    last step is mislabelled (pythia-2.8b serves them at 76 mid-training steps), so they
    belong to the last step that serves them, the series' final step when it does,
    whether or not that step is among the audited ones.
    """
    owner: dict[str, int] = {}
    for row in rows:
        if row["status"] == "ok":
            owner.setdefault(row["weights_digest"], row["step"])
    if main_digest is None:
        return owner
    holders = [r["step"] for r in rows if r["weights_digest"] == main_digest]
    final = max(available)
    if final not in holders:
        weights = _listed_weights(source, available[final])
        if weights and combined_digest(weights) == main_digest:
            holders.append(final)
    if holders:
        owner[main_digest] = max(holders)
    return owner


def _flag_sizes(table: pd.DataFrame) -> None:
    """Mark ``ok`` revisions whose weights' size differs from the most common size."""
    sized = table[table["bytes"] != ""]
    if len(sized) < 3:
        return
    usual, count = collections.Counter(sized["bytes"]).most_common(1)[0]
    if count < len(sized) / 2:
        return  # no size most revisions share: nothing to call an anomaly
    odd = (table["bytes"] != "") & (table["bytes"] != usual) & (table["status"] == "ok")
    files = collections.Counter(table.loc[table["bytes"] == usual, "n_files"]).most_common(1)
    usual_files = int(files[0][0])
    for i in table.index[odd]:
        size, n = int(table.loc[i, "bytes"]), int(table.loc[i, "n_files"])
        if n != usual_files and abs(size - int(usual)) <= RESHARD_SLACK * max(n, usual_files):
            table.loc[i, "detail"] = (
                f"resharded: {n} weight files where most revisions have {usual_files}, "
                f"{size} bytes against {usual} (the shards' headers)"
            )
            continue
        table.loc[i, "status"] = "size anomaly"
        table.loc[i, "detail"] = f"{size} bytes of weights; most revisions {usual}"


def _flag_formats(table: pd.DataFrame) -> None:
    """Mark ``ok`` revisions whose weights come in another format than most revisions'."""
    listed = table[table["format"] != ""]
    if len(listed) < 3:
        return
    usual, count = collections.Counter(listed["format"]).most_common(1)[0]
    if count < len(listed) / 2 or "+" in usual:
        return
    odd = (table["format"] != "") & (table["format"] != usual) & (table["status"] == "ok")
    for i in table.index[odd]:
        table.loc[i, "status"] = "format change"
        table.loc[i, "detail"] = (
            f"{table.loc[i, 'format']} weights where most revisions have {usual}"
            + (
                " (loaded with torch.load; --max-memory loads it whole)"
                if table.loc[i, "format"] == "bin"
                else ""
            )
        )


def audit_summary(table: pd.DataFrame) -> str:
    """A few lines: revisions per status and the bytes the duplicates would have cost."""
    counts = table["status"].value_counts()
    dup = table[table["status"] == "duplicate"]
    saved = int(pd.to_numeric(dup["bytes"], errors="coerce").fillna(0).sum())
    lines = [
        f"{table['model'].iloc[0] if len(table) else '?'}: {len(table)} revisions: "
        + ", ".join(f"{n} {k}" for k, n in counts.items())
    ]
    if len(dup):
        lines.append(
            f"  {len(dup)} duplicate revision(s): measuring each set of weights once saves "
            f"{saved / 1e9:.2f} GB of downloads"
        )
    for r in table[~table["status"].isin(["ok", "duplicate"])].itertuples():
        lines.append(f"  step {r.step}: {r.status}: {r.detail}")
    return "\n".join(lines)


__all__ = ["AUDIT_COLUMNS", "audit", "audit_summary"]
