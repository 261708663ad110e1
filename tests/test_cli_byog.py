"""`lt-plugins search --model ... --latent-shape ... --generate ...`, then eval and sample, on generators of
public-code patterns (tests/byog_models.py): nothing of the user's is a class the package knows."""

from __future__ import annotations

import json

import pytest
import torch

from lt_plugins import Ticket
from lt_plugins.cli import main


pytestmark = pytest.mark.usefixtures("untrained_feature_net")  # tests/conftest.py


def stylegan2_ada_call(G, z):
    """What a user writes for StyleGAN2-ADA's G(z, c): the function --generate names."""
    return G(z, None, noise_mode="const")


QUICK = ["--steps", "3", "--batch-size", "8", "--eval-samples", "40", "--no-progress", "--device", "cpu"]


def test_search_eval_and_sample_a_users_stylegan2_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["search", "--model", "byog_models:EqualizedStyleGAN2", "--model-kwargs", '{"z_dim": 16, "w_dim": 16}',
                 "--generate", f"{__name__}:stylegan2_ada_call", "--out", str(out), *QUICK]) == 0
    printed = capsys.readouterr().out
    assert "FD ticket (10% of weights)" in printed
    ticket = Ticket.from_pretrained(out / "ticket")
    # The decorated class is recorded as the importable one, with the constructor arguments it kept.
    assert ticket.spec["family"] == "stylegan"
    assert ticket.spec["class"] == "byog_models.EqualizedStyleGAN2"
    assert ticket.spec["config"]["z_dim"] == 16
    assert ticket.call.latent_shape == (16,) and ticket.call.generate == f"{__name__}:stylegan2_ada_call"
    assert ticket.weight_scales  # equalized-lr layers keep their constructor's scale, and the ticket says so

    # Without consent the user's class is not imported; with it, eval and sample rebuild and run it.
    assert main(["eval", str(out / "ticket"), "--n", "40", "--device", "cpu"]) == 1
    assert "--allow-remote-code" in capsys.readouterr().err
    assert main(["eval", str(out / "ticket"), "--n", "40", "--device", "cpu", "--allow-remote-code"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["n_fake"] == 40 and metrics["fd"] > 0
    grid = tmp_path / "grid.png"
    assert main(["sample", str(out / "ticket"), "--n", "4", "--out", str(grid), "--device", "cpu",
                 "--allow-remote-code"]) == 0
    assert grid.stat().st_size > 0


def test_a_dcgan_taking_4d_latents_is_searched_with_latent_shape(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["search", "--model", "byog_models:make_tutorial_dcgan", "--model-kwargs", '{"nz": 16, "ngf": 8}',
            "--out", str(out), *QUICK]
    assert main(args) == 1  # it keeps no nz: the search cannot guess that z is (N, 16, 1, 1)
    err = capsys.readouterr().err
    assert "latent_shape=(nz, 1, 1)" in err and "--latent-shape" in err
    assert main([*args, "--latent-shape", "16", "1", "1"]) == 0
    assert Ticket.from_pretrained(out / "ticket").call.latent_shape == (16, 1, 1)


def test_searching_a_unet_from_the_command_line_names_the_python_route(tmp_path, capsys):
    """A community UNet (forward(x, time)) has no latents: the refusal says what it is and how to search it,
    not that a latent size is missing."""
    assert main(["search", "--model", "byog_models:TinyUNet", "--model-kwargs", '{"dim": 4, "dim_mults": [1, 2]}',
                 "--out", str(tmp_path / "o"), *QUICK]) == 1
    err = capsys.readouterr().err
    assert "TinyUNet is a denoiser (the unet family, forward(x, t))" in err
    assert "lt.DenoisingObjective()" in err and "search a UNet from Python" in err
    assert "latent_dim" not in err and "Traceback" not in err


def test_eval_and_sample_a_diffusers_ticket(tmp_path, capsys):
    from diffusers import UNet2DModel

    import lt_plugins as lt

    unet = UNet2DModel(sample_size=16, in_channels=1, out_channels=1, block_out_channels=(8, 8), norm_num_groups=4,
                       down_block_types=("DownBlock2D",) * 2, up_block_types=("UpBlock2D",) * 2)
    unet = lt.wrap(unet, lt.TicketConfig(density=0.3))
    search = lt.TicketSearch(unet, lt.DenoisingObjective(sample_steps=2), batch_size=4, n_samples=4, progress=False)
    search.run(lt.load_mnist(limit=32, image_size=16), steps=2).save_pretrained(tmp_path / "unet")
    assert main(["eval", str(tmp_path / "unet"), "--n", "12", "--device", "cpu", "--data", "mnist"]) == 0
    assert json.loads(capsys.readouterr().out)["n_fake"] == 12
    grid = tmp_path / "unet.png"
    assert main(["sample", str(tmp_path / "unet"), "--n", "4", "--out", str(grid), "--device", "cpu"]) == 0
    assert grid.stat().st_size > 0


def test_constructor_arguments_that_do_not_build_the_model_get_one_clear_line(tmp_path, capsys):
    assert main(["search", "--model-kwargs", '{"nz": -1}', "--out", str(tmp_path / "o"), *QUICK]) == 1
    err = capsys.readouterr().err
    assert "--model-kwargs {'nz': -1} do not build DCGANGenerator" in err and "Traceback" not in err


def test_eval_and_sample_a_config_less_unet_built_with_other_arguments(tmp_path, capsys):
    """lucidrains' Unet pattern keeps no config: its ticket records the sample shape it took from the data,
    not its constructor arguments, which --model-kwargs gives."""
    import lt_plugins as lt
    from byog_models import TinyUNet, cosine_beta_schedule

    torch.manual_seed(0)
    unet = lt.wrap(TinyUNet(dim=4, dim_mults=(1, 2)), lt.TicketConfig(density=0.3, scale_fan=False))
    objective = lt.DenoisingObjective(cosine_beta_schedule(1000), sample_steps=2)
    search = lt.TicketSearch(unet, objective, batch_size=4, n_samples=4, progress=False, device="cpu")
    search.run(lt.load_mnist(limit=32), steps=2).save_pretrained(tmp_path / "unet")
    ticket = ["eval", str(tmp_path / "unet"), "--n", "12", "--device", "cpu", "--allow-remote-code"]
    assert main(ticket) == 1
    err = capsys.readouterr().err
    assert "records no constructor arguments for byog_models.TinyUNet" in err and "--model-kwargs" in err
    assert main([*ticket, "--model-kwargs", '{"dim": 4, "dim_mults": [1, 2]}']) == 0
    assert json.loads(capsys.readouterr().out)["n_fake"] == 12
    with pytest.raises(SystemExit):
        main([*ticket, "--model-kwargs", "[4]"])
    assert "is a JSON list; write an object" in capsys.readouterr().err
