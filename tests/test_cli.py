"""The CLI table: every subcommand answers --help and says what it reads and writes."""

from __future__ import annotations

import pytest

from lmforge.cli import COMMANDS, build_parser, main

STAGES = ["ingest", "data", "pretrain", "finetune", "distill", "eval", "register", "serve", "rollout", "pipeline"]


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_answers_help(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([name, "--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    doc = COMMANDS[name][2]
    assert any(word in doc for word in ("Reads", "Writes", "Runs")), "say what it reads and writes"
    assert " ".join(doc.split()) in text
    assert "--profile" in text and "--set" in text


def test_top_level_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["--help"])  # argparse %-formats each subcommand's help: a bare % broke it
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert all(name in text for name in COMMANDS)
    assert "rollout.steps % of traffic" in " ".join(text.split())


def test_every_stage_has_a_subcommand() -> None:
    assert set(STAGES) <= set(COMMANDS)


def test_user_error_is_one_line_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["pretrain", "--profile", "no-such-profile"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1 and "no profile 'no-such-profile'" in err[0]


def test_a_bug_shows_its_traceback_and_a_verdict_one_line(monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    from lmforge import cli
    from lmforge.data.validate import DataGateError

    def fail_with(err: Exception):
        def command(cfg, args):
            raise err
        return command

    monkeypatch.setitem(cli.COMMANDS, "status", (fail_with(KeyError("run_id")), *cli.COMMANDS["status"][1:]))
    with pytest.raises(KeyError, match="run_id"):  # not swallowed into one line: Python prints the traceback
        main(["status"])
    monkeypatch.setitem(cli.COMMANDS, "status", (fail_with(DataGateError("3 expectations failed")),
                                                 *cli.COMMANDS["status"][1:]))
    assert main(["status"]) == 1
    assert capsys.readouterr().err.strip() == "lmforge status: DataGateError: 3 expectations failed"
