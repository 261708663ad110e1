"""Cost of a masked search step next to a dense training step (DCGAN 64×64, ~3.6M weights).

Three steps are timed side by side, interleaved round by round so machine noise hits all
alike: a dense training step (Adam on the weights), our masked search step (Adam on the
scores, selection bracketed around the last step's threshold, mask and masked weight kept
between steps) and a sort-based masked step as the reference implementations do it (full
sort of every layer's scores on every forward). Peak memory of each comes from a fresh
subprocess. Then the time our step spends choosing masks, and one selection on its own.

    python benchmarks/mask_overhead.py [--batch 64] [--rounds 8] [--warmup 10] [--device cpu] [--scope layer]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import time

import torch
from torch import nn
from torch.nn.utils import parametrize

import lt_plugins as lt
from lt_plugins import masking
from lt_plugins.masking import kept_count, topk_mask
from lt_plugins.models import DCGANGenerator


class SortScoreMask(nn.Module):
    """Reference-style mask: sort all |scores| on every forward, straight-through to the scores."""

    def __init__(self, scores: torch.Tensor, density: float) -> None:
        super().__init__()
        self.scores = nn.Parameter(scores)
        self.k = kept_count(density, scores.numel())

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        a = self.scores.abs()
        order = a.flatten().sort().indices
        mask = torch.zeros(a.numel(), device=a.device, dtype=a.dtype)
        mask[order[-self.k:]] = 1
        # straight-through: value of the mask, gradient of |scores|
        return weight * (mask.view_as(a) + a - a.detach())


def build(kind: str, device: str, scope: str = "layer") -> tuple[nn.Module, torch.optim.Optimizer]:
    gen = DCGANGenerator(nz=100, ngf=64, nc=3, image_size=64).to(device)
    if kind == "dense":
        return gen, torch.optim.Adam(gen.parameters(), lr=2e-4, betas=(0.5, 0.999))
    if kind == "ours":
        gen = lt.wrap(gen, lt.TicketConfig(density=0.1, seed=0, scope=scope))
        return gen, torch.optim.Adam(lt.score_parameters(gen), lr=0.01, betas=(0.5, 0.999))
    gen.requires_grad_(False)
    scores = []
    for module in gen.modules():
        if isinstance(module, nn.ConvTranspose2d):
            mask = SortScoreMask(torch.rand_like(module.weight) * 0.2 - 0.1, density=0.1)
            parametrize.register_parametrization(module, "weight", mask)
            scores.append(mask.scores)
    return gen, torch.optim.Adam(scores, lr=0.01, betas=(0.5, 0.999))


def make_step(kind: str, batch: int, device: str, scope: str = "layer"):
    gen, opt = build(kind, device, scope)
    z = torch.randn(batch, 100, device=device)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        gen(z).square().mean().backward()
        opt.step()

    return step


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_side_by_side(
    kinds: list[str], batch: int, rounds: int, steps: int, warmup: int, device: str, scope: str
) -> dict[str, list[float]]:
    runners = {kind: make_step(kind, batch, device, scope) for kind in kinds}
    for run in runners.values():
        # Warm-up: allocator, kernels, and the first selections, whose thresholds still jump
        # by percents from step to step; a search runs thousands of steps past them.
        for _ in range(warmup):
            run()
    times: dict[str, list[float]] = {kind: [] for kind in kinds}
    for _ in range(rounds):
        for kind, run in runners.items():
            sync(device)
            start = time.perf_counter()
            for _ in range(steps):
                run()
            sync(device)
            times[kind].append((time.perf_counter() - start) / steps)
    return times


def _vm_hwm_kib() -> int:
    # VmHWM belongs to this process image; ru_maxrss would carry the parent's peak over fork/exec.
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))


def _peak_memory_child(kind: str, batch: int, device: str, scope: str, queue) -> None:
    run = make_step(kind, batch, device, scope)
    for _ in range(3):
        run()
    if device.startswith("cuda"):
        queue.put(torch.cuda.max_memory_allocated() / 2**20)
    else:
        queue.put(_vm_hwm_kib() / 1024)


def peak_memory_mib(kind: str, batch: int, device: str, scope: str) -> float:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_peak_memory_child, args=(kind, batch, device, scope, queue))
    proc.start()
    value = queue.get(timeout=600)
    proc.join()
    return value


def selection_ms(n: int, density: float, device: str, repeats: int = 20) -> dict[str, float]:
    """Median ms to pick the top ``density`` of ``n`` random scores: ours and the plain torch ways."""
    values = torch.rand(n, device=device)
    k = kept_count(density, n)
    ways = {
        "lt_plugins.masking.topk_mask": lambda: topk_mask(values, k),
        "torch.kthvalue": lambda: values.kthvalue(n - k + 1),
        "torch.topk": lambda: values.topk(k, sorted=False),
        "torch.sort": lambda: values.sort(),
    }
    result = {}
    for name, way in ways.items():
        way()
        samples = []
        for _ in range(repeats):
            sync(device)
            start = time.perf_counter()
            way()
            sync(device)
            samples.append(time.perf_counter() - start)
        result[name] = statistics.median(samples) * 1e3
    return result


def selection_in_step_ms(batch: int, warmup: int, steps: int, device: str, scope: str) -> float:
    """Median ms per masked search step spent choosing the masks, timed inside real steps.

    Unlike `selection_ms`, the scores here move as a search moves them, so each layer's
    selection starts from where its threshold was the step before (`ThresholdHint`).
    """
    run = make_step("ours", batch, device, scope)
    for _ in range(warmup):
        run()
    spent = [0.0]
    # Patched where it is called: the layer selection (ScoreMask) and the global one.
    callers = (masking.parametrization, masking.selection)
    untimed = masking.topk_mask

    def timed(*args, **kwargs):
        sync(device)
        start = time.perf_counter()
        keep = untimed(*args, **kwargs)
        sync(device)
        spent[0] += time.perf_counter() - start
        return keep

    for caller in callers:
        caller.topk_mask = timed
    per_step = []
    try:
        for _ in range(steps):
            spent[0] = 0.0
            run()
            per_step.append(spent[0])
    finally:
        for caller in callers:
            caller.topk_mask = untimed
    return statistics.median(per_step) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=8, help="interleaved timing rounds")
    parser.add_argument("--steps", type=int, default=3, help="steps per kind per round")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps per kind first")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--scope", choices=("layer", "global"), default="layer",
                        help="our mask's top-k scope (the sort-based reference ranks per layer)")
    args = parser.parse_args()

    kinds = ["dense", "ours", "sort"]
    times = time_side_by_side(kinds, args.batch, args.rounds, args.steps, args.warmup, args.device, args.scope)
    median = {kind: statistics.median(t) for kind, t in times.items()}
    memory = {kind: peak_memory_mib(kind, args.batch, args.device, args.scope) for kind in kinds}
    mem_kind = "peak CUDA allocated" if args.device.startswith("cuda") else "peak process RSS"
    print(f"DCGAN 64x64 (nz 100, ngf 64), batch {args.batch}, density 0.1 ({args.scope} top-k), device {args.device}, "
          f"{torch.get_num_threads()} threads, median of {args.rounds} rounds x {args.steps} steps "
          f"after {args.warmup} warm-up steps")
    print(f"{'step':<28}{'ms/step':>10}{'x dense':>10}{mem_kind + ' MiB':>26}")
    labels = {"dense": "dense training", "ours": "masked search (lt_plugins)", "sort": "masked, sort every forward"}
    for kind in kinds:
        print(f"{labels[kind]:<28}{median[kind] * 1e3:>10.1f}{median[kind] / median['dense']:>10.3f}"
              f"{memory[kind]:>26.0f}")
    print(f"masked / dense = {median['ours'] / median['dense']:.3f} (target <= 1.10); "
          f"sort-based / ours = {median['sort'] / median['ours']:.2f}")
    choosing = selection_in_step_ms(args.batch, args.warmup, 10, args.device, args.scope)
    print(f"of a masked step, choosing all masks took {choosing:.1f} ms (median of 10 steps)")
    n = 512 * 256 * 4 * 4  # the largest layer
    print(f"selecting the top 10% of {n:,} scores on {args.device}, median ms: " + ", ".join(
        f"{name} {ms:.2f}" for name, ms in selection_ms(n, 0.1, args.device).items()))


if __name__ == "__main__":
    main()
