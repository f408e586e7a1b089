"""Checkpoint series: a Hugging Face Hub repo with step branches, or a folder of folders.

A source lists its checkpoints (step -> reference), fetches one to local files, and
releases it afterwards (for the Hub: deletes from the cache what the walk downloaded,
never what was cached before). Hub access goes through ``huggingface_hub`` and honours its
environment (HF_HOME, HF_HUB_CACHE, HF_ENDPOINT, HF_HUB_OFFLINE, HF_TOKEN).
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import json
import os
import re
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path

from massdyn.tracker.schedule import is_pythia, pythia_steps

STEP_PATTERNS = (
    re.compile(r"^step[-_]?(\d+)$"),
    re.compile(r"^checkpoint-(\d+)$"),
    re.compile(r"^global_step(\d+)$"),
)
HUB_BRANCH = re.compile(r"^step(\d+)$")
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
)
WEIGHT_SUFFIXES = (".safetensors", ".bin")
NEEDED_PATTERNS_SAFE = (
    "config.json",
    "model.safetensors",
    "model-*.safetensors",
    "model.safetensors.index.json",
)
NEEDED_PATTERNS_BIN = (
    "config.json",
    "pytorch_model.bin",
    "pytorch_model-*.bin",
    "pytorch_model.bin.index.json",
)


class CheckpointError(RuntimeError):
    """A checkpoint cannot be used; the message is recorded as the reason."""


def step_of(name: str) -> int | None:
    """The training step encoded in a checkpoint folder name, or None."""
    for pat in STEP_PATTERNS:
        m = pat.match(name)
        if m:
            return int(m.group(1))
    return None


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


@dataclass
class Fetched:
    """A checkpoint available as local files.

    Attributes:
        step: Training step.
        ref: Revision name (Hub) or folder (local).
        path: Folder that ``from_pretrained`` can load.
        weights_sha256: Digest over the weight files' sha256.
        verified: How integrity was established (``lfs-sha256``, ``git-sha1``, ``local``,
            ``unverified``).
        downloaded: True when this walk downloaded it (so releasing may delete it).
        commit: Resolved commit id (Hub) or None.
        nbytes: Size of the fetched files.
    """

    step: int
    ref: str
    path: Path
    weights_sha256: str
    verified: str
    downloaded: bool = False
    commit: str | None = None
    nbytes: int = 0
    files: list[str] = field(default_factory=list)


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


def _read_config(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read {path}: {exc}") from None


class LocalSource:
    """A folder holding one folder per checkpoint (``step64/``, ``checkpoint-500/``, ...).

    Args:
        root: The series folder.
        name: Series name for the results (default: the folder name).
    """

    kind = "local"

    def __init__(self, root: str | Path, name: str | None = None):
        self.root = Path(root)
        if not self.root.is_dir():
            raise CheckpointError(f"no such folder: {self.root}")
        self.name = name or self.root.resolve().name
        self.location = str(self.root.resolve())

    def list_steps(self) -> dict[int, str]:
        """Map step -> checkpoint folder name, for sub-folders named like checkpoints."""
        found: dict[int, str] = {}
        for p in sorted(self.root.iterdir()):
            step = step_of(p.name)
            if p.is_dir() and step is not None:
                found.setdefault(step, p.name)
        if not found:
            if (self.root / "config.json").exists():
                raise CheckpointError(
                    f"{self.root} is a single model folder, not a series: point SOURCE at the "
                    "folder that holds its checkpoint folders (step<N>/, checkpoint-<N>/, ...)"
                )
            raise CheckpointError(
                f"{self.root} holds no checkpoint folders (step<N>/, checkpoint-<N>/ or "
                "global_step<N>/)"
            )
        return found

    def model_config(self, ref: str) -> dict:
        """The ``config.json`` of one checkpoint."""
        return _read_config(self.root / ref / "config.json")

    def recover(self, folder: Path, pending: set[str], keep: bool = False) -> None:
        """Nothing is downloaded, so nothing is left over."""

    def size_of(self, ref: str) -> int:
        """Local checkpoints take no extra disk."""
        return 0

    def fetch(self, step: int, ref: str) -> Fetched:
        """Check the folder holds a loadable checkpoint and hash its weights."""
        path = self.root / ref
        if not path.is_dir():
            raise CheckpointError(f"checkpoint folder missing: {path}")
        return folder_checkpoint(step, ref, path, verified="local")

    def release(self, fetched: Fetched, keep: bool = False) -> None:
        """Nothing to release for local folders."""

    def tokenizer_location(self, ref: str) -> str:
        """The checkpoint folder if it holds tokenizer files, else the series folder."""
        path = self.root / ref
        for cand in (path, self.root):
            if any((cand / f).exists() for f in TOKENIZER_FILES):
                return str(cand)
        raise CheckpointError(
            f"no tokenizer files in {path} or {self.root}; pass --tokenizer or --token-ids"
        )


class HubSource:
    """A Hub model repo whose branches ``step{N}`` are checkpoints.

    Args:
        repo_id: e.g. ``EleutherAI/pythia-160m``.
        cache_dir: Cache folder; the Hub client's default (HF_HUB_CACHE) when None.
        endpoint: Hub URL; the Hub client's default (HF_ENDPOINT) when None.
    """

    kind = "hub"

    def __init__(
        self,
        repo_id: str,
        cache_dir: str | None = None,
        endpoint: str | None = None,
        name: str | None = None,
    ):
        from huggingface_hub import HfApi

        self.repo_id = repo_id
        self.name = name or repo_id
        self.location = repo_id
        self.cache_dir = cache_dir
        self.endpoint = endpoint
        self.api = HfApi(endpoint=endpoint)
        self._trees: dict[str, list] = {}
        # Revisions share blobs (an unchanged config.json, say). Deleting one revision while
        # the next is being downloaded could remove a blob the new snapshot is about to link,
        # so downloads and deletions take turns.
        self._cache_lock = threading.Lock()
        # Branches may share a commit: a revision is deleted when no fetched checkpoint still
        # uses it, and only if this walk downloaded it.
        self._in_use: collections.Counter[str] = collections.Counter()
        self._downloaded: set[str] = set()
        # The revisions this walk downloaded and has not yet deleted, kept in the results
        # folder (see recover) so that a killed walk's downloads are deleted by its next run.
        self._ledger: Path | None = None
        self._ledger_refs: dict[str, str | None] = {}

    @staticmethod
    def offline() -> bool:
        """Whether the Hub client is in offline mode (HF_HUB_OFFLINE)."""
        from huggingface_hub import constants

        return bool(constants.HF_HUB_OFFLINE)

    def _cache_repo_dir(self) -> Path:
        from huggingface_hub import constants

        root = Path(self.cache_dir or constants.HF_HUB_CACHE)
        return root / f"models--{self.repo_id.replace('/', '--')}"

    def _cached_refs(self) -> dict[int, str]:
        refs = self._cache_repo_dir() / "refs"
        out = {}
        if refs.is_dir():
            for p in refs.iterdir():
                m = HUB_BRANCH.match(p.name)
                if m:
                    out[int(m.group(1))] = p.name
        return out

    def list_steps(self) -> dict[int, str]:
        """Branches named ``step{N}``; offline, the revisions in the local cache.

        Falls back to the built-in Pythia schedule for ``EleutherAI/pythia-*`` when the
        branches cannot be listed.

        Raises:
            CheckpointError: when nothing can be listed.
        """
        if self.offline():
            found = self._cached_refs()
            if not found:
                raise CheckpointError(
                    f"HF_HUB_OFFLINE is set and the cache holds no step revisions of {self.repo_id}"
                )
            return found
        from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

        try:
            refs = self.api.list_repo_refs(self.repo_id)
        except RepositoryNotFoundError:
            raise CheckpointError(
                f"repository not found: {self.repo_id} (check the spelling; a private or gated "
                "repo needs HF_TOKEN)"
            ) from None
        except HfHubHTTPError as exc:  # the Hub answered: a refusal, not a network fault
            status = getattr(getattr(exc, "response", None), "status_code", None)
            if status == 404:  # what Hub-compatible mirrors answer for an unknown repo
                raise CheckpointError(
                    f"repository not found: {self.repo_id} (check the spelling)"
                ) from None
            raise CheckpointError(
                f"cannot list the branches of {self.repo_id}: {first_line(exc)}"
            ) from None
        except Exception as exc:  # network: a known schedule still lets cached revisions work
            if is_pythia(self.repo_id) and self.repo_id.split("/")[1] in _pythia_names():
                return {s: f"step{s}" for s in pythia_steps()}
            raise CheckpointError(
                f"cannot list the branches of {self.repo_id}: {first_line(exc)}"
            ) from None
        found = {}
        for b in refs.branches:
            m = HUB_BRANCH.match(b.name)
            if m:
                found[int(m.group(1))] = b.name
        if not found:
            raise CheckpointError(f"{self.repo_id} has no branches named step<N>")
        return found

    def _tree(self, ref: str) -> list:
        if ref not in self._trees:
            try:
                self._trees[ref] = list(
                    self.api.list_repo_tree(self.repo_id, revision=ref, recursive=True)
                )
            except Exception as exc:
                raise CheckpointError(
                    f"revision {ref} of {self.repo_id} is not available: {exc}"
                ) from exc
        return self._trees[ref]

    def size_of(self, ref: str) -> int:
        """Bytes a revision's needed files take (0 when offline)."""
        if self.offline():
            return 0
        tree = {e.path: e for e in self._tree(ref) if hasattr(e, "size")}
        return sum(tree[f].size for f in ["config.json", *weight_files(tree)] if f in tree)

    def model_config(self, ref: str) -> dict:
        """The ``config.json`` of one revision (downloaded alone, a few kB)."""
        from huggingface_hub import hf_hub_download

        try:
            path = hf_hub_download(
                self.repo_id,
                "config.json",
                revision=ref,
                cache_dir=self.cache_dir,
                endpoint=self.endpoint,
            )
        except Exception as exc:
            raise CheckpointError(f"no config.json at {ref}: {first_line(exc)}") from None
        return _read_config(Path(path))

    def recover(self, folder: Path, pending: set[str], keep: bool = False) -> None:
        """Delete what an earlier, interrupted run of this walk downloaded and did not keep.

        The ledger ``folder/downloads.json`` lists the revisions this walk downloaded and has
        not yet deleted. Those still to be measured (``pending``) stay, and are deleted after
        measuring as if downloaded now; the others are deleted from the cache now.
        """
        self._ledger = Path(folder) / "downloads.json"
        if self._ledger.exists():
            try:
                self._ledger_refs = dict(json.loads(self._ledger.read_text()))
            except ValueError:
                self._ledger_refs = {}
        for ref, commit in list(self._ledger_refs.items()):
            if ref in pending and not keep:
                continue
            commit = commit or self._cached_commit(ref)
            if commit and not keep:
                with self._cache_lock:
                    self._delete_revision(commit)
            del self._ledger_refs[ref]
        self._save_ledger()

    def _cached_commit(self, ref: str) -> str | None:
        ref_file = self._cache_repo_dir() / "refs" / ref
        return ref_file.read_text().strip() if ref_file.exists() else None

    def _save_ledger(self) -> None:
        if self._ledger is None:
            return
        from massdyn.tracker.store import atomic_write

        if self._ledger_refs:
            atomic_write(self._ledger, lambda f: json.dump(self._ledger_refs, f, indent=1))
        else:
            self._ledger.unlink(missing_ok=True)

    def fetch(self, step: int, ref: str) -> Fetched:
        """Download config and weights of one revision and verify them.

        Raises:
            CheckpointError: missing revision, no weights, download or integrity failure.
        """
        if self.offline():
            return self._fetch_cached(step, ref)
        with self._cache_lock:
            fetched = self._download(step, ref)
            self._in_use[fetched.commit] += 1
            if fetched.downloaded:
                self._downloaded.add(fetched.commit)
            return fetched

    def _download(self, step: int, ref: str) -> Fetched:
        from huggingface_hub import hf_hub_download, try_to_load_from_cache

        tree = {e.path: e for e in self._tree(ref) if hasattr(e, "size")}
        files = weight_files(tree)
        if not files:
            raise CheckpointError(f"revision {ref} of {self.repo_id} has no model weights")
        if "config.json" not in tree:
            raise CheckpointError(f"revision {ref} of {self.repo_id} has no config.json")
        # Weights decide whose a revision is: config.json (a few kB) may have been fetched
        # alone to check the inputs against it.
        was_cached = [
            isinstance(
                try_to_load_from_cache(self.repo_id, f, cache_dir=self.cache_dir, revision=ref), str
            )
            for f in files
        ]
        files = ["config.json", *files]
        ours = ref in self._ledger_refs  # downloaded by an interrupted run of this walk
        if not any(was_cached) and not ours:
            self._ledger_refs[ref] = None  # recorded before a byte arrives
            self._save_ledger()
        paths = {}
        try:
            for f in files:
                paths[f] = Path(
                    hf_hub_download(
                        self.repo_id,
                        f,
                        revision=ref,
                        cache_dir=self.cache_dir,
                        endpoint=self.endpoint,
                    )
                )
        except Exception as exc:
            raise CheckpointError(f"download of {ref} failed: {type(exc).__name__}: {exc}") from exc
        folder = paths["config.json"].parent
        commit = folder.name
        if ref in self._ledger_refs:
            self._ledger_refs[ref] = commit
            self._save_ledger()
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
                self._drop_files(paths[f])
                raise CheckpointError(
                    f"integrity check failed for {f} at {ref}: {kind} {got[:12]} != {expected[:12]}"
                )
            if f.endswith(WEIGHT_SUFFIXES):
                how = "lfs-sha256" if kind == "lfs-sha256" else how
                hashes[f] = got if kind == "lfs-sha256" else file_sha256(paths[f])
        return Fetched(
            step=step,
            ref=ref,
            path=folder,
            weights_sha256=combined_digest(hashes),
            verified=how,
            downloaded=ref in self._ledger_refs,
            commit=commit,
            nbytes=sum(p.stat().st_size for p in paths.values()),
            files=files,
        )

    def _fetch_cached(self, step: int, ref: str) -> Fetched:
        repo_dir = self._cache_repo_dir()
        ref_file = repo_dir / "refs" / ref
        if not ref_file.exists():
            raise CheckpointError(f"revision {ref} of {self.repo_id} is not in the offline cache")
        commit = ref_file.read_text().strip()
        folder = repo_dir / "snapshots" / commit
        if not folder.is_dir():
            raise CheckpointError(f"cached revision {ref} has no snapshot folder")
        return folder_checkpoint(step, ref, folder, verified="unverified", commit=commit)

    @staticmethod
    def _drop_files(path: Path) -> None:
        # A corrupt blob must not be served again from the cache: remove link and blob.
        target = path.resolve()
        for p in {path, target}:
            with contextlib.suppress(FileNotFoundError):
                os.remove(p)

    def release(self, fetched: Fetched, keep: bool = False) -> None:
        """Delete a revision this walk downloaded from the cache, unless asked to keep it."""
        if fetched.commit is None or self.offline():
            return
        with self._cache_lock:
            self._in_use[fetched.commit] -= 1
            if self._in_use[fetched.commit] > 0 or fetched.commit not in self._downloaded:
                return
            del self._in_use[fetched.commit]
            self._downloaded.discard(fetched.commit)
            if not keep:
                self._delete_revision(fetched.commit)
            for ref in [r for r, c in self._ledger_refs.items() if c == fetched.commit]:
                del self._ledger_refs[ref]  # deleted, or kept as asked: no longer a leftover
            self._save_ledger()

    def _delete_revision(self, commit: str) -> None:
        from huggingface_hub import scan_cache_dir

        root = self._cache_repo_dir().parent
        info = scan_cache_dir(root)
        commits = [
            rev.commit_hash
            for repo in info.repos
            if repo.repo_id == self.repo_id
            for rev in repo.revisions
            if rev.commit_hash == commit
        ]
        if commits:
            info.delete_revisions(*commits).execute()
        shutil.rmtree(self._cache_repo_dir() / ".no_exist" / commit, ignore_errors=True)

    def tokenizer_location(self, ref: str) -> str:
        """A local folder with the tokenizer files of one revision (downloaded if needed).

        Only tokenizer files are fetched, so nothing else of the revision is probed.
        """
        from huggingface_hub import snapshot_download

        try:
            return snapshot_download(
                self.repo_id,
                revision=ref,
                cache_dir=self.cache_dir,
                endpoint=self.endpoint,
                allow_patterns=list(TOKENIZER_FILES),
            )
        except Exception as exc:
            raise CheckpointError(
                f"cannot get the tokenizer of {self.repo_id}@{ref}: {exc}"
            ) from exc


