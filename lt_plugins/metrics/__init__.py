"""Sample-quality metrics in the feature space of any network.

`frechet_distance` is FID's formula; it is only "FID" with Inception-v3 features, so
`evaluate` reports it as ``fd`` together with the feature network and the sample counts
it used. `prdc` gives precision, recall, density and coverage (Naeem et al., 2020) with
k-nearest-neighbour balls, computed in chunks so 10k × 10k fits in memory. Both run
with any feature network and need nothing beyond scipy and torch. For figures that can be
set beside published ones, `inception_metrics` computes Inception FID and KID through
torchmetrics and torch-fidelity, the optional ``[fid]`` extra, with the standard
FID-Inception weights.
"""

from .distances import ArrayLike, frechet_distance, frechet_distance_from_stats, gaussian_fit, prdc
from .evaluation import embed, evaluate, generated, latent_call, real_statistics
from .inception import _as_uint8_rgb, _random_fid_inception_state, inception_metrics
from .recognition import RECOGNISABLE_THRESHOLD, class_coverage, recognisability

__all__ = [
    "RECOGNISABLE_THRESHOLD", "ArrayLike", "class_coverage", "embed", "evaluate", "frechet_distance",
    "frechet_distance_from_stats", "gaussian_fit", "generated", "inception_metrics", "latent_call", "prdc",
    "real_statistics", "recognisability",
]
