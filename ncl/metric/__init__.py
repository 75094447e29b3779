"""Metric learning of a whole network for retrieval: tuple losses, hard-negative mining, tuple
data and the siamese LightningModule (Radenović et al. 2016, 2018; cirtorch)."""
