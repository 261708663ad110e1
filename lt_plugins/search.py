"""The ticket search loop on Accelerate: optimise only the scores of a wrapped generator.

One process by default; under ``accelerate launch`` / ``torchrun`` every rank draws its
slice of the same global latent batch, score gradients are all-reduced by DDP, BatchNorm
layers and the objective combine per-rank statistics, so the result is the single-process
one for the same global batch (see docs/multi_gpu.md).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import torch
from torch import nn
from tqdm.auto import tqdm

from ._io import atomic_path
from .adapters import adapter_for
from .checkpoints import CHECKPOINT_NAME, data_key, load_checkpoint, restore_checkpoint, run_record, save_checkpoint
from .distributed import asks_for_cpu, global_batch_norm, process_state, sum_over_processes_, world
from .distributed import end_processes  # noqa: F401  (its documented place before lt_plugins.distributed)
from .errors import LTPluginsError
from .generate import Generate, LatentCall, LatentMixture, as_latent_shape, latent_sample, no_latent_shape
from .init import keyed_generator
from .masking import is_wrapped, score_parameters, wrap_config, wrapped_root
from .objectives.base import ModelObjective, Objective
from .schedule import warmup_cosine

if TYPE_CHECKING:
    from .ticket import Ticket

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Run the block with ``model`` in eval mode, then give it back its mode."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


class NonFiniteLossError(LTPluginsError, FloatingPointError):
    """The loss became NaN or infinite; the step was not applied."""


@dataclass
class StepInfo:
    """What a callback sees after every step."""

    step: int
    loss: float
    lr: float
    generator: nn.Module


@dataclass
class SearchResult:
    """History of a finished (or resumed and finished) search."""

    losses: list[float] = field(default_factory=list)
    seconds_per_step: float = math.nan


def save_image_grid(images: torch.Tensor, path: str | os.PathLike, nrow: int | None = None) -> None:
    """Write images in [-1, 1] (N, C, H, W) as one PNG grid, atomically.

    Example:
        >>> import tempfile, pathlib
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "grid.png"
        >>> save_image_grid(torch.zeros(4, 1, 8, 8), out)
        >>> out.exists()
        True
    """
    from torchvision.utils import save_image

    nrow = nrow or max(1, int(math.sqrt(images.shape[0])))
    with atomic_path(path) as tmp:
        save_image(images.detach().float().cpu(), tmp, nrow=nrow, normalize=True, value_range=(-1, 1), format="png")


class SearchLoop:
    """The optimisation loop `TicketSearch` and `DenseSearch` share; their arguments are `TicketSearch`'s.

    What differs is what is trained (the scores of a wrapped model, or the weights of an
    unwrapped one) and what ``run()`` returns.

    Example:
        >>> issubclass(TicketSearch, SearchLoop) and issubclass(DenseSearch, SearchLoop)
        True
    """

    dense = False  # what checkpoints record: whether the weights (not scores) are trained
    _what = "ticket search"

    def __init__(
        self,
        generator: nn.Module,
        objective: Objective,
        latent_dim: int | None = None,
        *,
        latent_shape: tuple[int, ...] | int | None = None,
        generate: Generate | str | None = None,
        prior: LatentMixture | None = None,
        batch_size: int = 64,
        lr: float | None = None,
        betas: tuple[float, float] = (0.5, 0.999),
        warmup: float = 0.05,
        output_dir: str | os.PathLike | None = None,
        checkpoint_every: int = 100,
        n_samples: int = 64,
        seed: int = 0,
        device: str | torch.device | None = None,
        mixed_precision: str | None = None,
        progress: bool = True,
        callbacks: list[Callable[[StepInfo], None]] | tuple = (),
        sync_batchnorm: bool = True,
    ) -> None:
        dense = self.dense
        self._check_generator(generator)
        if isinstance(warmup, bool) or not isinstance(warmup, (int, float)) or not 0 <= warmup < 1:
            raise ValueError(f"{type(self).__name__}(warmup={warmup!r}) is the share of steps whose lr ramps up: "
                             "a number in [0, 1), e.g. 0.05; 0 starts at the full lr.")
        for name, value in {"batch_size": batch_size, "checkpoint_every": checkpoint_every, "n_samples": n_samples}.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{type(self).__name__}({name}={value!r}) must be a positive integer.")
        if not isinstance(objective, Objective):
            raise TypeError(f"objective must be an lt_plugins Objective (e.g. lt.MomentMatching), got {type(objective).__name__}.")
        if getattr(objective, "takes_model", False) and not isinstance(objective, ModelObjective):
            raise TypeError(
                f"{type(objective).__name__} sets takes_model, which lt_plugins no longer reads: an objective called "
                "with the model, objective(model, batch_size), subclasses lt.ModelObjective."
            )
        family_model = generator if dense else wrapped_root(generator)
        adapter = adapter_for(family_model, None if dense else wrap_config(family_model).family)
        shape = as_latent_shape(latent_shape, latent_dim)
        if shape is None and not isinstance(objective, ModelObjective):
            shape = adapter.latent_shape(family_model)
            if shape is None:
                raise ValueError(no_latent_shape(type(self).__name__, family_model, adapter.family))
        if prior is not None and shape is None:
            raise ValueError(f"prior={prior!r} draws latents, but {type(objective).__name__} feeds the model itself: "
                             "leave prior=None here (a UNet's moment term takes it: DenoisingObjective(prior=...)).")
        self.call = LatentCall(shape, generate, prior) if shape is not None else None
        self.generator = generator
        self.objective = objective
        self.batch_size = batch_size
        if lr is None:
            lr = adapter.dense_lr if dense else adapter.search_lr
            logger.info("%s: Adam lr %g for the %s, the %s family's default (lr= to change it)",
                        type(self).__name__, lr, "weights" if dense else "scores", adapter.family)
        self.lr = lr
        self.betas = betas
        self.warmup = float(warmup)
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.checkpoint_every = checkpoint_every
        self.n_samples = n_samples
        self.seed = seed
        self.device = device
        self.mixed_precision = mixed_precision
        self.progress = progress
        self.callbacks = list(callbacks)
        self.sync_batchnorm = sync_batchnorm
        self.result = SearchResult()

    @property
    def latent_shape(self) -> tuple[int, ...] | None:
        """Shape of one latent (None for an objective that feeds the model itself)."""
        return self.call.latent_shape if self.call is not None else None

    @property
    def latent_dim(self) -> int | None:
        """Width of a flat latent (None when latents are not flat)."""
        shape = self.latent_shape
        return shape[0] if shape is not None and len(shape) == 1 else None

    @property
    def checkpoint_path(self) -> Path | None:
        return self.output_dir / CHECKPOINT_NAME if self.output_dir is not None else None

    def latents(self, step: int, batch: int, rank: int = 0, world_size: int = 1) -> torch.Tensor:
        """This process's slice of the global latent batch of ``step`` (CPU, float32)."""
        gen = keyed_generator(self.seed, "latent", str(step))
        return self.call.latents(batch * world_size, gen)[rank * batch : (rank + 1) * batch]

    @torch.no_grad()
    def sample(self, model: nn.Module | None = None, device: torch.device | None = None) -> torch.Tensor:
        """The sample grid's images, in eval mode, from draws fixed by ``seed``: a model objective's own
        sampler (`lt.ModelObjective.sample`, DDIM for UNets), else the latents through `LatentCall`."""
        model = model if model is not None else self.generator
        device = device if device is not None else next(model.parameters()).device
        draws = keyed_generator(self.seed, "latent", "samples")
        with _eval_mode(model):
            if isinstance(self.objective, ModelObjective):
                return self.objective.sample(model, self.n_samples, draws)
            return latent_sample(model, self.call, self.n_samples, draws, device)

    def _check_generator(self, generator: nn.Module) -> None:
        if not is_wrapped(generator):
            raise ValueError(
                "TicketSearch trains the scores of a wrapped generator (lt.wrap(model, config)); got an unwrapped "
                "one. Wrap it, or train its weights as the dense baseline with lt.DenseSearch."
            )

    def _trainable(self) -> list[nn.Parameter]:
        return score_parameters(self.generator)

    def _accelerator(self):
        from accelerate import Accelerator

        process_state(self.device)
        accelerator = Accelerator(cpu=asks_for_cpu(self.device), mixed_precision=self.mixed_precision)
        if accelerator.num_processes != world()[1]:
            raise RuntimeError(
                f"torch.distributed runs {world()[1]} processes but Accelerate sees {accelerator.num_processes}: "
                "Accelerate's state was created before the search without cpu=True on a machine with no GPU. "
                "Create it with Accelerator(cpu=True) / PartialState(cpu=True), or set ACCELERATE_USE_CPU=true."
            )
        return accelerator

    def _load_checkpoint(self, model, optimizer, scheduler, steps: int) -> int:
        start = 0
        found = self.checkpoint_path and load_checkpoint(self.checkpoint_path, run=run_record(self, model, steps),
                                                         steps=steps, dense=self.dense)
        if found:
            state, used = found
            restore_checkpoint(state, used, model=model, optimizer=optimizer, scheduler=scheduler,
                               objective=self.objective)
            self.result.losses = [float(v) for v in state["losses"]]
            start = int(state["step"])
        rank, size = world()
        if size > 1:  # every rank must continue from the same step, or the collectives fall out of step
            starts = torch.zeros(size, dtype=torch.float64, device=next(model.parameters()).device)
            starts[rank] = start
            starts = [int(s) for s in sum_over_processes_(starts).tolist()]
            if len(set(starts)) > 1:
                raise ValueError(
                    f"The processes found different checkpoints in {self.output_dir} (steps by rank: {starts}). "
                    "output_dir must be a folder that every process sees (a shared file system)."
                )
        return start

    def _save_checkpoint(self, model, optimizer, scheduler, step: int, steps: int) -> None:
        save_checkpoint(self.checkpoint_path, step=step, steps=steps, dense=self.dense,
                        run=run_record(self, model, steps), model=model, optimizer=optimizer, scheduler=scheduler,
                        objective=self.objective, losses=self.result.losses)

    def _train(self, real: Any, steps: int, resume: bool) -> tuple[nn.Module, torch.Tensor]:
        """Run the loop (see `TicketSearch.run`); return the trained model and its final sample grid."""
        import time

        from .data import load_images

        if not isinstance(steps, int) or steps < 1:
            raise ValueError(f"run(steps={steps!r}) must be a positive integer.")
        if resume and self.output_dir is None:
            raise ValueError("resume=True needs output_dir, where the checkpoint lives.")
        real = load_images(real)
        self._data_key = data_key(real)  # recorded in checkpoints
        accelerator = self._accelerator()
        rank, world_size = accelerator.process_index, accelerator.num_processes
        model = self.generator.to(accelerator.device)
        if isinstance(self.objective, ModelObjective):  # it checks the model against the data itself
            self.objective.prepare(real, accelerator.device)
            self.objective.check_model(model)
        else:
            self._check_shapes(model, real, accelerator.device)
            self.objective.prepare(real, accelerator.device)

        optimizer = torch.optim.Adam(self._trainable(), lr=self.lr, betas=self.betas)
        scheduler = warmup_cosine(optimizer, steps, self.warmup)
        start = self._load_checkpoint(model, optimizer, scheduler, steps) if resume else 0
        if not resume:
            self.result.losses = []
        # The scheduler is stepped by hand: Accelerate's wrapper would step it once per process.
        ddp_model, optimizer = accelerator.prepare(model, optimizer)
        writes = accelerator.is_main_process and self.output_dir is not None

        bar = tqdm(range(start, steps), initial=start, total=steps, desc=self._what,
                   disable=not (self.progress and accelerator.is_local_main_process))
        try:
            # Plain BatchNorm normalises over the global batch while the search runs (see sync_batchnorm).
            with global_batch_norm(model, self.sync_batchnorm and world_size > 1):
                began = time.perf_counter()
                for step in bar:
                    with accelerator.autocast():
                        loss = self._loss(ddp_model, step, rank, world_size, accelerator.device)
                    if int(sum_over_processes_(torch.isfinite(loss.detach()).float())) != world_size:
                        raise NonFiniteLossError(f"Loss is {loss.item()} at step {step}; the step was not applied. "
                                                 f"{self._resume_hint()}lower lr or check the objective's inputs.")
                    optimizer.zero_grad(set_to_none=True)
                    accelerator.backward(loss)
                    self._check_gradients(optimizer, step)
                    optimizer.step()
                    scheduler.step()
                    value = float(loss.detach())
                    self.result.losses.append(value)
                    bar.set_postfix(loss=f"{value:.4g}", refresh=False)
                    for callback in self.callbacks:
                        callback(StepInfo(step + 1, value, scheduler.get_last_lr()[0], model))
                    done = step + 1
                    if writes and (done % self.checkpoint_every == 0 or done == steps):
                        self._save_checkpoint(model, optimizer, scheduler, done, steps)
                        save_image_grid(self.sample(model), self.output_dir / "samples" / f"step_{done:06d}.png")
            self.result.seconds_per_step = (time.perf_counter() - began) / max(1, steps - start)
            accelerator.wait_for_everyone()
        finally:
            # Drop what this run prepared (DDP wrapper and its reducer, the optimizer) now rather
            # than at interpreter exit, after the process group. The group itself stays open for
            # the caller; `end_processes` closes it.
            bar.close()
            accelerator.unwrap_model(ddp_model, keep_fp32_wrapper=False)  # undo Accelerate's autocast patch
            del ddp_model, optimizer, scheduler
            accelerator.free_memory()
        samples = self.sample(model)
        if writes:
            save_image_grid(samples, self.output_dir / "samples.png")
        return model, samples

    def _loss(self, model: nn.Module, step: int, rank: int, world_size: int, device: torch.device) -> torch.Tensor:
        """This step's loss: a model objective is handed the model, an image objective this step's images."""
        if isinstance(self.objective, ModelObjective):
            return self.objective(model, self.batch_size)
        return self.objective(self.call(model, self.latents(step, self.batch_size, rank, world_size).to(device)))

    def _resume_hint(self) -> str:
        last = self.checkpoint_path if self.checkpoint_path and self.checkpoint_path.exists() else None
        return f"The last good checkpoint is {last} (resume=True continues from it); " if last else ""

    def _check_gradients(self, optimizer: torch.optim.Optimizer, step: int) -> None:
        """A non-finite gradient would make non-finite scores (and drop weights from the mask): stop before the step."""
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        if grads and not bool(torch.isfinite(torch.stack(torch._foreach_norm(grads))).all()):
            raise NonFiniteLossError(
                f"The gradient of the scores is NaN or infinite at step {step} although the loss is finite; the "
                f"step was not applied, so the scores stay finite. {self._resume_hint()}lower lr, or check the "
                "generator for operations with unbounded gradients."
            )

    def _check_shapes(self, model: nn.Module, real: torch.Tensor, device: torch.device) -> None:
        with torch.no_grad(), _eval_mode(model):
            fake = self.call.check(model, device)
        if tuple(fake.shape[1:]) != tuple(real.shape[1:]):
            raise ValueError(
                f"The generator makes images of shape {tuple(fake.shape[1:])} but the real images are "
                f"{tuple(real.shape[1:])}; resize the data (e.g. lt_plugins.data.load_mnist(image_size=...)) "
                "or change the generator's output size."
            )


