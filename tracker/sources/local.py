"""A folder of checkpoint folders (``step64/``, ``checkpoint-500/``, ``global_step10/``)."""

from __future__ import annotations

from pathlib import Path

from massdyn.tracker.sources.base import (
    TOKENIZER_FILES,
    CheckpointError,
    Fetched,
    read_config,
    step_of,
)
from massdyn.tracker.sources.integrity import file_sha256, folder_checkpoint


class LocalSource:
    """A folder holding one folder per checkpoint (``step64/``, ``checkpoint-500/``, ...).

    Args:
        root: The series folder.
        name: Series name for the results (default: the folder name).
    """

    def __init__(self, root: str | Path, name: str | None = None):
        self.root = Path(root)
        if not self.root.is_dir():
            raise CheckpointError(f"no such folder: {self.root}")
        self.name = name or self.root.resolve().name
        self.location = str(self.root.resolve())
        self.unmatched: list[str] = []

    def list_steps(self) -> dict[int, str]:
        """Map step -> checkpoint folder name, for sub-folders named like checkpoints.

        Sub-folders named like no checkpoint are kept in :attr:`unmatched` (the walk lists
        them). Two folders for one step (``step16/`` and ``checkpoint-16/``, or
        ``step016/``) are refused: which one holds that step's weights cannot be told.

        Raises:
            CheckpointError: no checkpoint folder, or two for one step (naming both).
        """
        found: dict[int, str] = {}
        self.unmatched = []
        for p in sorted(self.root.iterdir()):
            if not p.is_dir() or p.name.startswith("."):
                continue
            step = step_of(p.name)
            if step is None:
                self.unmatched.append(p.name)
            elif step in found:
                raise CheckpointError(
                    f"{self.root} holds two folders for step {step}: {found[step]}/ and "
                    f"{p.name}/; keep one (move the other out of the series)"
                )
            else:
                found[step] = p.name
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
