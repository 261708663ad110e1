"""Reference generators of each family the package supports, written as third parties write them."""

from .dcgan import DCGANGenerator

__all__ = ["DCGANGenerator"]
