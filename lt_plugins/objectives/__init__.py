"""Losses the ticket search minimises: moment matching, its MMD form, and denoising for UNets."""

from .base import ImageObjective, ModelObjective, Objective
from .denoising import DenoisingObjective
from .mmd import MMD
from .moments import MomentMatching

__all__ = ["DenoisingObjective", "ImageObjective", "MMD", "ModelObjective", "MomentMatching", "Objective"]