class TicketSearch(SearchLoop):
    """Find a strong lottery ticket: train the scores of a wrapped generator against an objective.

    Args:
        generator: a model wrapped with `lt.wrap`, or a module of yours that holds one anywhere
            inside it. (The dense baseline, which trains the weights of an unwrapped model with
            the same loss, is `lt.DenseSearch`.)
        objective: an `lt.ImageObjective` (e.g. `lt.MomentMatching(features)`), which sees real data
            once, then scores generated images; or an `lt.ModelObjective` (e.g.
            `lt.DenoisingObjective` for UNets), which is handed the model itself.
        latent_dim: size of z, shorthand for ``latent_shape=(latent_dim,)``.
        latent_shape: shape of one latent; latents are drawn N(0, 1) with shape (batch, *latent_shape),
            e.g. ``(100, 1, 1)`` for a DCGAN that takes (N, 100, 1, 1). Default: what the model's family
            can tell (``z_dim`` of a StyleGAN, ``nz`` of ours). Not needed for a `lt.ModelObjective`:
            the search then calls ``objective(model, batch_size)`` and draws sample grids with
            ``objective.sample``.
        generate: ``generate(model, z)`` -> images in [-1, 1], used for every forward of the search,
            the sample grids and the ticket's metrics; default ``model(z)``. E.g.
            ``lambda G, z: G(z, None, noise_mode="const")`` for StyleGAN2-ADA's ``G(z, c)``. A
            ``"package.module:function"`` path works too and is recorded in the ticket.
        prior: draw the latents from a `lt_plugins.generate.LatentMixture` instead of N(0, 1), for the
            search, its sample grids and the ticket, which records it (``ticket.call.latents(n, generator)``
            draws from it again). ``LatentMixture(100)`` took the demo's 10% DCGAN ticket from 69.6% to
            84.0% recognisable digits (README, benchmarks/quality.py).
        batch_size: latents per step per process (the global batch is this × processes;
            use ``batch_size // processes`` to keep a single-process run's global batch).
        lr: Adam learning rate (default: the generator's family's ``search_lr`` for scores or
            ``dense_lr`` for weights, `lt_plugins.adapters`; 0.1 and 3e-3 for networks with
            normalisation layers such as DCGAN, 3e-4 for StyleGAN, see benchmarks/).
        betas: Adam betas; β1 = 0.5 as in the reference configuration.
        warmup: share of the steps over which the lr ramps up linearly before its cosine decay
            (`lt_plugins.schedule.warmup_cosine`). At the full score lr from the first step, a
            DCGAN ticket could fall into a constant image whose saturated tanh passes no gradient,
            and stay there (one seed in nine of benchmarks/quality.py's grid, FD 5,266); 5% warmup
            drew digits there.
        dense: deprecated; ``TicketSearch(..., dense=True)`` warns and gives ``lt.DenseSearch(...)``, the
            dense baseline, whose ``run()`` returns the trained module.
        output_dir: where checkpoints and sample grids go (None: nothing is written).
        checkpoint_every: steps between atomic checkpoints (and sample grids).
        n_samples: images in each sample grid, from latents fixed by ``seed``.
        seed: seed of the latent stream (step ``t`` always sees the same latents).
        device: "cpu", "cuda", "cuda:1", ... (default: what Accelerate picks; under a
            multi-process launch, each process's own GPU whatever the index).
        mixed_precision: "no", "bf16" or "fp16", passed to Accelerate (default: what
            ``accelerate launch --mixed_precision`` / ``accelerate config`` set, else "no").
        progress: show a progress bar on the main process.
        callbacks: called after each step with a `StepInfo` (on every process).
        sync_batchnorm: under several processes, BatchNorm layers in training mode normalise
            with the statistics of the global batch, as one process would (like
            `torch.nn.SyncBatchNorm`, on CPU too). False keeps per-process statistics:
            fewer collectives, but a different function than the single-process one.

    Under several processes only the main process writes (checkpoints, sample grids) and
    shows the progress bar; every process returns the same ticket. See docs/multi_gpu.md.

    Example:
        >>> import torch, lt_plugins as lt
        >>> from lt_plugins.models import DCGANGenerator
        >>> gen = lt.wrap(DCGANGenerator(nz=8, ngf=8, nc=1, image_size=16), lt.TicketConfig(density=0.2))
        >>> objective = lt.MomentMatching(lambda x: [x.flatten(1)], cache=False)
        >>> search = lt.TicketSearch(gen, objective, latent_dim=8, batch_size=16, progress=False)
        >>> ticket = search.run(torch.rand(64, 1, 16, 16) * 2 - 1, steps=3)
        >>> len(search.result.losses)
        3
    """


    def __new__(cls, *args: Any, dense: bool = False, **settings: Any) -> SearchLoop:
        if dense:  # the former spelling of the dense baseline: still works, as a DenseSearch
            warnings.warn(
                "TicketSearch(dense=True) is deprecated: TicketSearch.run() returns a Ticket. Use "
                "lt.DenseSearch(generator, objective, ...), whose run() returns the trained module.",
                FutureWarning, stacklevel=2,
            )
            return DenseSearch(*args, **settings)
        return super().__new__(cls)

    def __init__(self, generator: nn.Module, objective: Objective, latent_dim: int | None = None, *,
                 dense: bool = False, **settings: Any) -> None:
        super().__init__(generator, objective, latent_dim, **settings)

    def run(self, real: Any, steps: int = 2000, resume: bool = False) -> Ticket:
        """Search for ``steps`` steps against ``real`` images; return the `lt.Ticket`.

        ``real`` is an image tensor (N, C, H, W) in [-1, 1], a Dataset, an image folder or
        "mnist" (see `lt_plugins.data.load_images`). With ``resume=True`` the search
        continues from ``output_dir``'s checkpoint exactly where it stopped (same result as
        an uninterrupted run).
        """
        from .ticket import Ticket

        model, samples = self._train(real, steps, resume)
        return Ticket.from_model(wrapped_root(model), objective=self.objective.describe(), samples=samples,
                                 call=self.call)


