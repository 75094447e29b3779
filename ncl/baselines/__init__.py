"""Holistic baselines from local features: Bag of Visual Words, VLAD and sparse-coded features.

The pipeline is local features (the SIFT/RootSIFT cache of `ncl.features.descriptors`) ->
vocabulary (faiss k-means on a separate image set) -> encoders (one vector per image) -> encode (a
code set in the standard format, so evaluation treats these baselines exactly like neural codes).
"""
