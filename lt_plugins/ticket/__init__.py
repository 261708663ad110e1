"""`Ticket`: mask bits + seed + config -- saved, loaded, shared on the Hub, and applied with checks.

A ticket folder (the same on disk and on the Hub):

- ``ticket_config.json``: format version, the lt_plugins/torch/python versions and platform
  that made it, the model spec, the `TicketConfig` (seed, init, density, scope, targets),
  the pretrained base of a ticket on one (Hub repo id, commit sha, subfolder; see
  `lt_plugins.base_model`), one entry per masked tensor (name, shape, dtype, kept count,
  sha256 fingerprint of its regenerated weights, weight scale, how its mask is coded), the
  size and sha256 of every binary file, objective and metrics.
- ``masks.safetensors``: one uint8 tensor per masked weight, its mask coded as its target
  records: Golomb-Rice coded gaps (about 0.48 bits a weight at 10% density) or packed bits
  where coding does not pay (`lt_plugins.ticket.format`).
- ``remainder.safetensors``: every other state_dict entry of the model, as values (biases,
  norm parameters, running statistics, learned constants, noise strengths).
- ``kept_weights.safetensors`` (portable tickets only): the values of the kept weights,
  per tensor in mask order, for rebuilds where the seed's random stream differs.
- ``README.md``: a model card; ``samples.webp``, a thumbnail of at most 40 kB, when samples
  were given (formats 1 and 2: ``samples.png``, the whole grid).

Loading reads JSON and safetensors only (nothing is unpickled) and checks every size, hash,
shape and bit count before a model is touched. The modules: `format` (names, mask coding,
manifest readers), `core` (the `Ticket`), `rebuild` (`Ticket.apply`), `card` (model card and
thumbnail), `hub` (where a ticket is read from, upload).
"""

from .card import image_grid, thumbnail
from .core import Ticket
from .format import (
    CONFIG_NAME, FORMAT, FORMAT_VERSION, MASKS_NAME, SAMPLES_NAME, TICKET_FILES, TicketError, decode_mask,
    encode_mask, expected_kept, pack_mask, unpack_mask,
)
from .hub import looks_local
from ..masking import SCORE_FLOOR  # kept here too: lt_plugins.ticket.SCORE_FLOOR was its first home

__all__ = [
    "CONFIG_NAME", "FORMAT", "FORMAT_VERSION", "MASKS_NAME", "SAMPLES_NAME", "SCORE_FLOOR", "TICKET_FILES", "Ticket",
    "TicketError", "decode_mask", "encode_mask", "expected_kept", "image_grid", "looks_local", "pack_mask",
    "thumbnail", "unpack_mask",
]
