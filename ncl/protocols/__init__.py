"""The official evaluation protocols (Oxford/Paris, Holidays, revisited Oxford/Paris, UKB) and
their average precision, exactly as the benchmarks' own code computes them. A leaf: readers in
`ncl.data` build a protocol from the ground truth they parse, evaluation scores with it."""

from ncl.protocols.official import APProtocol, Protocol, RevisitedProtocol, Scores, UKBProtocol

__all__ = ["APProtocol", "Protocol", "RevisitedProtocol", "Scores", "UKBProtocol"]
