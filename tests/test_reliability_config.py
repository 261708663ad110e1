"""Config files go through the flags' checks (types, choices, switches, unknown keys) and never echo unbounded."""

from __future__ import annotations

import argparse
import time

import pytest

from lt_plugins.cli import main
from lt_plugins.commands.search import bounded_repr, load_yaml_defaults


def _refused(tmp_path, capsys, text: str) -> str:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(text)
    with pytest.raises(SystemExit) as exit_:
        main(["search", "--config", str(cfg), "--out", str(tmp_path / "never")])
    assert exit_.value.code == 2
    assert not (tmp_path / "never").exists()  # refused before anything ran
    return capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("objective: moment\n", "objective: 'moment' is not one of ['moments', 'mmd']"),
        ("dense: 'no'\n", "dense: 'no' must be true or false"),
        ("resume: 'false'\n", "resume: 'false' must be true or false"),
        ("progress: 0\n", "progress: 0 must be true or false"),
        ("scale_fan: 'yes'\n", "scale_fan: 'yes' must be true or false"),
        ("steps: '600'\n", "steps: '600' must be an integer"),
        ("steps: 6.5\n", "steps: 6.5 must be an integer"),
        ("steps: true\n", "steps: True must be an integer"),
        ("density: [0.1]\n", "density: [0.1] must be a number"),
        ("density: null\n", "density: null is not a value"),
        ("scope: Layer\n", "scope: 'Layer' is not one of ['layer', 'global']"),
        ("weight_init: keep\n", "weight_init: 'keep' is not one of"),
        ("eval_at: 5\n", "eval_at: 5 must be a list"),
        ("eval_at: [5, six]\n", "eval_at[1]: 'six' must be an integer"),
        ("exclude_modules: []\n", "exclude_modules: the list must not be empty"),
        ("model_kwargs: [8]\n", "model_kwargs: [8] must be a single value"),
        ("model_kwargs: '[8]'\n", "model_kwargs: '[8]' is invalid ('[8]' is a JSON list; write an object"),
        ("stepz: 3\n", "unknown options ['stepz']"),
        ("- steps\n", "must hold a mapping"),
        ("steps: [\n", "cannot be read"),
    ],
)
def test_yaml_values_are_checked_like_flags(tmp_path, capsys, text, says):
    assert says in _refused(tmp_path, capsys, text)


@pytest.mark.parametrize(("value", "says"), [("[8]", "'[8]' is a JSON list; write an object"),
                                             ("{ngf: 8}", "'{ngf: 8}' is not JSON (Expecting property name")])
def test_search_refuses_model_kwargs_that_are_not_a_json_object_by_name(tmp_path, capsys, value, says):
    with pytest.raises(SystemExit) as exit_:
        main(["search", "--model-kwargs", value, "--out", str(tmp_path / "never")])
    assert exit_.value.code == 2 and "--model-kwargs" in (err := capsys.readouterr().err) and says in err
    assert not (tmp_path / "never").exists()


def test_a_yaml_anchor_bomb_fails_fast_and_small(tmp_path, capsys):
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{name}: &{name} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]")
    text = "density:\n" + "\n".join("  " + line for line in lines) + "\n"
    assert len(text) < 1000
    began = time.perf_counter()
    err = _refused(tmp_path, capsys, text)
    assert time.perf_counter() - began < 5 and len(err) < 2000
    assert "uses YAML aliases" in err


def test_bounded_repr_caps_long_and_exponential_values():
    nested = ["x" * 10]
    for _ in range(40):
        nested = [nested, nested]
    began = time.perf_counter()
    assert len(bounded_repr(nested)) <= 203 and len(bounded_repr("y" * 10**6)) <= 203
    assert time.perf_counter() - began < 1


def test_long_values_and_unknown_keys_are_echoed_bounded(tmp_path, capsys):
    err = _refused(tmp_path, capsys, f"objective: {'m' * 100000}\n")
    assert "is not one of" in err and len(err) < 2000
    err = _refused(tmp_path, capsys, "".join(f"{'k' * 1000}{i}: 1\n" for i in range(200)))
    assert "unknown options" in err and len(err) < 3000


def test_the_checks_come_from_the_parsers_actions_so_new_flags_are_checked_too(tmp_path):
    parser = argparse.ArgumentParser(prog="x", exit_on_error=False)
    parser.add_argument("--warmup", type=int, default=0)
    parser.add_argument("--ema", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--sched", choices=("cosine", "none"), default="cosine")
    parser.add_argument("--ratio", type=lambda s: float(s) if 0 < float(s) < 1 else float("x"), default=0.5)
    cfg = tmp_path / "c.yaml"
    for text in ("warmup: ten\n", "ema: 'true'\n", "sched: linear\n", "ratio: 2\n"):
        cfg.write_text(text)
        with pytest.raises(SystemExit):
            load_yaml_defaults(parser, str(cfg))
    cfg.write_text("warmup: 10\nema: false\nsched: none\nratio: 0.25\n")
    load_yaml_defaults(parser, str(cfg))
    assert vars(parser.parse_args([])) == {"warmup": 10, "ema": False, "sched": "none", "ratio": 0.25}


def test_a_mapping_is_accepted_for_the_json_option_and_keep_needs_a_base(tmp_path):
    from lt_plugins.cli import build_parser

    parser = build_parser()
    search = parser._subparsers._group_actions[0].choices["search"]
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model_kwargs: {nz: 8, ngf: 8}\ndense: true\n")
    load_yaml_defaults(search, str(cfg))
    args = parser.parse_args(["search"])
    assert args.model_kwargs == {"nz": 8, "ngf": 8} and args.dense is True

    parser = argparse.ArgumentParser(prog="x")
    parser.add_argument("--weight-init", choices=("signed_constant", "keep"), default="signed_constant")
    parser.add_argument("--base", default=None)
    cfg.write_text("weight_init: keep\n")
    with pytest.raises(SystemExit):
        load_yaml_defaults(parser, str(cfg))
    cfg.write_text("weight_init: keep\nbase: google/ddpm-cifar10-32\n")
    load_yaml_defaults(parser, str(cfg))
    assert parser.parse_args([]).weight_init == "keep"
