r"""Fixed evaluation inputs: N sequences x L tokens, identical at every checkpoint.

Sources, as in arXiv 2508.03616: documents joined with ``"\\n\\n"``, tokenised without special
tokens, cut into consecutive chunks, N chunks drawn at random with a seed. Or a token-id
array used as given.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

PAPER_DATASET = "togethercomputer/RedPajama-Data-1T-Sample"
TEXT_SUFFIXES = (".jsonl", ".json", ".txt", ".parquet")
# Draw the N sequences from a pool this many times larger, so the draw is a real sample.
POOL_FACTOR = 20


class InputError(ValueError):
    """The evaluation inputs cannot be built; the message says why."""


@dataclass(frozen=True)
class InputSpec:
    """Where the evaluation inputs come from.

    Exactly one of ``text``, ``dataset`` or ``token_ids`` is used; with none, the paper's
    dataset (``PAPER_DATASET``) is read from the Hub.

    Attributes:
        n_seqs: Number of sequences N.
        seq_len: Tokens per sequence L (including a prepended BOS).
        text: Path of a local text file.
        dataset: Hub dataset repo id; its ``.jsonl/.json/.txt/.parquet`` files are read.
        dataset_revision: Revision of the dataset repo.
        token_ids: Path of an ``.npy`` integer array of shape (N, L), used as given.
        prepend_bos: Start every sequence with the tokenizer's BOS token (text sources).
        seed: Seed of the random draw of chunks.
    """

    n_seqs: int = field(
        default=10, metadata={"help": "number of input sequences", "flag": "--seqs"}
    )
    seq_len: int = field(default=2048, metadata={"help": "tokens per sequence"})
    text: str | None = field(
        default=None,
        metadata={"help": "local text file to draw the sequences from", "exclusive": "inputs"},
    )
    dataset: str | None = field(
        default=None,
        metadata={
            "help": "Hub dataset id (default: the paper's RedPajama sample)",
            "exclusive": "inputs",
        },
    )
    dataset_revision: str | None = field(default=None, metadata={"help": "revision of --dataset"})
    token_ids: str | None = field(
        default=None,
        metadata={"help": ".npy integer array (N x L) used as given", "exclusive": "inputs"},
    )
    prepend_bos: bool = field(
        default=False, metadata={"help": "prepend the BOS token to every sequence", "flag": "--bos"}
    )
    seed: int = field(default=1, metadata={"help": "seed of the sequence draw"})

    def __post_init__(self):
        given = [x for x in (self.text, self.dataset, self.token_ids) if x]
        if len(given) > 1:
            raise InputError("give at most one of --text, --dataset and --token-ids")
        if self.token_ids and self.prepend_bos:
            raise InputError(
                "--bos applies to text inputs; --token-ids are used as given: put the BOS id "
                "in the array, or leave out --bos"
            )
        if self.n_seqs < 1 or self.seq_len < 2:
            raise InputError(
                f"need n_seqs >= 1 and seq_len >= 2, got {self.n_seqs} x {self.seq_len}"
            )
        if self.seed < 0:
            raise InputError(f"--seed must be a non-negative integer, got {self.seed}")

    def absolute(self) -> InputSpec:
        """The same inputs with ``text`` and ``token_ids`` as absolute paths.

        What a results folder records (its identity, its ``config.yaml``), so that the walk
        resumes from any folder.
        """
        return replace(self, text=absolute_path(self.text), token_ids=absolute_path(self.token_ids))


def absolute_path(path: str | None) -> str | None:
    """``path`` resolved (``~`` expanded, links followed); None stays None."""
    return None if path is None else str(Path(path).expanduser().resolve())


@dataclass(frozen=True)
class TokenInputs:
    """Token ids with their provenance.

    Attributes:
        ids: ``(n_seqs, seq_len)`` int64 array.
        sha256: Content hash of ``ids`` (shape and values).
        source: Human-readable description of where they came from.
    """

    ids: np.ndarray
    sha256: str
    source: str

    @classmethod
    def from_array(cls, ids: np.ndarray, source: str) -> TokenInputs:
        """Wrap an array, validating it and hashing its content."""
        ids = np.asarray(ids)
        if ids.ndim != 2 or ids.shape[0] < 1 or ids.shape[1] < 1:
            raise InputError(f"token ids must be a 2-D array (N, L), got shape {ids.shape}")
        if not np.issubdtype(ids.dtype, np.integer):
            raise InputError(f"token ids must be integers, got dtype {ids.dtype}")
        if (ids < 0).any():
            raise InputError("token ids must be >= 0")
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        return cls(ids=ids, sha256=ids_sha256(ids), source=source)

    def save(self, folder: Path) -> None:
        """Store ``inputs.npy`` and ``inputs.json`` in ``folder``."""
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / "inputs.npy", self.ids)
        meta = {"sha256": self.sha256, "source": self.source, "shape": list(self.ids.shape)}
        (folder / "inputs.json").write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, folder: Path) -> TokenInputs:
        """Load stored inputs, checking their hash.

        Raises:
            InputError: when the stored ids do not match their recorded hash.
        """
        meta = json.loads((folder / "inputs.json").read_text())
        ids = np.load(folder / "inputs.npy", allow_pickle=False)
        got = cls.from_array(ids, meta["source"])
        if got.sha256 != meta["sha256"]:
            raise InputError(f"{folder}/inputs.npy does not match its recorded sha256")
        return got


def ids_sha256(ids: np.ndarray) -> str:
    """Hash of an id array's shape and little-endian int64 values."""
    h = hashlib.sha256(str(tuple(ids.shape)).encode())
    h.update(np.ascontiguousarray(ids, dtype="<i8").tobytes())
    return h.hexdigest()


