"""Losses the ticket search minimises: moment matching, its MMD form, and denoising for UNets."""

from .base import Objective
from .mmd import MMD
from .moments import MomentMatching

__all__ = ["MMD", "MomentMatching", "Objective"]
