"""The wheel as users install it: a fresh virtual environment, run from outside the checkout.

An editable install finds every package folder in the source tree; a wheel holds only what
pyproject.toml lists. This test builds the wheel, installs it (with the dependencies this
machine already has, taken from the test environment's site-packages), and runs the CLI
from a temporary folder.
"""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

# Seconds to minutes each (training, servers, subprocesses): outside make test-fast.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


def tracked_copy(dest: Path) -> Path:
    """The files git tracks, copied to DEST: what a fresh clone builds from.

    Building in the checkout would reuse its build/ folder, whose stale copies can hide a
    file that pyproject.toml no longer ships. Outside a git checkout, the checkout itself.
    """
    if not (ROOT / ".git").exists():
        return ROOT
    names = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z"], capture_output=True, check=True
    ).stdout.decode()
    for name in filter(None, names.split("\0")):
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    return dest


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel")
    source = tracked_copy(tmp / "source")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp / "dist"),
            str(source),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    wheel = next((tmp / "dist").glob("massdyn-*.whl"))
    env_dir = tmp / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--system-site-packages", str(env_dir)], check=True
    )
    python = env_dir / "bin" / "python"
    # The dependencies come from this interpreter's site-packages (no index is reached);
    # massdyn itself only from the wheel, never from the checkout.
    site = sysconfig.get_paths()["purelib"]
    (
        Path(
            subprocess.run(
                [str(python), "-c", "import sysconfig;print(sysconfig.get_paths()['purelib'])"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        )
        / "deps.pth"
    ).write_text(site + "\n")
    subprocess.run(
        [str(python), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)],
        check=True,
        capture_output=True,
        text=True,
    )
    return env_dir, tmp


def run(venv, *args, cwd):
    env_dir, _ = venv
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    return subprocess.run(
        [str(env_dir / "bin" / "massdyn"), *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


def test_the_installed_massdyn_is_the_wheel(venv):
    env_dir, tmp = venv
    out = subprocess.run(
        [
            str(env_dir / "bin" / "python"),
            "-c",
            "import massdyn, massdyn.tracker; print(massdyn.__file__, massdyn.tracker.__file__)",
        ],
        cwd=tmp,
        capture_output=True,
        text=True,
        check=True,
    )
    assert str(ROOT) not in out.stdout and "site-packages" in out.stdout
    # One namespace: the libraries do not install as top-level tracker/fitting/predictors.
    for name in ("tracker", "fitting", "predictors"):
        gone = subprocess.run(
            [str(env_dir / "bin" / "python"), "-c", f"import {name}"], cwd=tmp, capture_output=True
        )
        assert gone.returncode != 0, name


def test_the_wheel_ships_every_data_file(venv):
    """The package-data patterns are a list kept by hand; the data folder is the oracle."""
    import zipfile

    _, tmp = venv
    wheel = next((tmp / "dist").glob("massdyn-*.whl"))
    shipped = set(zipfile.ZipFile(wheel).namelist())
    # What the wheel was built from: git's tracked files, or the checkout outside git.
    data = (tmp / "source" if (tmp / "source").exists() else ROOT) / "data"
    files = [
        f"massdyn/data/{f.relative_to(data).as_posix()}"
        for f in data.rglob("*")
        if f.is_file() and "__pycache__" not in f.parts
    ]
    assert len(files) > 50
    assert sorted(set(files) - shipped) == []


def test_help_fit_and_figures_from_another_folder(venv):
    _, tmp = venv
    work = tmp / "elsewhere"
    work.mkdir()
    out = run(venv, "--help", cwd=work)
    assert out.returncode == 0 and "train-predictor" in out.stdout, out.stderr
    for command in (
        "walk",
        "merge",
        "status",
        "audit",
        "fit",
        "forecast",
        "train-predictor",
        "predict",
        "figures",
        "minisuite",
        "demo",
    ):
        sub = run(venv, command, "--help", cwd=work)
        assert sub.returncode == 0, (command, sub.stderr)
    from tests.fitting.synth import measurements_table

    measurements_table(models=("m",), layers=1).to_csv(work / "m.csv", index=False)
    fit = run(venv, "fit", "m.csv", "--out", "p.csv", "--jobs", 1, cwd=work)
    assert fit.returncode == 0, fit.stderr
    assert (work / "p.csv").exists() and "fitted 1 series" in fit.stdout
    figs = run(venv, "figures", "--out", "figs", cwd=work)
    assert figs.returncode == 0, figs.stderr
    assert len(list((work / "figs").glob("*.png"))) >= 10


def test_predict_from_the_wheel_with_its_shipped_suite(venv):
    """`massdyn predict CONFIG` with no predictor file finds the grown suite inside the wheel."""
    _, tmp = venv
    work = tmp / "predicting"
    work.mkdir()
    config = {
        "model_type": "gpt_neox",
        "hidden_size": 192,
        "num_hidden_layers": 6,
        "num_attention_heads": 6,
        "intermediate_size": 768,
        "rotary_pct": 0.25,
        "rotary_emb_base": 10000,
        "use_parallel_residual": True,
    }
    (work / "d192.json").write_text(json.dumps(config))
    out = run(venv, "predict", "d192.json", "--out", "p.csv", cwd=work)
    assert out.returncode == 0, out.stderr
    assert "no --predictor: trained one on the grown mini-suite" in out.stdout
    rows = (work / "p.csv").read_text().splitlines()
    assert rows[0] == "model,layer,step,tokens,ratio,ratio_lo,ratio_hi,note"
    assert len(rows) > 6 * 30


def test_help_and_argument_errors_answer_without_the_heavy_imports(venv):
    """--help must not import torch, transformers, scikit-learn or pandas (seconds each)."""
    env_dir, tmp = venv
    probe = (
        "import sys\n"
        "from massdyn.cli import main\n"
        "for argv in (['--help'], ['walk', '--help'], ['fit', '--bogus']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'sklearn', 'pandas', 'scipy')\n"
        "               if m in sys.modules)\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run(
        [str(env_dir / "bin" / "python"), "-c", probe], cwd=tmp, capture_output=True, text=True
    )
    assert "HEAVY []" in out.stdout, out.stdout + out.stderr
