"""A Hub model repo whose branches ``step<N>`` are checkpoints: online, or from the cache.

Hub access goes through ``huggingface_hub`` and honours its environment (HF_HOME,
HF_HUB_CACHE, HF_ENDPOINT, HF_HUB_OFFLINE, HF_TOKEN). :func:`hub_source` picks
:class:`HubSource` or, with HF_HUB_OFFLINE set, :class:`CachedHubSource`.
"""

from __future__ import annotations

from pathlib import Path

from massdyn.tracker.schedule import is_pythia, pythia_facts, pythia_steps
from massdyn.tracker.sources.base import (
    TOKENIZER_FILES,
    CheckpointError,
    Fetched,
    first_line,
    read_config,
)
from massdyn.tracker.sources.etiquette import http_status, hub_download, with_backoff
from massdyn.tracker.sources.hub_cache import HubCache
from massdyn.tracker.sources.integrity import (
    combined_digest,
    folder_checkpoint,
    verify_against_tree,
    weight_files,
)


def hub_offline() -> bool:
    """Whether the Hub client is in offline mode (HF_HUB_OFFLINE)."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


class _HubRepo:
    """What the online and the cached views of a repo share."""

    def __init__(
        self,
        repo_id: str,
        cache_dir: str | None = None,
        endpoint: str | None = None,
        name: str | None = None,
        revision_pattern: str | None = None,
    ):
        self.repo_id = repo_id
        self.revision_pattern = revision_pattern
        self.revisions: dict = {}
        self.unmatched: list[str] = []
        self.name = name or repo_id
        self.location = repo_id
        self.cache_dir = cache_dir
        self.endpoint = endpoint
        self.cache = HubCache(repo_id, cache_dir)

    def _listed(self, names: list[str], what: str) -> dict[int, str]:
        """Step -> revision of ``names`` by the revision grammar; keeps what was not taken.

        ``main`` (the final model: the audit gives its weights to the last step) is not
        a checkpoint of its own and is not listed as unmatched.

        Raises:
            CheckpointError: when no name matches, showing a few and the fix.
        """
        from massdyn.tracker.sources.revisions import RevisionGrammar

        listing = RevisionGrammar(self.revision_pattern).listing(names, self.repo_id)
        self.revisions = listing.revisions
        self.unmatched = [n for n in listing.unmatched if n != "main"] + listing.set_aside
        if not listing.steps:
            shown = ", ".join(sorted(names)[:6]) or "none"
            raise CheckpointError(
                f"{self.repo_id} has no {what} named like checkpoints (it has: {shown}); "
                r"name the pattern with --revision-pattern '^ckpt-(?P<step>\d+)$'"
            )
        return listing.steps

    def model_config(self, ref: str) -> dict:
        """The ``config.json`` of one revision (downloaded alone, a few kB)."""
        try:
            path = hub_download(
                self.repo_id, "config.json", ref, cache_dir=self.cache_dir, endpoint=self.endpoint
            )
        except CheckpointError:
            raise
        except Exception as exc:
            raise CheckpointError(f"no config.json at {ref}: {first_line(exc)}") from None
        return read_config(Path(path))

    def recover(self, folder: Path, pending: set[str], keep: bool = False) -> None:
        """Delete what an interrupted earlier run of this walk downloaded (see HubCache)."""
        self.cache.recover(folder, pending, keep)

    def tokenizer_location(self, ref: str) -> str:
        """A local folder with the tokenizer files of one revision (downloaded if needed).

        Only tokenizer files are fetched, so nothing else of the revision is probed.
        """
        from huggingface_hub import snapshot_download

        try:
            return with_backoff(
                lambda: snapshot_download(
                    self.repo_id,
                    revision=ref,
                    cache_dir=self.cache_dir,
                    endpoint=self.endpoint,
                    allow_patterns=list(TOKENIZER_FILES),
                ),
                f"answering for the tokenizer of {ref}",
            )
        except CheckpointError:
            raise
        except Exception as exc:
            raise CheckpointError(
                f"cannot get the tokenizer of {self.repo_id}@{ref}: {exc}"
            ) from exc


class HubSource(_HubRepo):
    """A Hub model repo whose branches ``step{N}`` are checkpoints, downloaded and verified.

    Args:
        repo_id: e.g. ``EleutherAI/pythia-160m``.
        cache_dir: Cache folder; the Hub client's default (HF_HUB_CACHE) when None.
        endpoint: Hub URL; the Hub client's default (HF_ENDPOINT) when None.
        name: Series name for the results (default: the repo id).
    """

    def __init__(self, repo_id: str, cache_dir=None, endpoint=None, name=None, **kwargs):
        super().__init__(repo_id, cache_dir, endpoint, name, **kwargs)
        from huggingface_hub import HfApi

        self.api = HfApi(endpoint=endpoint)
        self._trees: dict[str, list] = {}

    # The final model: the audit gives its weights to the last step, not the first, serving them.
    main_ref = "main"

    def list_steps(self) -> dict[int, str]:
        """Branches named ``step{N}``.

        Falls back to the built-in Pythia schedule for ``EleutherAI/pythia-*`` when the
        branches cannot be listed.

        Raises:
            CheckpointError: when nothing can be listed.
        """
        from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

        try:
            refs = with_backoff(
                lambda: self.api.list_repo_refs(self.repo_id), f"answering for {self.repo_id}"
            )
        except CheckpointError:
            raise
        except RepositoryNotFoundError:
            raise CheckpointError(
                f"repository not found: {self.repo_id} (check the spelling; a private or gated "
                "repo needs HF_TOKEN)"
            ) from None
        except HfHubHTTPError as exc:  # the Hub answered: a refusal, not a network fault
            status = http_status(exc)
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
        listed = [*refs.branches, *getattr(refs, "tags", [])]
        # What each revision points at now: a walk resumed later sees a moved branch.
        self.commits = {r.name: r.target_commit for r in listed}
        return self._listed([r.name for r in listed], "branches or tags")

    def _tree(self, ref: str) -> list:
        if ref not in self._trees:
            try:
                self._trees[ref] = with_backoff(
                    lambda: list(
                        self.api.list_repo_tree(self.repo_id, revision=ref, recursive=True)
                    ),
                    f"answering for the files of {ref}",
                )
            except CheckpointError:
                raise
            except Exception as exc:
                raise CheckpointError(
                    f"revision {ref} of {self.repo_id} is not available: {exc}"
                ) from exc
        return self._trees[ref]

    def tree_files(self, ref: str) -> dict[str, tuple[int, str]]:
        """Every file of a revision with its size and digest, from the Hub's tree (no download).

        The digest is ``sha256:<hex>`` for LFS files (the LFS object id) and
        ``git-sha1:<hex>`` for others (the git blob id).

        Raises:
            CheckpointError: when the revision cannot be listed.
        """
        out = {}
        for e in self._tree(ref):
            if not hasattr(e, "size"):
                continue  # a folder
            lfs = getattr(e, "lfs", None)
            if lfs is not None and getattr(lfs, "sha256", None):
                out[e.path] = (int(e.size), f"sha256:{lfs.sha256}")
            else:
                out[e.path] = (int(e.size), f"git-sha1:{e.blob_id}")
        return out

    def size_of(self, ref: str) -> int:
        """Bytes a revision's needed files take."""
        tree = {e.path: e for e in self._tree(ref) if hasattr(e, "size")}
        return sum(tree[f].size for f in ["config.json", *weight_files(tree)] if f in tree)

    def fetch(self, step: int, ref: str) -> Fetched:
        """Download config and weights of one revision and verify them.

        Raises:
            CheckpointError: missing revision, no weights, download or integrity failure.
        """
        with self.cache.lock:
            fetched = self._download(step, ref)
            self.cache.acquire(fetched.commit, fetched.downloaded)
            return fetched

    def _download(self, step: int, ref: str) -> Fetched:
        from huggingface_hub import try_to_load_from_cache

        tree = {e.path: e for e in self._tree(ref) if hasattr(e, "size")}
        files = weight_files(tree)
        if not files:
            raise CheckpointError(f"revision {ref} of {self.repo_id} has no model weights")
        if "config.json" not in tree:
            raise CheckpointError(f"revision {ref} of {self.repo_id} has no config.json")
        # Weights decide whose a revision is: config.json (a few kB) may have been fetched
        # alone to check the inputs against it.
        was_cached = any(
            isinstance(
                try_to_load_from_cache(self.repo_id, f, cache_dir=self.cache_dir, revision=ref), str
            )
            for f in files
        )
        self.cache.note_download_start(ref, was_cached)
        files = ["config.json", *files]
        paths = {}
        try:
            for f in files:
                paths[f] = Path(
                    hub_download(
                        self.repo_id, f, ref, cache_dir=self.cache_dir, endpoint=self.endpoint
                    )
                )
        except CheckpointError:
            raise
        except Exception as exc:
            raise CheckpointError(f"download of {ref} failed: {type(exc).__name__}: {exc}") from exc
        folder = paths["config.json"].parent
        commit = folder.name
        ours = self.cache.note_downloaded(ref, commit)
        hashes, how = verify_against_tree(files, tree, paths, ref, self.cache.drop_file)
        return Fetched(
            step=step,
            ref=ref,
            path=folder,
            weights_sha256=combined_digest(hashes),
            verified=how,
            downloaded=ours,
            commit=commit,
            nbytes=sum(p.stat().st_size for p in paths.values()),
            files=files,
        )

    def release(self, fetched: Fetched, keep: bool = False) -> None:
        """Delete a revision this walk downloaded from the cache, unless ``keep``."""
        if fetched.commit is not None:
            self.cache.release(fetched.commit, keep)


