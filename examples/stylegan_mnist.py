"""Find a strong lottery ticket in a StyleGAN2-style generator on MNIST: no weight is trained.

The generator's weights -- mapping MLP, modulated convolutions, style affines, toRGB -- are
drawn from a seed and frozen; a score per weight is trained so that the top `--density` of
each layer, alone, makes the features of generated digits match those of real ones (moment
matching). The modulated convolutions call F.conv2d on ``self.weight`` themselves: the masks
reach them through torch.nn.utils.parametrize, with no change to the model's code. The ticket
(mask bits + seed) is saved, optionally pushed to the Hub, rebuilt from disk, and sampled; FD
is measured with a feature network trained from another seed than the one the loss matched.

    python examples/stylegan_mnist.py                      # a few minutes on a laptop CPU
    python examples/stylegan_mnist.py --density 0.3 --steps 600 --out out/stylegan30
    python examples/stylegan_mnist.py --push me/stylegan-mnist-10pct
"""

from __future__ import annotations

import sys
from pathlib import Path

from lt_plugins.models import StyleGANGenerator

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the search script itself is dcgan_mnist.py's
from dcgan_mnist import search_example  # noqa: E402

NZ = 64


def make_generator() -> StyleGANGenerator:
    """The third-party network: mapping MLP, modulated convs, style affines and toRGB all get masks."""
    return StyleGANGenerator(z_dim=NZ, w_dim=64, img_resolution=32, img_channels=1, channel_max=64)


def main(argv: list[str] | None = None) -> float:
    return search_example(make_generator, NZ, argv, __doc__, "out/stylegan_mnist")


if __name__ == "__main__":
    main()
