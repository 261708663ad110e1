"""lt_plugins: strong lottery tickets in generators, found by moment matching.

Example:
    >>> import torch, lt_plugins as lt
    >>> from lt_plugins.models import DCGANGenerator
    >>> gen = lt.wrap(DCGANGenerator(nz=16, ngf=8, nc=1, image_size=32), lt.TicketConfig(density=0.1))
    >>> gen(torch.randn(2, 16)).shape
    torch.Size([2, 1, 32, 32])
"""

from .base_model import BaseModel
from .config import TicketConfig
from .data import load_images, load_mnist
from .features import TimmFeatures, mnist_feature_net
from .masking import Density, density, masks, merge, score_parameters, unwrap, wrap
from .metrics import evaluate
from .objectives import MMD, DenoisingObjective, MomentMatching, Objective
from .search import NonFiniteLossError, StepInfo, TicketSearch
from .ticket import Ticket

__version__ = "0.1.0"

__all__ = [
    "BaseModel",
    "DenoisingObjective",
    "Density",
    "MMD",
    "MomentMatching",
    "NonFiniteLossError",
    "Objective",
    "StepInfo",
    "Ticket",
    "TimmFeatures",
    "TicketConfig",
    "TicketSearch",
    "density",
    "evaluate",
    "load_images",
    "load_mnist",
    "masks",
    "merge",
    "mnist_feature_net",
    "score_parameters",
    "unwrap",
    "wrap",
]
