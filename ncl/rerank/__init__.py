"""Re-ranking after search, for any codes: query expansion (AQE, alpha-QE), database-side
augmentation (DBA, alpha-DBA) and diffusion on a neighbour graph, arrays in, arrays out
(`conf/rerank/*.yaml`)."""

from ncl.rerank.rerankers import (
    AlphaQueryExpansion,
    AverageQueryExpansion,
    DatabaseAugmentation,
    DatabaseKey,
    DatabaseNeighbours,
    Diffusion,
    QueryExpansion,
    Reranking,
)

__all__ = [
    "AlphaQueryExpansion",
    "AverageQueryExpansion",
    "DatabaseAugmentation",
    "DatabaseKey",
    "DatabaseNeighbours",
    "Diffusion",
    "QueryExpansion",
    "Reranking",
]
