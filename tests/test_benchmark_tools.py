"""The sweep tools in benchmarks/: a grid entry runs through the CLI's search, and its curves add up."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest
import torch
from scripts import load_script

import lt_plugins as lt
from lt_plugins.checkpoints import checkpoint_digest, read_checkpoint
from lt_plugins.recipes import DIFFUSION_MOMENT_FEATURES


def _load(name: str):
    return load_script(Path("benchmarks") / f"{name}.py")


def test_a_grid_entry_runs_with_the_grids_own_key_names():
    task = {"family": "dcgan", "density": 0.3, "seed": 0, "steps": 3, "ema": 0.9, "batch": 8, "scope": "global",
            "exclude": ["main.0"], "eval_at": [2], "model_kwargs": {"ngf": 8}, "eval_samples": 40}
    threads = torch.get_num_threads()
    try:
        result = _load("sweep").run(task)
    finally:
        torch.set_num_threads(threads)  # a sweep worker runs one thread; this process goes on
    assert result["density"] == 0.3 and result["exclude"] == ["main.0"]  # the task comes back as given
    assert set(result["evals"]) == {2} and math.isfinite(result["fd"]) and result["seconds"] > 0


def test_curves_average_seeds_per_variant_and_step():
    curves = _load("sweep_curves")
    runs = [
        {"family": "dcgan", "density": 0.1, "lr": 0.1, "steps": 100, "seed": 0, "fd": 10.0, "evals": {"50": 30.0}},
        {"family": "dcgan", "density": 0.1, "lr": 0.1, "steps": 100, "seed": 1, "fd": 20.0, "evals": {"50": 50.0}},
        {"family": "dcgan", "density": None, "lr": 0.003, "steps": 100, "seed": 0, "fd": 7.0, "evals": {}},
        {"family": "dcgan", "density": None, "lr": 0.003, "steps": 100, "seed": 1, "error": "Traceback ..."},
    ]
    found = curves.curves(runs)
    assert found == {"dcgan 10% lr 0.1 steps 100": {50: [30.0, 50.0], 100: [10.0, 20.0]},
                     "dcgan dense lr 0.003 steps 100": {100: [7.0]}}
    table = curves.table(found)
    assert "15.0 ±   7.1 (2)" in table and "40.0 ±  14.1 (2)" in table


def test_quality_table_measures_every_cell_and_a_rerun_skips_finished_runs(tmp_path, monkeypatch):
    argv = ["quality.py", "--families", "dcgan", "--densities", "1", "0.1", "--seeds", "0", "--steps", "2",
            "--batch", "8", "--eval-samples", "40", "--model-kwargs", '{"ngf": 8}', "--scope", "global",
            "--out", str(tmp_path)]
    monkeypatch.setattr("sys.argv", argv)
    threads = torch.get_num_threads()
    try:
        quality = _load("quality")
        quality.main()
        lines = (tmp_path / "quality.jsonl").read_text().splitlines()
        table = (tmp_path / "quality.txt").read_text()
        assert len(lines) == 2 and "error" not in lines[0] + lines[1]
        assert [row.split()[1] for row in table.splitlines()[2:]] == ["-", "dense", "10%"]  # real, then the cells
        assert "global top-k" in table.splitlines()[0] and json.loads(lines[1])["scope"] == "global"
        assert (tmp_path / "quality_samples.png").stat().st_size > 0
        quality.main()
    finally:
        torch.set_num_threads(threads)
    assert (tmp_path / "quality.jsonl").read_text().splitlines() == lines  # nothing ran twice


def test_unet_quality_measures_every_cell_at_every_sampler_length(tmp_path, monkeypatch):
    argv = ["quality_unet.py", "--densities", "1", "0.5", "--seeds", "0", "--steps", "2", "--batch", "4",
            "--sample-steps", "1", "2", "--eval-samples", "20", "--out", str(tmp_path)]
    monkeypatch.setattr("sys.argv", argv)
    threads = torch.get_num_threads()
    try:
        _load("quality_unet").main()
    finally:
        torch.set_num_threads(threads)
    rows = (tmp_path / "quality_unet.jsonl").read_text().splitlines()
    assert len(rows) == 2 and "error" not in rows[0] + rows[1]
    table = (tmp_path / "quality_unet.txt").read_text().splitlines()
    assert [line.split()[:2] for line in table[2:]] == [["real", "-"], ["unet/1", "dense"], ["unet/2", "dense"],
                                                        ["unet/1", "50%"], ["unet/2", "50%"]]
    assert (tmp_path / "quality_unet_samples.png").stat().st_size > 0
    assert (tmp_path / "quality_unet_runs" / "50_0" / "checkpoint.pt").is_file()  # where a killed run resumes


def test_unet_quality_adds_the_moment_term_on_few_step_samples_when_asked(tmp_path, monkeypatch):
    quality_unet = _load("quality_unet")
    task = {"seed": 0, "batch": 4, "moment_weight": 1.0, "moment_steps": 2, "moment_features": "mnist"}
    unet = quality_unet.families()["unet"].build()
    real = lt.load_images("mnist")[:16]
    losses = []
    for objective in (quality_unet.objective_of({**task, "moment_weight": 0.0}), quality_unet.objective_of(task)):
        objective.prepare(real, torch.device("cpu"))
        torch.manual_seed(0)
        losses.append(objective(unet, 4))
    assert quality_unet.objective_of({"seed": 0}).moments is None
    assert losses[1] > losses[0]  # the same DDPM batch (one seed), plus the moment term on 2-step samples
    (losses[1] - losses[0]).backward()  # the moment term alone: the DDPM terms are the same
    assert unet.conv_in.weight.grad.abs().sum() > 0  # differentiated through the sampler

    argv = ["quality_unet.py", "--densities", "0.5", "--seeds", "0", "--steps", "2", "--batch", "4", "--sample-steps",
            "1", "--eval-samples", "20", "--moment-weight", "0.5", "--moment-steps", "2", "--out", str(tmp_path)]
    monkeypatch.setattr("sys.argv", argv)
    threads = torch.get_num_threads()
    try:
        quality_unet.main()
    finally:
        torch.set_num_threads(threads)
    row = json.loads((tmp_path / "quality_unet.jsonl").read_text())
    assert (row["moment_weight"], row["moment_steps"]) == (0.5, 2)
    assert f"+ 0.5 x moment matching of {DIFFUSION_MOMENT_FEATURES} on 2-step DDIM samples" in (
        (tmp_path / "quality_unet.txt").read_text().splitlines()[0])


def _stop_after_step_1(checkpoint: Path) -> dict:
    """Rewrites the finished run's ``checkpoint`` (digest recomputed) as if it was killed after step 1;
    returns the finished state."""
    state = read_checkpoint(checkpoint)
    killed = {**state, "step": 1, "losses": state["losses"][:1]}
    torch.save({**killed, "sha256": checkpoint_digest(killed)}, checkpoint)
    return state


def test_a_second_unet_stage_starts_from_the_first_stages_scores_and_refuses_an_unfinished_one(tmp_path, monkeypatch):
    quality_unet = _load("quality_unet")
    common = ["--densities", "0.5", "--seeds", "0", "--batch", "4", "--sample-steps", "1", "--eval-samples", "20"]
    first, second = tmp_path / "first", tmp_path / "second"
    threads = torch.get_num_threads()
    try:
        monkeypatch.setattr("sys.argv", ["quality_unet.py", *common, "--steps", "2", "--out", str(first)])
        quality_unet.main()
        # lr 1e-12: one step of the second stage leaves the scores where they started
        argv = ["quality_unet.py", *common, "--steps", "1", "--lr", "1e-12", "--init-from", str(first), "--out"]
        monkeypatch.setattr("sys.argv", [*argv, str(second)])
        quality_unet.main()
        state = _stop_after_step_1(first / "quality_unet_runs" / "50_0" / "checkpoint.pt")
        monkeypatch.setattr("sys.argv", [*argv, str(tmp_path / "third")])
        with pytest.raises(ValueError, match="stopped at step 1 of 2"):
            quality_unet.main()
    finally:
        torch.set_num_threads(threads)
    row = json.loads((second / "quality_unet.jsonl").read_text())
    assert "error" not in row and row["init_from"] == str(first / "quality_unet_runs" / "50_0")
    scores = {k: v for k, v in state["generator"].items() if k.endswith("scores")}
    started = read_checkpoint(second / "quality_unet_runs" / "50_0" / "checkpoint.pt")["generator"]
    assert scores and all(torch.allclose(started[k], v) for k, v in scores.items())
    fresh = quality_unet.fresh(quality_unet.families()["unet"], 0.5, 0).state_dict()
    assert not all(torch.equal(fresh[k], v) for k, v in scores.items())  # the first stage moved them
    assert "scores from the finished runs of" in (second / "quality_unet.txt").read_text().splitlines()[0]


def test_masks_over_the_trained_unet_and_its_magnitude_pruning_are_measured_side_by_side(tmp_path, monkeypatch):
    common = ["--sample-steps", "1", "--eval-samples", "20", "--out", str(tmp_path)]
    threads = torch.get_num_threads()
    pruned_unet = _load("pruned_unet")
    try:
        monkeypatch.setattr("sys.argv", ["pruned_unet.py", *common])
        with pytest.raises(FileNotFoundError, match="python benchmarks/quality_unet.py --densities 1 --seeds 0"):
            pruned_unet.main()
        # the base trained with a moment term and a prior: the masks over it are searched with the same objective
        monkeypatch.setattr("sys.argv", ["quality_unet.py", "--densities", "1", "--seeds", "0", "--steps", "2",
                                         "--batch", "4", "--prediction-type", "sample", "--moment-weight", "0.5",
                                         "--moment-steps", "1", "--moment-features", "mnist",
                                         "--latent-components", "3", *common])
        _load("quality_unet").main()
        monkeypatch.setattr("sys.argv", ["pruned_unet.py", "--densities", "0.5", "--steps", "2", *common])
        pruned_unet.main()
    finally:
        torch.set_num_threads(threads)
    table = (tmp_path / "pruned_unet.txt").read_text().splitlines()
    assert [line.split()[:2] for line in table[2:]] == [["real", "-"], ["trained/1", "dense"], ["magnitude/1", "50%"],
                                                        ["ticket/1", "50%"]]
    assert "DDPM denoising (sample, 1000 linear steps) + 0.5 x moment matching of mnist on 1-step" in table[0]
    rows = [json.loads(line) for line in (tmp_path / "pruned_unet.jsonl").read_text().splitlines()]
    assert [row["family"] for row in rows] == ["trained", "magnitude", "ticket"]  # the searches run last
    ticket = rows[-1]
    assert (ticket["batch"], ticket["prediction_type"], ticket["moment_weight"], ticket["latent_components"]) == (
        4, "sample", 0.5, 3)
    assert pruned_unet.objective_of(ticket).prior == lt.LatentMixture(3, ticket["latent_separation"], seed=0)
    assert (tmp_path / "pruned_unet_samples.png").stat().st_size > 0
    checkpoint = tmp_path / "quality_unet_runs" / "dense_0" / "checkpoint.pt"
    base = pruned_unet.trained_base(checkpoint)
    targets = lt.masks(lt.wrap(copy.deepcopy(base), lt.TicketConfig(weight_init="keep")))
    weights = dict(pruned_unet.magnitude_pruned(base, 0.5).named_parameters())
    for name in targets:
        assert abs(float((weights[name] != 0).float().mean()) - 0.5) < 0.01, name
    _stop_after_step_1(checkpoint)
    with pytest.raises(ValueError, match="stopped at step 1 of 2"):
        pruned_unet.base_run(tmp_path, 0)


def test_unet_quality_passes_the_prediction_type_and_the_noise_prior_to_the_objective():
    quality_unet = _load("quality_unet")
    task = {"seed": 3, "batch": 4, "moment_weight": 1.0, "moment_steps": 2, "moment_features": "mnist",
            "prediction_type": "sample", "latent_components": 7, "latent_separation": 0.6}
    objective = quality_unet.objective_of(task)
    assert objective.prediction_type == "sample"
    assert objective.prior == lt.LatentMixture(7, 0.6, seed=3)
    assert quality_unet.objective_of({"seed": 0}).prediction_type == "epsilon"
    assert quality_unet.objective_of({**task, "latent_components": 0}).prior is None
