"""The discriminative projection (paper section 5): its pair data over stored codes and the
LightningModule that learns it; the learned compressor itself is `ncl.compress.projection`."""
