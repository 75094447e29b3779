"""Re-ranking after search, for any codes: query expansion (AQE, alpha-QE) and database-side
augmentation (DBA, alpha-DBA), arrays in, arrays out (`conf/rerank/*.yaml`)."""

from ncl.rerank.rerankers import (
    AlphaQueryExpansion,
    AverageQueryExpansion,
    DatabaseAugmentation,
    DatabaseKey,
    QueryExpansion,
    Reranking,
)

__all__ = [
    "AlphaQueryExpansion",
    "AverageQueryExpansion",
    "DatabaseAugmentation",
    "DatabaseKey",
    "QueryExpansion",
    "Reranking",
]
