"""Saving a ticket: no moment without a ticket in place, kills mid-save recovered, readers never see a mix.

Saves are killed for real (SIGKILL of a child process at a chosen point of the save).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
import torch

import lt_plugins as lt
from lt_plugins.ticket import Ticket

CHILD = textwrap.dedent(
    """
    import os, signal, sys
    import torch
    import lt_plugins as lt
    from lt_plugins import _io, ticket as ticket_module

    point, target = sys.argv[1], sys.argv[2]
    real_rename, real_write = os.rename, ticket_module._write_file
    calls = {"rename": 0, "write": 0}

    def rename(src, dst):
        real_rename(src, dst)
        calls["rename"] += 1
        if (point, calls["rename"]) in (("between-renames", 1), ("before-cleanup", 2)):
            os.kill(os.getpid(), signal.SIGKILL)

    def write(path, data):
        calls["write"] += 1
        if point == "mid-write" and calls["write"] == 2:
            with open(path, "wb") as f:
                f.write(data[: len(data) // 2])
            os.kill(os.getpid(), signal.SIGKILL)
        real_write(path, data)

    _io.os.rename = rename
    ticket_module._write_file = write
    model = lt.wrap(torch.nn.Linear(6, 4), lt.TicketConfig(density=0.25, seed=1))
    lt.Ticket.from_model(model).save_pretrained(target)
    """
)


def _ticket(seed: int) -> Ticket:
    return Ticket.from_model(lt.wrap(torch.nn.Linear(6, 4), lt.TicketConfig(density=0.25, seed=seed)))


def _killed_save(target: Path, point: str) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run([sys.executable, "-c", CHILD, point, str(target)], env=env, capture_output=True, timeout=300)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]


def _hidden(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize(
    ("point", "seed_after"),
    [("mid-write", 0), ("between-renames", 0), ("before-cleanup", 1)],
)
def test_a_save_killed_at_any_point_leaves_a_whole_ticket_that_the_next_load_and_save_tidy(tmp_path, point, seed_after):
    target = tmp_path / "ticket"
    _ticket(0).save_pretrained(target)
    _killed_save(target, point)
    assert _hidden(tmp_path)  # the killed save left hidden folders behind
    if point == "between-renames":
        assert not target.exists()  # the old ticket is aside, not lost
    assert Ticket.from_pretrained(target).config.seed == seed_after  # a load puts it back
    assert Ticket.from_pretrained(str(target)).config.seed == seed_after
    _ticket(2).save_pretrained(target)
    assert _hidden(tmp_path) == [] and Ticket.from_pretrained(target).config.seed == 2


def test_a_first_save_killed_mid_write_leaves_nothing_that_counts_as_a_ticket(tmp_path):
    target = tmp_path / "ticket"
    _killed_save(target, "mid-write")
    assert not target.exists()
    _ticket(3).save_pretrained(target)
    assert _hidden(tmp_path) == [] and Ticket.from_pretrained(target).config.seed == 3


def test_readers_racing_saves_always_get_one_whole_ticket(tmp_path):
    target = tmp_path / "ticket"
    tickets = {seed: _ticket(seed) for seed in (0, 1)}
    tickets[0].save_pretrained(target)
    stop, errors, saves = threading.Event(), [], [0]

    def writer():
        try:
            while not stop.is_set():
                tickets[saves[0] % 2].save_pretrained(target)
                saves[0] += 1
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    thread = threading.Thread(target=writer)
    thread.start()
    seen, loads = set(), 0
    try:
        while saves[0] < 30 and not errors:
            loads += 1
            loaded = Ticket.from_pretrained(target)
            assert torch.equal(loaded.masks["weight"], tickets[loaded.config.seed].masks["weight"])
            seen.add(loaded.config.seed)
    finally:
        stop.set()
        thread.join()
    assert not errors and loads > saves[0] and seen == {0, 1}
    assert _hidden(tmp_path) == []