def first_line(exc: BaseException) -> str:
    """The first non-blank line of an exception's message (its type name when it has none)."""
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return lines[0].strip() if lines else type(exc).__name__


def _pythia_names() -> set[str]:
    from massdyn.tracker.schedule import pythia_facts

    names = set(pythia_facts()["models"])
    return names | {f"{n}-deduped" for n in names}


def looks_like_path(spec: str) -> bool:
    """Whether a SOURCE is meant as a folder: absolute, ``./``, ``~``, a backslash, 3+ parts."""
    return (
        spec.startswith(("/", "./", "../", "~", ".\\"))
        or spec in (".", "..")
        or spec.endswith("/")
        or spec.count("/") >= 2
        or "\\" in spec
    )


def open_source(spec: str, name: str | None = None):
    """A :class:`LocalSource` for an existing folder, else a :class:`HubSource` repo id.

    Raises:
        CheckpointError: when ``spec`` looks like a path but is no folder, or is neither a
            folder nor of the form ``org/name``.
    """
    if Path(spec).expanduser().is_dir():
        return LocalSource(Path(spec).expanduser(), name=name)
    if looks_like_path(spec):
        raise CheckpointError(f"no such folder: {spec}")
    if re.fullmatch(r"[\w.-]+/[\w.-]+", spec):
        return HubSource(spec, name=name)
    raise CheckpointError(f"{spec!r} is neither a checkpoint folder nor a Hub repo id (org/name)")
