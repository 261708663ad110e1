"""The recipes layer: each search setting is defined once, as a SearchJob field, and the CLI's flags come from it."""

from __future__ import annotations

import dataclasses
import inspect

import lt_plugins as lt
from lt_plugins.cli import build_parser
from lt_plugins.recipes import SearchJob
from lt_plugins.search import SearchLoop


def _search_parser():
    return build_parser()._subparsers._group_actions[0].choices["search"]


def test_every_search_job_field_has_a_cli_flag_with_its_help_and_default():
    actions = {a.dest: a for a in _search_parser()._actions}
    for spec in dataclasses.fields(SearchJob):
        action = actions[spec.name]
        assert action.help == spec.metadata["help"].replace("%", "%%"), spec.name
        assert action.default == spec.default, spec.name
        assert tuple(action.choices or ()) == tuple(spec.metadata.get("choices", ())), spec.name
    assert set(actions) - {f.name for f in dataclasses.fields(SearchJob)} == {"help", "config", "debug"}


def test_defaults_come_from_the_library_not_repeated_literals():
    config = {f.name: f for f in dataclasses.fields(lt.TicketConfig)}
    search = inspect.signature(SearchLoop).parameters  # TicketSearch's and DenseSearch's settings
    job = SearchJob()
    for name in ("density", "scope", "seed", "weight_init", "score_init", "scale_fan", "exclude_modules"):
        assert getattr(job, name) == config[name].default
    for name in ("batch_size", "checkpoint_every", "lr"):
        assert getattr(job, name) == search[name].default
    assert (job.latent_components, job.latent_separation) == (lt.LatentMixture.components, lt.LatentMixture.separation)


def test_flags_parse_into_a_job():
    args = _search_parser().parse_args(["--density", "0.2", "--latent-shape", "8", "1", "1", "--no-scale-fan",
                                        "--dense", "--no-progress", "--model-kwargs", '{"ngf": 8}'])
    assert (args.density, args.latent_shape, args.scale_fan, args.dense, args.progress, args.model_kwargs) == (
        0.2, [8, 1, 1], False, True, False, {"ngf": 8})