class DenseSearch(SearchLoop):
    """The dense baseline: train the weights of an unwrapped generator with the same loss and loop as `TicketSearch`.

    Takes `TicketSearch`'s arguments; ``generator`` is an ordinary model (e.g. ``lt.unwrap`` of a
    wrapped one, for the same seeded start), every weight of which that requires grad is
    trained; ``lr`` defaults to the family's ``dense_lr``. ``run()`` returns the trained module.

    Example:
        >>> import torch, lt_plugins as lt
        >>> from lt_plugins.models import DCGANGenerator
        >>> gen = DCGANGenerator(nz=8, ngf=8, nc=1, image_size=16)
        >>> objective = lt.MomentMatching(lambda x: [x.flatten(1)], cache=False)
        >>> trained = lt.DenseSearch(gen, objective, latent_dim=8, batch_size=16, progress=False).run(
        ...     torch.rand(64, 1, 16, 16) * 2 - 1, steps=2)
        >>> trained is gen
        True
    """

    dense = True
    _what = "dense training"

    def _check_generator(self, generator: nn.Module) -> None:
        if is_wrapped(generator):
            raise ValueError(
                "DenseSearch (the dense=True baseline) trains the weights of an unwrapped generator; got a wrapped one "
                "(lt.wrap). Train its scores with lt.TicketSearch, or lt.unwrap(model) it first."
            )

    def _trainable(self) -> list[nn.Parameter]:
        params = [p for p in self.generator.parameters() if p.requires_grad]
        if not params:
            raise ValueError("DenseSearch trains weights, but the generator has no parameter that requires grad.")
        return params

    def run(self, real: Any, steps: int = 2000, resume: bool = False) -> nn.Module:
        """Train for ``steps`` steps against ``real`` images (as `TicketSearch.run`); return the trained module."""
        return self._train(real, steps, resume)[0]
