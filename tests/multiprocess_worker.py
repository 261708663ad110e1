"""What `torchrun` runs for tests/test_multiprocess.py: a ticket search under several processes.

    torchrun --standalone --nproc_per_node 2 tests/multiprocess_worker.py SCENARIO OUT

Scenarios (every rank saves what it ends with to ``OUT/<scenario>_rank<r>.pt``; the test reads
those files and compares ranks with each other and with one process on the global batch):

- ``search``: a layer-scope search (checkpoints, sample grids, progress bar, real moments
  computed and cached), then a global-scope one (moments read from the cache), then one with
  ``sync_batchnorm=False``, then one with `lt.MMD`, in the same process group; ends with
  `end_processes`.
- ``killed``: the layer-scope search of ``search`` in another folder; every rank kills
  itself (SIGKILL) after step ``KILL_AT``, after the checkpoint of step ``CHECKPOINT_EVERY``.
- ``resume``: continues ``killed``'s folder with ``resume=True`` to the end.
- ``state_without_cpu``: Accelerate's state made first without ``cpu=True`` (no GPU): it
  sees one process where torch.distributed has two; the search must say so, not search.
- ``bf16``: under ``ACCELERATE_MIXED_PRECISION=bf16`` (what ``accelerate launch
  --mixed_precision bf16`` sets), a script that makes its own Accelerator first, then searches.

An audit hook records every file a rank opens for writing under ``OUT/runs`` and the
moments cache (``$LT_PLUGINS_CACHE``), so the test can check that only rank 0 writes.
The test module imports the settings below, so one process runs exactly the same search.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import torch
from torch import nn

import lt_plugins as lt
from lt_plugins.models import DCGANGenerator
from lt_plugins.objectives import MMD, MomentMatching
from lt_plugins.distributed import end_processes

LATENT = 8
BATCH = 8  # per process; one process runs WORLD * BATCH
STEPS = 8
CHECKPOINT_EVERY = 3
KILL_AT = 5
LR = 0.05


class PixelFeatures(nn.Module):
    """A fixed random conv feature net: cheap, deterministic, enough to drive the loss."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, stride=2)
        with torch.no_grad():
            gen = torch.Generator().manual_seed(0)
            self.conv.weight.copy_(torch.randn(self.conv.weight.shape, generator=gen) * 0.3)
            self.conv.bias.copy_(torch.randn(self.conv.bias.shape, generator=gen) * 0.1)

    def forward(self, x):
        a = torch.relu(self.conv(x))
        return [a, a.mean((2, 3))]


