"""Which files make a checkpoint, and how their integrity is checked and summarised."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

from massdyn.tracker.sources.base import CheckpointError, Fetched

WEIGHT_SUFFIXES = (".safetensors", ".bin")


def file_sha256(path: Path, chunk: int = 1 << 22) -> str:
    """sha256 of a file, streamed."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def git_blob_sha1(path: Path, chunk: int = 1 << 22) -> str:
    """The git object id of a file (``git hash-object``)."""
    h = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())  # noqa: S324 - git's own id
    with path.open("rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def combined_digest(file_hashes: dict[str, str]) -> str:
    """One hash for a set of weight files (names and their sha256), order-independent."""
    h = hashlib.sha256()
    for name in sorted(file_hashes):
        h.update(f"{Path(name).name}:{file_hashes[name]}\n".encode())
    return h.hexdigest()


def weight_files(names) -> list[str]:
    """The files a checkpoint needs: config plus one weight format (safetensors preferred)."""
    names = list(names)
    safe = [n for n in names if n.endswith(".safetensors") and Path(n).name.startswith("model")]
    binf = [n for n in names if n.endswith(".bin") and Path(n).name.startswith("pytorch_model")]
    chosen = safe or binf
    if not chosen:
        return []
    index_name = "model.safetensors.index.json" if safe else "pytorch_model.bin.index.json"
    extra = [n for n in names if Path(n).name == index_name]
    return sorted(chosen) + extra


def verify_against_tree(
    files: list[str], tree: dict, paths: dict[str, Path], ref: str, discard: Callable[[Path], None]
):
    """Check downloaded files against the Hub tree's hashes (LFS sha256, else git blob id).

    A file that fails is passed to ``discard`` (so that a cache does not serve it again).

    Returns:
        ``(weight hashes, how)``: the sha256 of every weight file, and ``lfs-sha256`` or
        ``git-sha1``.

    Raises:
        CheckpointError: naming the first file whose hash differs.
    """
    hashes, how = {}, "git-sha1"
    for f in files:
        entry = tree[f]
        lfs = getattr(entry, "lfs", None)
        if lfs is not None and getattr(lfs, "sha256", None):
            got = file_sha256(paths[f])
            expected, kind = lfs.sha256, "lfs-sha256"
        else:
            got = git_blob_sha1(paths[f])
            expected, kind = entry.blob_id, "git-sha1"
        if got != expected:
            discard(paths[f])
            raise CheckpointError(
                f"integrity check failed for {f} at {ref}: {kind} {got[:12]} != {expected[:12]}"
            )
        if f.endswith(WEIGHT_SUFFIXES):
            how = "lfs-sha256" if kind == "lfs-sha256" else how
            hashes[f] = got if kind == "lfs-sha256" else file_sha256(paths[f])
    return hashes, how


def folder_checkpoint(step: int, ref: str, folder: Path, verified: str, **extra) -> Fetched:
    """Describe a checkpoint already on disk: check it is a model folder, hash its weights.

    Raises:
        CheckpointError: when the folder has no ``config.json`` or no weights.
    """
    names = [p.name for p in folder.iterdir()]
    if "config.json" not in names:
        raise CheckpointError(f"not a model folder (no config.json): {folder}")
    files = weight_files(names)
    weights = [f for f in files if f.endswith(WEIGHT_SUFFIXES)]
    if not weights:
        raise CheckpointError(f"no model weights (*.safetensors or pytorch_model*.bin) in {folder}")
    return Fetched(
        step=step,
        ref=ref,
        path=folder,
        weights_sha256=combined_digest({f: file_sha256(folder / f) for f in weights}),
        verified=verified,
        nbytes=sum((folder / f).stat().st_size for f in ["config.json", *files]),
        files=["config.json", *files],
        **extra,
    )
