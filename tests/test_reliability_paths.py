"""Local paths never go to the Hub; every load says where it came from; force_download repairs a cache.

Against the local upload server (which records every request) and olah (hub_fixtures.py).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pytest
import torch
from hub_fixtures import deadline

import lt_plugins as lt
from lt_plugins.commands.hub import add_pull, add_push, add_sample
from lt_plugins.ticket import Ticket, TicketError, looks_local

REPO = "lt-tester/ticket"


@pytest.fixture(autouse=True)
def _hard_deadline():
    with deadline(60):
        yield


def _ticket(seed: int = 0) -> Ticket:
    return Ticket.from_model(lt.wrap(torch.nn.Linear(6, 4), lt.TicketConfig(density=0.25, seed=seed)))


def _cli(*argv):
    parser = argparse.ArgumentParser(prog="lt-plugins")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (add_push, add_pull, add_sample):
        add(sub)
    args = parser.parse_args([str(a) for a in argv])
    return args.func(args)


@pytest.fixture
def hub_with_same_named_repos(hub_upload_server, hub_endpoint, tmp_path, monkeypatch):
    """A Hub holding repos named like the local paths below ("out/ticket", "lt-tester/ticket"); cwd = tmp_path/work."""
    hub_endpoint(hub_upload_server.endpoint, token=hub_upload_server.token)
    for repo in ("out/ticket", REPO):
        _ticket(seed=7).push_to_hub(repo)
    work = tmp_path / "work"
    (work / "out").mkdir(parents=True)
    (work / "lt-tester").mkdir()
    monkeypatch.chdir(work)
    return hub_upload_server


@pytest.mark.parametrize(
    "path", ["out/ticket", "./out/ticket", "../work/out/ticket", "~/no-such-ticket-folder", REPO, "/no/such/ticket"]
)
def test_a_missing_local_looking_path_is_an_error_naming_it_and_never_a_hub_call(hub_with_same_named_repos, path):
    server = hub_with_same_named_repos
    assert looks_local(path)
    before = len(server.requests)
    with pytest.raises(TicketError, match=r"looks like a local path \(.*\), so the Hub was not asked") as err:
        Ticket.from_pretrained(path)
    assert repr(path) in str(err.value)
    assert len(server.requests) == before


def test_a_path_object_is_always_local_and_a_bare_repo_id_still_goes_to_the_hub(hub_with_same_named_repos):
    server = hub_with_same_named_repos
    before = len(server.requests)
    with pytest.raises(TicketError, match="does not exist"):
        Ticket.from_pretrained(Path("lt-tester2/ticket"))  # no parent folder here, but a Path is a path
    assert len(server.requests) == before
    assert not looks_local("lt-tester2/ticket")
    (Path("lt-tester")).rmdir()  # now "lt-tester/ticket" is a repo id again
    assert Ticket.from_pretrained(REPO).config.seed == 7
    assert len(server.requests) > before


def test_the_cli_refuses_missing_local_paths_without_asking_the_hub(hub_with_same_named_repos, tmp_path):
    server = hub_with_same_named_repos
    before = len(server.requests)
    for argv in (("pull", "out/ticket"), ("sample", "out/ticket", "--out", tmp_path / "g.png", "--device", "cpu"),
                 ("push", "out/ticket", "me/elsewhere"), ("push", "lt-tester2/ticket", "me/elsewhere")):
        with pytest.raises(TicketError, match="does not exist"):
            _cli(*argv)
    from lt_plugins.cli import main

    assert main(["eval", "out/ticket", "--device", "cpu"]) == 1
    assert len(server.requests) == before


def test_every_load_logs_where_it_came_from(hub_upload_server, olah_server, hub_endpoint, tmp_path, caplog):
    hub_endpoint(hub_upload_server.endpoint, token=hub_upload_server.token)
    info = _ticket().push_to_hub(REPO)
    folder = _ticket().save_pretrained(tmp_path / "t")
    hub_endpoint(olah_server.endpoint)
    with caplog.at_level(logging.INFO, logger="lt_plugins.ticket"):
        Ticket.from_pretrained(folder)
        Ticket.from_pretrained(REPO)
    lines = [r.getMessage() for r in caplog.records if r.name == "lt_plugins.ticket"]
    assert any(f"from the folder {folder.absolute()}" in line for line in lines), lines
    assert any(f"from the Hub: {REPO}@{info.oid}" in line for line in lines), lines


def test_force_download_repairs_a_corrupted_cache_blob(hub_upload_server, olah_server, hub_endpoint, tmp_path, capsys):
    hub_endpoint(hub_upload_server.endpoint, token=hub_upload_server.token)
    _ticket().push_to_hub(REPO)
    hub_endpoint(olah_server.endpoint)
    cached = Ticket.from_pretrained(REPO).path / "masks.safetensors"
    blob = cached.resolve()  # the cache's snapshot entries link to content-addressed blobs
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0x01
    blob.write_bytes(bytes(data))
    with pytest.raises(TicketError, match="changed or corrupted"):
        Ticket.from_pretrained(REPO)
    assert Ticket.from_pretrained(REPO, force_download=True).config.seed == 0
    assert Ticket.from_pretrained(REPO).config.seed == 0  # the cache itself is repaired

    blob.write_bytes(b"\0" * len(data))
    with pytest.raises(TicketError, match="changed or corrupted"):
        _cli("pull", REPO)
    _cli("pull", REPO, "--force-download")
    assert "Linear" in capsys.readouterr().out
