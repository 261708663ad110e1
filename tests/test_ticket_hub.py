"""Tickets through the Hub: push_to_hub to the local upload server, from_pretrained back through olah.

The real huggingface_hub client runs on both paths (hub_fixtures.py); nothing here is mocked.
"""

from __future__ import annotations

import argparse
import hashlib

import numpy as np
import pytest
import torch
from hub_fixtures import deadline
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError
from test_ticket import BUILTIN, BY_NAME, fresh, output, searched

from lt_plugins.commands.hub import add_pull, add_push, add_sample
from lt_plugins.ticket import Ticket

REPO = "lt-tester/ticket"


@pytest.fixture(autouse=True)
def _hard_deadline():
    with deadline(60):
        yield


def _files(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir()}


@pytest.mark.parametrize("family", BUILTIN, ids=[f.name for f in BUILTIN])
def test_push_then_pull_through_olah_is_bit_identical(family, hub_upload_server, olah_server, hub_endpoint, tmp_path):
    model = searched(family)
    expected = output(family, model)
    ticket = Ticket.from_model(model, metrics={"fid": 3.0}, samples=torch.rand(4, 1, 8, 8) * 2 - 1)

    hub_endpoint(hub_upload_server.endpoint)
    info = ticket.push_to_hub(REPO, token=hub_upload_server.token, commit_message="First ticket")
    commit = hub_upload_server.commits[-1]
    assert (commit.repo_id, commit.message, info.oid) == (REPO, "First ticket", commit.oid)
    assert info.commit_url and commit.oid in info.commit_url
    local = _files(ticket.save_pretrained(tmp_path / "local", repo_id=REPO))
    assert sorted(commit.added) == sorted(local)
    for name, data in local.items():  # what the server stored is what save_pretrained writes
        assert hub_upload_server.read_file(REPO, name) == data, name

    endpoint = hub_endpoint(olah_server.endpoint)
    pulled = Ticket.from_pretrained(REPO)
    assert str(pulled.path).startswith(str(endpoint.cache_dir)) and commit.oid in str(pulled.path)
    rebuilt = pulled.apply(fresh(family)).eval()
    assert torch.equal(output(family, rebuilt), expected)
    assert pulled.metrics == {"fid": 3.0} and pulled.samples is not None


def test_revision_token_offline_and_stale_files(hub_upload_server, hub_endpoint, olah_server, monkeypatch):
    family = BY_NAME["dcgan"]
    model = searched(family)
    hub_endpoint(hub_upload_server.endpoint)
    first = Ticket.from_model(model, portable=True).push_to_hub(REPO, token=hub_upload_server.token)
    assert "kept_weights.safetensors" in hub_upload_server.commits[-1].added
    second = Ticket.from_model(searched(family, seed=9)).push_to_hub(REPO, token=hub_upload_server.token)
    assert hub_upload_server.commits[-1].deleted == ["kept_weights.safetensors"]  # no stale portable file

    # The upload server needs the token to read, like a private repo; the token is passed through.
    with pytest.raises(HfHubHTTPError):
        Ticket.from_pretrained(REPO, revision=first.oid)
    assert Ticket.from_pretrained(REPO, revision=first.oid, token=hub_upload_server.token).portable

    hub_endpoint(olah_server.endpoint)
    latest = Ticket.from_pretrained(REPO)
    assert not latest.portable and latest.config.seed == 9 and second.oid in str(latest.path)

    # HF_HUB_OFFLINE: answered from the cache, without a single request (online, the same call asks).
    import huggingface_hub.constants as constants

    hub_endpoint(hub_upload_server.endpoint, token=hub_upload_server.token)
    requests = len(hub_upload_server.requests)
    assert Ticket.from_pretrained(REPO).config.seed == 9
    assert len(hub_upload_server.requests) > requests
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    requests = len(hub_upload_server.requests)
    assert Ticket.from_pretrained(REPO).config.seed == 9
    assert Ticket.from_pretrained(REPO, revision=first.oid).portable
    assert len(hub_upload_server.requests) == requests


def test_wrong_token_and_missing_repo_raise_the_hub_errors(hub_upload_server, hub_endpoint):
    ticket = Ticket.from_model(searched(BY_NAME["dcgan"]))
    hub_endpoint(hub_upload_server.endpoint)
    with pytest.raises(HfHubHTTPError) as err:
        ticket.push_to_hub(REPO, token="hf_wrong")
    assert err.value.response.status_code == 401 and not hub_upload_server.commits
    with pytest.raises(RepositoryNotFoundError) as err:
        Ticket.from_pretrained("lt-tester/missing", token=hub_upload_server.token)
    assert "no folder 'lt-tester/missing' here either" in "".join(getattr(err.value, "__notes__", []))


def _cli(*argv):
    parser = argparse.ArgumentParser(prog="lt-plugins")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (add_push, add_pull, add_sample):
        add(sub)
    args = parser.parse_args([str(a) for a in argv])
    return args.func(args)


def test_cli_push_pull_and_sample(hub_upload_server, olah_server, hub_endpoint, tmp_path, capsys):
    family = BY_NAME["stylegan"]
    model = searched(family)
    saved = Ticket.from_model(model).save_pretrained(tmp_path / "saved")

    hub_endpoint(hub_upload_server.endpoint, token=hub_upload_server.token)
    url = _cli("push", saved, REPO, "--commit-message", "From the CLI")
    assert hub_upload_server.commits[-1].message == "From the CLI" and hub_upload_server.commits[-1].oid in url

    hub_endpoint(olah_server.endpoint)
    out = _cli("pull", REPO, "--out", tmp_path / "pulled")
    assert "StyleGANGenerator" in capsys.readouterr().out
    pulled = _files(out)
    assert pulled.keys() == _files(saved).keys()
    for name in ("masks.safetensors", "remainder.safetensors"):
        assert hashlib.sha256(pulled[name]).digest() == hashlib.sha256(_files(saved)[name]).digest()
    assert f'from_pretrained("{REPO}")' in pulled["README.md"].decode()

    grid = _cli("sample", REPO, "--n", 4, "--out", tmp_path / "grid.png", "--seed", 3, "--device", "cpu")
    from PIL import Image

    with Image.open(grid) as image:
        assert image.size == (2 * 18 + 2, 2 * 18 + 2)  # 4 samples of 16x16 in a 2x2 grid, 2 px padding
        first = image.copy()
    z = torch.randn(4, 32, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = model(z)
    from lt_plugins.ticket import image_grid

    assert np.array_equal(np.asarray(image_grid(expected)), np.asarray(first))
