"""Write a tiny DCGAN ticket with this checkout's lt_plugins, and the outputs it must give.

Run on the commit that last wrote a format (v1: a775edb, v2: fec9fc8), from that checkout:
``PYTHONPATH=$PWD python tests/data/tickets/make_fixture.py tests/data/tickets/v2``.
"""

import sys
from pathlib import Path

import torch
from safetensors.torch import save_file


def main(out: Path) -> None:
    import lt_plugins as lt
    from lt_plugins.models import DCGANGenerator
    from lt_plugins.ticket import Ticket

    torch.manual_seed(0)
    gen = lt.wrap(DCGANGenerator(nz=8, ngf=8, nc=3, image_size=16), lt.TicketConfig(density=0.1, seed=7))
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for scores in lt.score_parameters(gen):
            scores.copy_(torch.randn(scores.shape, generator=g))
    gen.eval()
    z = torch.randn(4, 8, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        images = gen(z)
    ticket = Ticket.from_model(gen, metrics={"fd": 12.5}, samples=images, objective="moment_matching")
    ticket.save_pretrained(out / "ticket")
    save_file({"z": z, "images": images.contiguous()}, out / "expected.safetensors")
    print(out, images.shape)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
