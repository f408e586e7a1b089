"""The command line derived from the config dataclasses: spellings, defaults, config files."""

import dataclasses

import pytest
import yaml

from massdyn.cli import build_parser, main
from massdyn.commands import COMMANDS
from massdyn.fitting import FitConfig
from massdyn.options import build, options, resolved
from massdyn.tracker.config import WalkConfig
from massdyn.tracker.inputs import InputSpec


def parse(*argv):
    """The command object the CLI would run for ``argv``."""
    args = build_parser([argv[0]]).parse_args([str(a) for a in argv])
    given = {k: v for k, v in vars(args).items() if not k.startswith("_") and k != "command"}
    return build(args._cls, type(args)(**given))


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_option_has_help_and_one_spelling(name):
    cls = COMMANDS[name].load()
    opts = list(options(cls))
    assert opts, name
    for opt in opts:
        assert len(opt.meta.get("help", "")) > 8, (name, opt.flag)
    flags = [o.flag for o in opts]
    assert len(flags) == len(set(flags))
    build_parser([name])  # argparse accepts every declaration


def test_cli_defaults_are_the_library_defaults():
    walk = parse("walk", "org/repo")
    assert walk.walk == WalkConfig()
    assert walk.walk.inputs == InputSpec()
    assert walk.source.source == ["org/repo"] and walk.source.name is None
    assert (walk.shard, walk.jobs, walk.slurm.slurm) == (None, 1, False)
    assert parse("fit", "m.csv").fit == FitConfig()


# The spellings the README documents, and the library field each one sets (an independent
# list: renaming a field must not silently rename the option).
SPELLINGS = [
    (["--seqs", "3"], lambda c: c.walk.inputs.n_seqs == 3),
    (["--seq-len", "64"], lambda c: c.walk.inputs.seq_len == 64),
    (["--token-ids", "ids.npy"], lambda c: c.walk.inputs.token_ids == "ids.npy"),
    (["--text", "t.txt", "--bos"], lambda c: c.walk.inputs.prepend_bos is True),
    (["--steps", "every:5"], lambda c: (c.walk.steps.mode, c.walk.steps.every) == ("every", 5)),
    (["--min-step", "7"], lambda c: c.walk.steps.min_step == 7),
    (["--out", "o"], lambda c: c.walk.out == "o"),
    (["--device", "cpu"], lambda c: c.walk.device == "cpu"),
    (["--dtype", "float16"], lambda c: c.walk.dtype == "float16"),
    (["--no-prefetch"], lambda c: c.walk.prefetch is False),
    (["--disk-budget", "2.5"], lambda c: c.walk.disk_budget_gb == 2.5),
    (["--keep-cache"], lambda c: c.walk.keep_cache is True),
    (["--name", "series"], lambda c: c.source.name == "series"),
    (["--batch-size", "4"], lambda c: c.walk.batch_size == 4),
]


@pytest.mark.parametrize("argv,check", SPELLINGS, ids=[s[0][0] for s in SPELLINGS])
def test_documented_spellings_set_the_library_fields(argv, check):
    assert check(parse("walk", "org/repo", *argv))


def test_fit_spellings():
    cmd = parse("fit", "m.csv", "--starts", "8", "--fit-model", "logistic", "--compare")
    assert cmd.fit.n_starts == 8 and cmd.curve_model == "logistic" and cmd.compare == ""


def test_config_file_under_command_line(tmp_path, capsys):
    cfg = tmp_path / "walk.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "source": "org/repo",
                "inputs": {"n_seqs": 4, "seq_len": 32},
                "steps": {"spec": "0,10"},
            }
        )
    )
    assert main(["walk", "--config", str(cfg), "--seq-len", "48", "--print-config"]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert shown["source"] == ["org/repo"]  # one source, as a suite of one would be listed
    assert shown["inputs"]["n_seqs"] == 4  # from the file
    assert shown["inputs"]["seq_len"] == 48  # the command line wins
    assert shown["steps"]["spec"] == "0,10"
    assert shown["prefetch"] is True  # the default
    # What --print-config shows is itself a config file that resolves to the same settings.
    again = tmp_path / "again.yaml"
    again.write_text(yaml.safe_dump(shown))
    assert main(["walk", "--config", str(again), "--print-config"]) == 0
    assert yaml.safe_load(capsys.readouterr().out) == shown


@pytest.mark.parametrize(
    "content,message",
    [
        ({"source": "org/repo", "seqs": 3}, "unknown setting 'seqs'"),
        ({"source": "org/repo", "inputs": {"n_seq": 3}}, "unknown setting 'inputs.n_seq'"),
        ({"source": "org/repo", "inputs": 3}, "inputs must be a mapping"),
        ([1, 2], "expected a mapping"),
    ],
)
def test_bad_config_file_is_one_line_exit_2(tmp_path, capsys, content, message):
    cfg = tmp_path / "walk.yaml"
    cfg.write_text(yaml.safe_dump(content))
    assert main(["walk", "--config", str(cfg), "--print-config"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_missing_config_file_and_missing_source(tmp_path, capsys):
    assert main(["walk", "--config", str(tmp_path / "nope.yaml")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["walk", "--seqs", "3"]) == 2
    assert "SOURCE is required" in capsys.readouterr().err


def test_resolved_config_round_trips_through_the_dataclasses():
    cmd = parse("walk", "org/repo", "--seqs", "3", "--steps", "paper")
    data = resolved(cmd)
    assert data["inputs"]["n_seqs"] == 3 and "walk" not in data  # flattened
    rebuilt = WalkConfig(
        **{k: v for k, v in data.items() if k in {f.name for f in dataclasses.fields(WalkConfig)}}
        | {
            "steps": type(cmd.walk.steps)(**data["steps"]),
            "inputs": InputSpec(**data["inputs"]),
        }
    )
    assert dataclasses.replace(rebuilt, progress=cmd.walk.progress) == cmd.walk