class CachedHubSource(_HubRepo):
    """A Hub repo's ``step<N>`` revisions already in the local cache (HF_HUB_OFFLINE).

    Nothing is downloaded, so nothing is deleted; files are not verified (the tree with
    their hashes is on the Hub).
    """

    def list_steps(self) -> dict[int, str]:
        """The ``step<N>`` revisions in the cache.

        Raises:
            CheckpointError: when the cache holds none.
        """
        names = self.cache.cached_refs()
        if not names:
            raise CheckpointError(
                f"HF_HUB_OFFLINE is set and the cache holds no revisions of {self.repo_id}"
            )
        return self._listed(names, "cached revisions")

    def size_of(self, ref: str) -> int:
        """Cached revisions take no extra disk."""
        return 0

    def fetch(self, step: int, ref: str) -> Fetched:
        """The cached snapshot of ``ref``.

        Raises:
            CheckpointError: the revision is not in the cache.
        """
        commit = self.cache.cached_commit(ref)
        if commit is None:
            raise CheckpointError(f"revision {ref} of {self.repo_id} is not in the offline cache")
        folder = self.cache.repo_dir() / "snapshots" / commit
        if not folder.is_dir():
            raise CheckpointError(f"cached revision {ref} has no snapshot folder")
        return folder_checkpoint(step, ref, folder, verified="unverified", commit=commit)

    def release(self, fetched: Fetched, keep: bool = False) -> None:
        """Nothing was downloaded: nothing to delete."""


def hub_source(repo_id: str, name: str | None = None, **kwargs) -> HubSource | CachedHubSource:
    """The online source, or the cached one when the Hub client is offline."""
    cls = CachedHubSource if hub_offline() else HubSource
    return cls(repo_id, name=name, **kwargs)


def _pythia_names() -> set[str]:
    names = set(pythia_facts()["models"])
    return names | {f"{n}-deduped" for n in names}
