"""The `lt-plugins` command: search (flags and YAML), eval, demo, env, help."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest
import torch

from lt_plugins.cli import build_parser, main
from lt_plugins.generate import LatentMixture
from lt_plugins.recipes import SearchJob


pytestmark = pytest.mark.usefixtures("untrained_feature_net")  # tests/conftest.py


TINY = ["--image-size", "16", "--model-kwargs", '{"nz": 8, "ngf": 8}', "--eval-samples", "40", "--no-progress",
        "--device", "cpu"]


def test_search_from_yaml_with_flag_override_then_eval(tmp_path, capsys):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("density: 0.3\nsteps: 50\ncheckpoint_every: 2\nscope: global\n")
    out = tmp_path / "run"
    assert main(["search", "--config", str(cfg), "--steps", "3", "--out", str(out), *TINY]) == 0
    printed = capsys.readouterr().out
    assert "FD random init" in printed and "FD ticket (30% of weights)" in printed
    assert (out / "ticket" / "masks.safetensors").exists()
    assert (out / "search" / "samples" / "step_000002.png").exists()
    from lt_plugins import Ticket

    ticket = Ticket.from_pretrained(out / "ticket")
    assert ticket.config.scope == "global" and ticket.density == pytest.approx(0.3, abs=1e-3)
    assert "fd" in ticket.metrics

    assert ticket.call.prior == LatentMixture(SearchJob.latent_components, SearchJob.latent_separation, seed=0)

    # eval draws from the prior the ticket records, so it measures what the search measured
    assert main(["eval", str(out / "ticket"), "--n", "40", "--device", "cpu"]) == 0
    assert json.loads(capsys.readouterr().out)["fd"] == pytest.approx(ticket.metrics["fd"], rel=1e-6)


def test_config_options_reach_the_ticket_and_a_search_with_a_dense_layer_repeats(tmp_path, capsys):
    from lt_plugins import Ticket

    flags = ["--score-init", "kaiming_uniform", "--no-scale-fan", "--exclude-modules", "main.0", "--steps", "4",
             "--eval-at", "2", "--checkpoint-every", "2", *TINY]
    printed = []
    for caller_seed, run in enumerate(("a", "b")):
        torch.manual_seed(caller_seed)  # whatever the caller's random state, the same network
        assert main(["search", "--out", str(tmp_path / run), *flags]) == 0
        printed.append(capsys.readouterr().out)
    a, b = (Ticket.from_pretrained(tmp_path / run / "ticket") for run in ("a", "b"))
    assert (a.config.score_init, a.config.scale_fan, a.config.exclude_modules) == ("kaiming_uniform", False, ["main.0"])
    assert "FD on the way: step 2 " in printed[0]
    # main.0 keeps its constructor's random init: the build is seeded, so both runs agree.
    assert a.metrics["fd"] == b.metrics["fd"]
    assert all(torch.equal(a.masks[name], b.masks[name]) for name in a.masks)


def test_yaml_with_unknown_option_is_a_clear_error(tmp_path, capsys):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("sparsity: 0.9\n")
    with pytest.raises(SystemExit):
        main(["search", "--config", str(cfg)])
    assert "unknown options ['sparsity']" in capsys.readouterr().err


def test_dense_baseline_from_the_command_line(tmp_path, capsys):
    assert main(["search", "--dense", "--steps", "2", "--out", str(tmp_path), *TINY]) == 0
    assert "FD dense network" in capsys.readouterr().out
    assert not (tmp_path / "ticket").exists()


def test_demo_runs_end_to_end(tmp_path, capsys, monkeypatch):
    from lt_plugins.commands import search

    @dataclass
    class TinyJob(search.SearchJob):
        image_size: int = 16
        model_kwargs: dict | None = field(default_factory=lambda: {"nz": 8, "ngf": 8})

    monkeypatch.setattr(search, "SearchJob", TinyJob)
    assert main(["demo", "--out", str(tmp_path), "--steps", "2", "--eval-samples", "40", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "FD ticket (10% of weights)" in printed and (tmp_path / "search" / "samples.png").exists()


def test_every_command_has_help_for_every_option():
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    assert set(commands) >= {"search", "eval", "demo", "sample", "push", "pull", "env"}
    for name, sub in commands.items():
        for action in sub._actions:
            if action.dest not in ("help",):
                assert action.help, f"{name} {action.dest} has no help"


def test_env_prints_versions(capsys):
    main(["env"])
    assert "torch" in capsys.readouterr().out
