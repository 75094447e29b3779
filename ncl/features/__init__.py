"""Local features, shared by the holistic baselines (`ncl.baselines`) and pair mining
(`ncl.pairs`): SIFT and RootSIFT (`sift`), the descriptor cache of an image set (`descriptors`)
and the keypoint cache of pair mining (`keypoints`). Both caches are artifacts of `ncl.cache`.

Imports only `ncl.cache`, `ncl.atomic` and `ncl.io`; this package module imports nothing on
purpose: extraction workers import its modules and should not pay for torch or faiss.
"""
