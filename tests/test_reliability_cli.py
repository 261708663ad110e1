"""The command line: one clear line per error (the traceback only with --debug), help without doubled defaults."""

from __future__ import annotations

import re

import pytest
import torch
from test_cli import TINY

import lt_plugins as lt
from lt_plugins.cli import build_parser, main
from lt_plugins.ticket import Ticket, TicketError

pytestmark = pytest.mark.usefixtures("untrained_feature_net")  # tests/conftest.py


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("lt-plugins: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.fixture
def dcgan_ticket(tmp_path):
    from lt_plugins.models import DCGANGenerator

    gen = lt.wrap(DCGANGenerator(nz=8, ngf=8, nc=1, image_size=32), lt.TicketConfig(density=0.2))
    return Ticket.from_model(gen).save_pretrained(tmp_path / "ticket")


def test_runtime_errors_are_one_line_with_exit_status_1(tmp_path, capsys, dcgan_ticket):
    a_file = tmp_path / "ticket.json"
    a_file.write_text("{}")
    cases = [
        (["eval", str(tmp_path / "missing")], "There is no ticket folder"),
        (["eval", str(a_file)], "is a file; pass the ticket's folder"),
        (["pull", "a/b/c/d"], "neither a folder here nor a valid Hub repo id"),
        (["sample", str(dcgan_ticket), "--n", "0", "--device", "cpu"], "--n 0: ask for at least one sample"),
        (["eval", str(dcgan_ticket), "--n", "0", "--device", "cpu"], "n=0"),
        (["push", str(tmp_path / "missing"), "me/x"], "There is no ticket folder"),
    ]
    for argv, says in cases:
        assert main(argv) == 1, argv
        assert says in _one_error_line(capsys)


def test_debug_shows_the_traceback_instead(tmp_path):
    for argv in (["--debug", "eval", str(tmp_path / "missing")], ["eval", str(tmp_path / "missing"), "--debug"]):
        with pytest.raises(TicketError, match="There is no ticket folder"):
            main(argv)


def test_usage_errors_exit_2(tmp_path, capsys):
    for argv, says in ((["sample", "me/x", "--out", str(tmp_path)], "is a folder; name the image file"),
                       (["sample", "me/x", "--out", "grid"], "has no image file extension"),
                       (["eval"], "the following arguments are required")):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 2 and says in capsys.readouterr().err


@pytest.mark.slow  # ~20 s: a search of the CLI on MNIST, then two refused resumes
def test_resuming_with_another_seed_is_refused_in_one_line(tmp_path, capsys):
    out = str(tmp_path / "run")
    flags = ["--steps", "2", "--checkpoint-every", "1", "--out", out, *TINY]
    assert main(["search", *flags]) == 0
    capsys.readouterr()
    assert main(["search", *flags, "--resume", "--seed", "1"]) == 1
    err = _one_error_line(capsys)
    assert "settings differ" in err and "ticket_config.seed: checkpoint 0, this run 1" in err
    assert main(["search", *flags, "--resume", "--density", "0.5"]) == 1
    assert "ticket_config.density: checkpoint 0.1, this run 0.5" in _one_error_line(capsys)


def _option_blocks(help_text: str) -> list[str]:
    options = help_text.split("options:", 1)[1]
    return [b for b in re.split(r"\n(?=  -)", options) if b.strip()]


def test_help_names_each_default_at_most_once():
    parser = build_parser()
    subparsers = parser._subparsers._group_actions[0].choices
    assert set(subparsers) >= {"search", "eval", "demo", "sample", "push", "pull", "env"}
    for name, sub in subparsers.items():
        for block in _option_blocks(sub.format_help()):
            assert block.lower().count("default") <= 1, (name, block)
    sample_help = subparsers["sample"].format_help()
    assert "(default: 64)" in sample_help and "(default: 0)" in sample_help
    search_help = " ".join(subparsers["search"].format_help().split())
    assert "(default: 0.1)" in search_help and "(default: None)" not in search_help


def test_a_spec_with_a_negative_size_is_one_clear_line(dcgan_ticket, capsys):
    import json

    path = dcgan_ticket / "ticket_config.json"
    config = json.loads(path.read_text())
    config["model"]["config"]["nz"] = -1
    path.write_text(json.dumps(config))
    assert main(["sample", str(dcgan_ticket), "--n", "2", "--device", "cpu"]) == 1
    assert "model spec config.nz is -1: sizes and counts cannot be negative" in _one_error_line(capsys)
    torch.manual_seed(0)
