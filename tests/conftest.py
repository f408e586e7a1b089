import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from massdyn.testing.localhub import LocalHub
from massdyn.testing.synthetic import SAMPLE_TEXT, tiny_config, tiny_tokenizer, write_series

STEPS = (0, 10, 100, 1000)
# Columns every measurements table of the walker and the live tracker carries.
MEASURED = [
    "step",
    "layer",
    "seq",
    "top1",
    "top2",
    "top3",
    "median",
    "mean",
    "n_massive",
    "top1_token",
    "top1_dim",
]


@pytest.fixture(scope="session")
def tokenizer():
    return tiny_tokenizer()


@pytest.fixture(scope="session")
def text_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("text") / "corpus.txt"
    path.write_text(SAMPLE_TEXT * 40)
    return path


@pytest.fixture(scope="session")
def series(tmp_path_factory, tokenizer):
    """A local series of four tiny GPT-NeoX checkpoints with a tokenizer."""
    return write_series(tmp_path_factory.mktemp("series") / "tiny-neox", STEPS, tokenizer=tokenizer)


@pytest.fixture(scope="session")
def suite_sources(tmp_path_factory, tokenizer):
    """Two local series, one of them Llama, with three and four revisions: seven units."""
    root = tmp_path_factory.mktemp("suite")
    neox = write_series(root / "neox", (0, 10, 100), tokenizer=tokenizer)
    llama = write_series(
        root / "llama", (0, 5, 50, 500), config=tiny_config(family="llama"), tokenizer=tokenizer
    )
    return [str(neox), str(llama)]


CRFM = [
    f"stanford-crfm/{n}-gpt2-small-{x}"
    for n, x in [
        ("alias", "x21"),
        ("battlestar", "x49"),
        ("caprica", "x81"),
        ("darkmatter", "x343"),
        ("expanse", "x777"),
    ]
]


@pytest.fixture(scope="session")
def hub(tmp_path_factory, series, tokenizer):
    """olah on a free loopback port serving:

    - tiny/neox: branches step0..step1000 (+ main) of the local series, plain git;
    - tiny/neox-lfs: the same with weights as LFS objects; step100 also served by
      step101 (identical weights);
    - tiny/neox-corrupt: LFS, and step10's object does not match its sha256;
    - tiny/neox-alias: plain git, step2000 is the very commit of step1000;
    - tiny/neox-moving: as tiny/neox, for the one test that moves a branch;
    - datasets tiny/text: a jsonl file of documents;
    - allenai/OLMo-2-tiny and HuggingFaceTB/SmolLM3-3B-checkpoints: the same checkpoints
      under OLMo 2's and SmolLM3's revision names (plus a stray branch each);
    - tiny/odd: branches ck-0 and ck-10, which no shipped pattern knows;
    - the five repos of the shipped suite crfm-gpt2-small (CRFM), each with branches
      checkpoint-0 and checkpoint-10.
    """
    root = tmp_path_factory.mktemp("hub")
    server = LocalHub(root)
    branches = {f"step{s}": _with_tokenizer(series / f"step{s}", series) for s in STEPS}
    server.add_model_repo("tiny/neox", branches)
    server.add_model_repo("tiny/neox-lfs", {**branches, "step101": branches["step100"]}, lfs=True)
    server.add_model_repo("tiny/neox-corrupt", branches, lfs=True, corrupt={"step10"})
    server.add_model_repo("tiny/neox-alias", branches)
    server.add_model_repo("tiny/neox-moving", branches)  # a test moves one of its branches
    server.alias("tiny/neox-alias", "step2000", "step1000")
    olmo2 = {
        "stage1-step0-tokens0B": branches["step0"],
        "step10-tokens1B": branches["step10"],
        "stage1-step100-tokens2B": branches["step100"],
        "stage2-step50-tokens1B": branches["step1000"],  # stage 2 restarts its steps
        "stage2-ingredient1-step50-tokens1B": branches["step1000"],
        "fp32": branches["step1000"],
    }
    server.add_model_repo("allenai/OLMo-2-tiny", olmo2)
    smol3 = {
        "stage1-step-0": branches["step0"],
        "stage1-step-10": branches["step10"],
        "stage2-step-100": branches["step100"],
        "stage3-step-1000": branches["step1000"],
        "readme-fix": branches["step1000"],
    }
    server.add_model_repo("HuggingFaceTB/SmolLM3-3B-checkpoints", smol3)
    server.add_model_repo("tiny/odd", {"ck-0": branches["step0"], "ck-10": branches["step10"]})
    crfm = {"checkpoint-0": branches["step0"], "checkpoint-10": branches["step10"]}
    for repo in CRFM:  # the shipped suite crfm-gpt2-small, by its real names
        server.add_model_repo(repo, crfm)
    lines = [p for p in SAMPLE_TEXT.split("\n") * 30 if p]
    docs = "\n".join(json.dumps({"text": p}) for p in lines)
    server.add_dataset_repo("tiny/text", {"data/part-0.jsonl": docs})
    server.start("tiny/neox")
    yield server
    server.stop()


def _with_tokenizer(folder: Path, series: Path) -> Path:
    # Hub repos carry the tokenizer in every revision, as Pythia's do.
    merged = folder.parent.parent / "with-tok" / folder.name
    if not merged.exists():
        merged.mkdir(parents=True)
        for src in [*folder.iterdir(), *(p for p in series.iterdir() if p.is_file())]:
            (merged / src.name).write_bytes(src.read_bytes())
    return merged


def run_cli(*args, env=None, timeout=300, check=False):
    """Run the massdyn CLI in a subprocess (its own Hub client state and environment)."""
    full_env = {**os.environ, **(env or {})}
    cmd = [sys.executable, "-m", "massdyn.cli", *map(str, args)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=full_env, timeout=timeout)
    if check and out.returncode != 0:
        raise AssertionError(f"{cmd} exited {out.returncode}\n{out.stdout}\n{out.stderr}")
    return out


@pytest.fixture
def small_config():
    return tiny_config()
