"""The walk's share of the Hub cache: what it downloaded, what is in use, what to delete.

Revisions share blobs (an unchanged config.json, say), and branches may share a commit, so
a revision is deleted only when no fetched checkpoint still uses it and only if this walk
downloaded it; revisions cached before the walk are never deleted. The revisions this walk
downloaded and has not yet deleted are listed in a ledger in the results folder, so that a
killed walk's downloads are deleted by its next run.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import shutil
import threading
from pathlib import Path


class HubCache:
    """One repo's part of the Hub cache, as one walk uses it.

    Args:
        repo_id: The repo.
        cache_dir: Cache folder; the Hub client's default (HF_HUB_CACHE) when None.
    """

    def __init__(self, repo_id: str, cache_dir: str | None = None):
        self.repo_id = repo_id
        self.cache_dir = cache_dir
        # Deleting one revision while the next is being downloaded could remove a blob the
        # new snapshot is about to link, so downloads and deletions take turns.
        self.lock = threading.Lock()
        self._in_use: collections.Counter[str] = collections.Counter()
        self._downloaded: set[str] = set()
        self._ledger: Path | None = None
        self.ledger_refs: dict[str, str | None] = {}

    def repo_dir(self) -> Path:
        """The repo's folder in the cache (``models--org--name``)."""
        from huggingface_hub import constants

        root = Path(self.cache_dir or constants.HF_HUB_CACHE)
        return root / f"models--{self.repo_id.replace('/', '--')}"

    def cached_refs(self) -> list[str]:
        """The names of the refs (branches, tags) present in the cache."""
        refs = self.repo_dir() / "refs"
        return sorted(p.name for p in refs.iterdir() if p.is_file()) if refs.is_dir() else []

    def cached_commit(self, ref: str) -> str | None:
        """The commit a cached ref points at, or None."""
        ref_file = self.repo_dir() / "refs" / ref
        return ref_file.read_text().strip() if ref_file.exists() else None

    def note_download_start(self, ref: str, was_cached: bool) -> None:
        """Record ``ref`` in the ledger before a byte arrives, unless it was cached before."""
        if not was_cached and ref not in self.ledger_refs:
            self.ledger_refs[ref] = None
            self.save_ledger()

    def note_downloaded(self, ref: str, commit: str) -> bool:
        """``ref`` resolved to ``commit``; returns whether this walk owns the download."""
        if ref in self.ledger_refs:
            self.ledger_refs[ref] = commit
            self.save_ledger()
            return True
        return False

    def acquire(self, commit: str, downloaded: bool) -> None:
        """A fetched checkpoint now uses ``commit``."""
        self._in_use[commit] += 1
        if downloaded:
            self._downloaded.add(commit)

    def release(self, commit: str, keep: bool) -> None:
        """A checkpoint of ``commit`` is done; delete it when unused and ours, unless ``keep``."""
        with self.lock:
            self._in_use[commit] -= 1
            if self._in_use[commit] > 0 or commit not in self._downloaded:
                return
            del self._in_use[commit]
            self._downloaded.discard(commit)
            if not keep:
                self.delete_revision(commit)
            for ref in [r for r, c in self.ledger_refs.items() if c == commit]:
                del self.ledger_refs[ref]  # deleted, or kept as asked: no longer a leftover
            self.save_ledger()

    def recover(self, folder: Path, pending: set[str], keep: bool = False) -> None:
        """Delete what an earlier, interrupted run of this walk downloaded and did not keep.

        The ledger ``folder/downloads.json`` lists the revisions this walk downloaded and has
        not yet deleted. Those still to be measured (``pending``) stay, and are deleted after
        measuring as if downloaded now; the others are deleted from the cache now.
        """
        self._ledger = Path(folder) / "downloads.json"
        if self._ledger.exists():
            try:
                self.ledger_refs = dict(json.loads(self._ledger.read_text()))
            except ValueError:
                self.ledger_refs = {}
        for ref, commit in list(self.ledger_refs.items()):
            if ref in pending and not keep:
                continue
            commit = commit or self.cached_commit(ref)
            if commit and not keep:
                with self.lock:
                    self.delete_revision(commit)
            del self.ledger_refs[ref]
        self.save_ledger()

    def save_ledger(self) -> None:
        """Write the ledger (or remove it when empty)."""
        if self._ledger is None:
            return
        from massdyn.tracker.store import atomic_write

        if self.ledger_refs:
            atomic_write(self._ledger, lambda f: json.dump(self.ledger_refs, f, indent=1))
        else:
            self._ledger.unlink(missing_ok=True)

    def delete_revision(self, commit: str) -> None:
        """Delete one revision from the cache (blobs other revisions share stay)."""
        from huggingface_hub import scan_cache_dir

        info = scan_cache_dir(self.repo_dir().parent)
        commits = [
            rev.commit_hash
            for repo in info.repos
            if repo.repo_id == self.repo_id
            for rev in repo.revisions
            if rev.commit_hash == commit
        ]
        if commits:
            info.delete_revisions(*commits).execute()
        shutil.rmtree(self.repo_dir() / ".no_exist" / commit, ignore_errors=True)

    @staticmethod
    def drop_file(path: Path) -> None:
        """Remove a cached file and its blob (a corrupt blob must not be served again)."""
        target = path.resolve()
        for p in {path, target}:
            with contextlib.suppress(FileNotFoundError):
                os.remove(p)