def real_images(n: int = 96) -> torch.Tensor:
    return torch.rand(n, 1, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1


def make_generator(scope: str = "layer") -> nn.Module:
    """A DCGAN with BatchNorm layers, wrapped: the case where per-rank statistics would differ."""
    return lt.wrap(DCGANGenerator(nz=LATENT, ngf=8, nc=1, image_size=16), lt.TicketConfig(density=0.3, seed=0, scope=scope))


def make_search(gen: nn.Module, batch_size: int, output_dir=None, cache: bool = False, device: str | None = "cpu",
                objective=None, **kw) -> lt.TicketSearch:
    objective = objective or MomentMatching(PixelFeatures(), ema_decay=0.5, cache=cache)
    return lt.TicketSearch(gen, objective, LATENT, batch_size=batch_size, lr=LR, device=device, seed=0,
                           output_dir=output_dir, checkpoint_every=CHECKPOINT_EVERY, **kw)


def mmd_value_and_gradient(batch_size: int, rank: int = 0, world_size: int = 1) -> tuple[float, list[torch.Tensor]]:
    """`lt.MMD` of this process's share of the step-0 latents, and its score gradient averaged
    over processes as DDP averages it (BatchNorm in eval mode: per-sample, like one process)."""
    gen = make_generator("layer").eval()
    objective = MMD(PixelFeatures())
    objective.prepare(real_images(), torch.device("cpu"))
    z = make_search(gen, batch_size).latents(0, batch_size, rank, world_size)
    loss = objective(gen(z))
    loss.backward()
    grads = [s.grad for s in lt.score_parameters(gen)]
    if world_size > 1:
        for g in grads:
            torch.distributed.all_reduce(g)
            g /= world_size
    return loss.item(), grads


def snapshot(gen: nn.Module, search: lt.TicketSearch) -> dict:
    """What a rank ends with: scores, masks, buffers (BatchNorm running statistics), losses."""
    return {
        "scores": [s.detach().clone() for s in lt.score_parameters(gen)],
        "masks": lt.masks(gen),
        "buffers": {k: v.clone() for k, v in gen.state_dict().items() if "running" in k or "num_batches" in k},
        "losses": list(search.result.losses),
        "real_moments": [(m.clone(), v.clone()) for m, v in search.objective.real]
        if isinstance(search.objective, MomentMatching) else None,
        "patched_forwards": [name for name, m in gen.named_modules() if "forward" in m.__dict__],
    }


class WriteAudit:
    """Files this process opens for writing (or renames into place) under some folders."""

    WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

    def __init__(self, *roots: Path) -> None:
        self.roots = [str(Path(r).resolve()) for r in roots]
        self.paths: list[str] = []
        sys.addaudithook(self)

    def _watched(self, path) -> str | None:
        if not isinstance(path, (str, bytes, os.PathLike)):
            return None
        full = os.path.abspath(os.fsdecode(path))
        return full if any(full.startswith(r + os.sep) for r in self.roots) else None

    def __call__(self, event: str, args: tuple) -> None:
        if event == "open":
            path, mode, flags = args
            writes = any(c in mode for c in "wax+") if isinstance(mode, str) else bool(flags & self.WRITE_FLAGS)
            if writes and (full := self._watched(path)):
                self.paths.append(full)
        elif event == "os.rename" and (full := self._watched(args[1])):
            self.paths.append(full)


def main(scenario: str, out: Path) -> None:
    rank = int(os.environ["RANK"])
    runs = out / "runs"
    audit = WriteAudit(runs, Path(os.environ["LT_PLUGINS_CACHE"]))
    result: dict = {"world_size": int(os.environ["WORLD_SIZE"])}
    real = real_images()
    if scenario == "search":
        gen = make_generator("layer")
        search = make_search(gen, BATCH, runs / "straight", cache=True)  # cache miss: computed, rank 0 writes it
        ticket = search.run(real, steps=STEPS)
        result["layer"] = snapshot(gen, search)
        result["ticket_masks"] = ticket.masks
        gen = make_generator("global")
        search = make_search(gen, BATCH, cache=True, progress=False)  # cache hit on every rank
        search.run(real, steps=STEPS)
        result["global"] = snapshot(gen, search)
        gen = make_generator("layer")
        search = make_search(gen, BATCH, progress=False, sync_batchnorm=False)
        search.run(real, steps=3)
        result["per_rank_bn"] = snapshot(gen, search)
        gen = make_generator("layer")
        search = make_search(gen, BATCH, progress=False, objective=MMD(PixelFeatures()))
        search.run(real, steps=STEPS)
        result["mmd"] = snapshot(gen, search)
        result["mmd_gradient"] = mmd_value_and_gradient(BATCH, rank, result["world_size"])
    elif scenario == "killed":
        def die(info: lt.StepInfo) -> None:
            if info.step == KILL_AT:
                os.kill(os.getpid(), signal.SIGKILL)

        make_search(make_generator("layer"), BATCH, runs / "killed", progress=False, callbacks=[die]).run(real, steps=STEPS)
    elif scenario == "resume":
        gen = make_generator("layer")
        search = make_search(gen, BATCH, runs / "killed", progress=False)
        search.run(real, steps=STEPS, resume=True)
        result["layer"] = snapshot(gen, search)
    elif scenario == "bf16":  # launched with ACCELERATE_MIXED_PRECISION=bf16, as `accelerate launch --mixed_precision bf16` does
        from accelerate import Accelerator

        accelerator = Accelerator(cpu=True)  # the script's own, made first (e.g. for is_main_process)
        gen = make_generator("layer")
        search = make_search(gen, BATCH, progress=False)  # mixed_precision not given: the launcher's
        search.run(real, steps=3)
        result["layer"] = snapshot(gen, search)
        result["mixed_precision"] = accelerator.mixed_precision
        z = torch.randn(4, LATENT, generator=torch.Generator().manual_seed(1))
        result["plain_forward_after_run"] = torch.equal(gen.eval()(z), type(gen).forward(gen, z))
    elif scenario == "state_without_cpu":  # a script that made Accelerate's state first, without cpu=True
        from accelerate import PartialState

        PartialState()
        try:
            make_search(make_generator("layer"), BATCH, progress=False, device=None).run(real, steps=2)
        except RuntimeError as err:
            result["error"] = str(err)
    else:
        raise SystemExit(f"unknown scenario {scenario!r}")
    result["writes"] = audit.paths
    torch.save(result, out / f"{scenario}_rank{rank}.pt")
    end_processes()


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
