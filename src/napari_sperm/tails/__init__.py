"""Con2Dis tail clustering: split a mask of flagella into tail instances and pair them with heads.

Follows the structure of SpeHeaTal's Con2Dis (connectivity, conformity, distance) with its published
weaknesses fixed: direction vectors from local line fits, best-first matching through every junction,
thresholds scaled to the tail width, and no all-pairs pixel distances. See ``docs/con2dis.md``.

Examples
--------
>>> from napari_sperm.tails import cluster_tails
>>> result = cluster_tails(mask, heads)            # doctest: +SKIP
>>> labels = result.labels()                       # doctest: +SKIP
"""

from .con2dis import cluster_tails, iter_cluster_tails
from .params import Con2DisParams
from .results import MergeDecision, TailClustering, TailInstance

__all__ = [
    "Con2DisParams",
    "MergeDecision",
    "TailClustering",
    "TailInstance",
    "cluster_tails",
    "iter_cluster_tails",
]
