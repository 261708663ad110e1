"""Reference generators of each family the package supports, written as third parties write them."""

from .dcgan import DCGANGenerator
from .stylegan import StyleGANGenerator

__all__ = ["DCGANGenerator", "StyleGANGenerator"]
