"""Holistic baselines from local features: Bag of Visual Words, VLAD and sparse-coded features.

The pipeline is local_features (SIFT/RootSIFT cache) -> vocabulary (faiss k-means on a separate
image set) -> encoders (one vector per image) -> encode (a code set in the standard format, so
evaluation treats these baselines exactly like neural codes).

This package module imports nothing on purpose: feature-extraction workers import
`ncl.baselines.local_features` and should not pay for torch or faiss.
"""