def spec_key(spec: InputSpec, tokenizer_id: str) -> str:
    """Identity of an input recipe, used to refuse mixing results of different inputs."""
    payload = json.dumps({**asdict(spec), "tokenizer": tokenizer_id}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def chunk_and_draw(
    tokens: list[int] | np.ndarray, spec: InputSpec, bos_id: int | None
) -> np.ndarray:
    """Cut a token stream into consecutive chunks and draw ``n_seqs`` of them.

    Raises:
        InputError: when the stream is too short or BOS is asked for but unknown.
    """
    body = spec.seq_len - 1 if spec.prepend_bos else spec.seq_len
    if spec.prepend_bos and bos_id is None:
        raise InputError("--bos asked for, but the tokenizer has no BOS token")
    tokens = np.asarray(tokens, dtype=np.int64)
    n_chunks = tokens.size // body
    if n_chunks < spec.n_seqs:
        raise InputError(
            f"the text yields {tokens.size} tokens = {n_chunks} chunks of {body}; "
            f"{spec.n_seqs} sequences are needed"
        )
    rng = np.random.default_rng(spec.seed)
    pick = np.sort(rng.choice(n_chunks, size=spec.n_seqs, replace=False))
    chunks = tokens[: n_chunks * body].reshape(n_chunks, body)[pick]
    if spec.prepend_bos:
        chunks = np.hstack([np.full((spec.n_seqs, 1), bos_id, dtype=np.int64), chunks])
    return chunks


def _encode(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def _read_text(path: Path, option: str) -> str:
    """A UTF-8 text file's content; a binary file is refused naming it."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{option} {path} is not UTF-8 text (byte {exc.start} is not): give a plain text file"
        ) from None


def _read_records(path: Path) -> list[str]:
    if path.suffix == ".txt":
        return [_read_text(path, "--text")]
    if path.suffix == ".parquet":
        import pandas as pd

        return [str(t) for t in pd.read_parquet(path, columns=["text"])["text"]]
    texts = []
    with path.open(encoding="utf-8") as f:
        if path.suffix == ".json":
            data = json.load(f)
            rows = data if isinstance(data, list) else data.get("data", [])
            return [str(r["text"]) for r in rows if isinstance(r, dict) and "text" in r]
        for line in f:
            line = line.strip()
            if line:
                rec = json.loads(line)
                if "text" in rec:
                    texts.append(str(rec["text"]))
    return texts


def dataset_texts(repo_id: str, revision: str | None, want_tokens: int, tokenizer) -> list[int]:
    """Tokens from a Hub dataset's text files, read in path order until enough are found."""
    from huggingface_hub import HfApi, hf_hub_download

    api = HfApi()
    try:
        tree = list(
            api.list_repo_tree(
                repo_id, repo_type="dataset", revision=revision or "main", recursive=True
            )
        )
    except Exception as exc:
        from massdyn.tracker.sources import first_line

        raise InputError(
            f"cannot read dataset {repo_id}@{revision or 'main'} ({type(exc).__name__}: "
            f"{first_line(exc)}); check the id, or use --text FILE"
        ) from None
    files = sorted(e.path for e in tree if e.path.endswith(TEXT_SUFFIXES) and hasattr(e, "size"))
    if not files:
        raise InputError(f"dataset {repo_id} has no {'/'.join(TEXT_SUFFIXES)} files")
    tokens: list[int] = []
    for name in files:
        path = Path(
            hf_hub_download(repo_id, name, repo_type="dataset", revision=revision or "main")
        )
        docs = _read_records(path)
        if docs:
            if tokens:
                tokens += _encode(tokenizer, "\n\n")
            tokens += _encode(tokenizer, "\n\n".join(docs))
        if len(tokens) >= want_tokens:
            break
    return tokens


def build_inputs(spec: InputSpec, tokenizer=None) -> TokenInputs:
    """Build the evaluation inputs.

    Args:
        spec: The recipe.
        tokenizer: The series' tokenizer (not needed for ``token_ids``).

    Returns:
        The inputs with their content hash.

    Raises:
        InputError: for a missing file, a wrong array, too little text, or no tokenizer.
    """
    if spec.token_ids:
        path = Path(spec.token_ids)
        if not path.exists():
            raise InputError(f"token-id file not found: {path}")
        try:
            arr = np.load(path, allow_pickle=False)
        except ValueError as exc:
            raise InputError(f"{path} is not a plain .npy array: {exc}") from None
        return TokenInputs.from_array(arr, f"token ids {path.name}")
    if tokenizer is None:
        raise InputError("a tokenizer is needed to tokenise text inputs")
    bos = getattr(tokenizer, "bos_token_id", None)
    if spec.text:
        path = Path(spec.text)
        if not path.exists():
            raise InputError(f"text file not found: {path}")
        tokens = _encode(tokenizer, _read_text(path, "--text"))
        source = f"text {path.name}"
    else:
        repo = spec.dataset or PAPER_DATASET
        want = POOL_FACTOR * spec.n_seqs * spec.seq_len
        tokens = dataset_texts(repo, spec.dataset_revision, want, tokenizer)
        source = f"dataset {repo}@{spec.dataset_revision or 'main'}"
    ids = chunk_and_draw(tokens, spec, bos)
    return TokenInputs.from_array(
        ids, f"{source}, {spec.n_seqs}x{spec.seq_len}, seed {spec.seed}, bos={spec.prepend_bos}"
    )
