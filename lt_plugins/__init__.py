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
from .data import ImageFolder, load_images, load_mnist
from .errors import LTPluginsError
from .features import TimmFeatures, efficientnet_lite0, feature_net, mnist_feature_net, random_resnet18, vgg19_bn
from .generate import LatentMixture
from .masking import Density, density, masks, merge, score_parameters, unwrap, wrap
from .metrics import class_coverage, evaluate, inception_metrics, recognisability
from .objectives import MMD, DenoisingObjective, ImageObjective, ModelObjective, MomentMatching, Objective
from .search import DenseSearch, NonFiniteLossError, StepInfo, TicketSearch
from .ticket import Ticket

__version__ = "0.1.0"

__all__ = [
    "BaseModel",
    "DenoisingObjective",
    "DenseSearch",
    "Density",
    "ImageFolder",
    "ImageObjective",
    "LTPluginsError",
    "LatentMixture",
    "MMD",
    "ModelObjective",
    "MomentMatching",
    "NonFiniteLossError",
    "Objective",
    "StepInfo",
    "Ticket",
    "TimmFeatures",
    "TicketConfig",
    "TicketSearch",
    "class_coverage",
    "density",
    "efficientnet_lite0",
    "evaluate",
    "feature_net",
    "inception_metrics",
    "load_images",
    "load_mnist",
    "masks",
    "merge",
    "mnist_feature_net",
    "random_resnet18",
    "recognisability",
    "score_parameters",
    "unwrap",
    "vgg19_bn",
    "wrap",
]
