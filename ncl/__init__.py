"""ncl: neural codes for image retrieval (Babenko et al., ECCV 2014) with Lightning and Hydra."""

import warnings

# pytorch_lightning 2.6 calls a torch pytree API that torch 2.14 deprecates, once per fit or
# predict: a warning users can do nothing about, printed in the middle of every job's output.
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
