"""A folder of checkpoint folders (``step64/``, ``checkpoint-500/``, ``global_step10/``)."""

from __future__ import annotations

from pathlib import Path

from massdyn.tracker.sources.base import (
    TOKENIZER_FILES,
    CheckpointError,
    Fetched,
    read_config,
)
from massdyn.tracker.sources.integrity import file_sha256, folder_checkpoint


class LocalSource:
    """A folder holding one folder per checkpoint (``step64/``, ``checkpoint-500/``, ...).

    Args:
        root: The series folder.
        name: Series name for the results (default: the folder name).
        revision_pattern: A regex with a ``step`` group, tried before the shipped grammar.
    """

    def __init__(
        self, root: str | Path, name: str | None = None, revision_pattern: str | None = None
    ):
        self.root = Path(root)
        if not self.root.is_dir():
            raise CheckpointError(f"no such folder: {self.root}")
        self.name = name or self.root.resolve().name
        self.location = str(self.root.resolve())
        self.unmatched: list[str] = []
        self.revisions: dict = {}
        self.revision_pattern = revision_pattern

    def list_steps(self) -> dict[int, str]:
        """Map step -> checkpoint folder name, by the revision grammar (local patterns too).

        Sub-folders named like no checkpoint are kept in :attr:`unmatched` (the walk lists
        them); what each name says (stage, tokens) is in :attr:`revisions`. Two folders for
        one step (``step16/`` and ``checkpoint-16/``, or ``step016/``) are refused: which
        one holds that step's weights cannot be told.

        Raises:
            CheckpointError: no checkpoint folder, or two for one step (naming both).
        """
        from massdyn.tracker.sources.revisions import RevisionGrammar

        names = [p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")]
        grammar = RevisionGrammar(self.revision_pattern, local=True)
        listing = grammar.listing(names, str(self.root))
        self.unmatched, self.revisions = listing.unmatched + listing.set_aside, listing.revisions
        found = listing.steps
        if not found:
            if (self.root / "config.json").exists():
                raise CheckpointError(
                    f"{self.root} is a single model folder, not a series: point SOURCE at the "
                    "folder that holds its checkpoint folders (step<N>/, checkpoint-<N>/, ...)"
                )
            shown = ", ".join(sorted(names)[:5]) or "no folders"
            raise CheckpointError(
                f"{self.root} holds no checkpoint folders (step<N>/, checkpoint-<N>/, "
                f"global_step<N>/, iter_<N>/, ...; it has: {shown}); name the pattern with "
                r"--revision-pattern '^ckpt-(?P<step>\d+)$'"
            )
        return found

    def model_config(self, ref: str) -> dict:
        """The ``config.json`` of one checkpoint."""
        return read_config(self.root / ref / "config.json")

    def recover(self, folder: Path, pending: set[str], keep: bool = False) -> None:
        """Nothing is downloaded, so nothing is left over."""

    def tree_files(self, ref: str) -> dict[str, tuple[int, str]]:
        """Every file of a checkpoint folder with its size and ``sha256:<hex>`` (read here).

        Raises:
            CheckpointError: when the folder is missing.
        """
        path = self.root / ref
        if not path.is_dir():
            raise CheckpointError(f"checkpoint folder missing: {path}")
        return {
            p.name: (p.stat().st_size, f"sha256:{file_sha256(p)}")
            for p in sorted(path.iterdir())
            if p.is_file()
        }

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
