"""Every example runs end to end with tiny settings: search, ticket saved (and pushed), grid sampled, FD printed."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hub_fixtures import deadline
from scripts import load_script

TINY = ["--steps", "2", "--batch-size", "8", "--eval-samples", "16", "--device", "cpu"]
CASES = {
    "dcgan_mnist": TINY,
    "stylegan_mnist": TINY,
    "unet_ddpm_mnist": [*TINY, "--sample-steps", "2", "--moment-weight", "0.01", "--latent-components", "4",
                        "--prediction-type", "sample"],
    "stylegan2_equalized": TINY,
    "unet_xt": [*TINY, "--sample-steps", "2"],
}


def _load(name: str):
    return load_script(Path("examples") / f"{name}.py")


@pytest.mark.parametrize("name", sorted(CASES))
def test_example_runs_end_to_end(name, tmp_path, capsys):
    fd = _load(name).main([*CASES[name], "--out", str(tmp_path), "--density", "0.3"])
    assert math.isfinite(fd)
    config = json.loads((tmp_path / "ticket" / "ticket_config.json").read_text())
    assert config["ticket_config"]["density"] == 0.3 and config["metrics"]["fd"] == fd
    assert (tmp_path / "samples.png").stat().st_size > 0
    assert "FD random init" in capsys.readouterr().out


@pytest.mark.parametrize("name", sorted(CASES))
def test_example_help_lists_its_options(name, capsys):
    with pytest.raises(SystemExit) as exit_:
        _load(name).main(["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for option in ("--steps", "--density", "--device", "--out", "--push"):
        assert option in text


def test_push_uploads_the_ticket(tmp_path, hub_upload_server, hub_endpoint):
    hub_endpoint(hub_upload_server.endpoint, token=hub_upload_server.token)
    with deadline(60):
        _load("dcgan_mnist").main([*TINY, "--out", str(tmp_path), "--push", "me/dcgan-mnist"])
    commit = hub_upload_server.commits[-1]
    assert commit.repo_id == "me/dcgan-mnist" and "ticket_config.json" in commit.added
