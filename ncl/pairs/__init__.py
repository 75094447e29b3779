"""Pair mining for the discriminative projection (Babenko et al., ECCV 2014, section 5): pairs of
photos of one landmark linked through a third photo in the SIFT + RANSAC matching graph, each
photo used at most once. `python mine_pairs.py` runs it; `read_pairs` reads its output."""

from ncl.features.keypoints import KeypointSettings
from ncl.pairs.matching import MatchSettings
from ncl.pairs.mine import MiningResult, MiningSettings, mine_pairs
from ncl.pairs.pairs_file import Pair, pairs_with_codes, read_pairs, write_pairs

__all__ = [
    "KeypointSettings",
    "MatchSettings",
    "MiningResult",
    "MiningSettings",
    "Pair",
    "mine_pairs",
    "pairs_with_codes",
    "read_pairs",
    "write_pairs",
]
