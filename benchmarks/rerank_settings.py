"""How diffusion's defaults were chosen, on a set no table scores: leave-one-out retrieval on the
demo's training split (the fit set of every `experiment=beyond_paper` benchmark; 348 photos of 29
objects, each image a query against the other 347, an image of the same object a positive).

python extract.py model=mobilenet_v2 'taps=[pool,conv]' pooling=rmac   # the fit set's codes
python -m benchmarks.rerank_settings [--model mobilenet_v2] [--taps pool conv-rmac3]

Prints, per tap, mAP and its paired difference to no re-ranking (± SE over the 348 queries) for
DBA + alpha-QE and for diffusion over k (graph neighbours) x alpha, then seeds, gamma and DBA
first at k = 10, alpha = 0.9. The codes are used as extracted (L2, no compression).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ncl.codes.store import CodeStore
from ncl.compress.base import l2_normalize
from ncl.rerank import AlphaQueryExpansion, DatabaseAugmentation, Diffusion, Reranking
from ncl.search.search import Search

ROOT = Path(__file__).resolve().parents[1]


def average_precision(ranks: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Each query's AP over the others (row i ranks every image; image i itself left out)."""
    others = ranks[ranks != np.arange(len(ranks))[:, None]].reshape(len(ranks), -1)
    relevant = labels[others] == labels[:, None]
    hits = np.cumsum(relevant, axis=1)
    precision = hits / np.arange(1, others.shape[1] + 1)
    return (precision * relevant).sum(axis=1) / relevant.sum(axis=1)


def settings() -> dict[str, Reranking]:
    dba = DatabaseAugmentation(k=10, alpha=3.0)
    found = {"DBA + alpha-QE": Reranking(dba, AlphaQueryExpansion(k=2, alpha=3.0))}
    for k in (5, 10, 20, 50):
        for alpha in (0.8, 0.9, 0.99):
            found[f"diffusion k={k} alpha={alpha} seeds=10"] = Reranking(
                diffusion=Diffusion(k=k, alpha=alpha, seeds=10)
            )
    found["diffusion k=10 alpha=0.9 seeds=5"] = Reranking(diffusion=Diffusion(k=10, alpha=0.9))
    found["diffusion k=10 alpha=0.9 seeds=5 gamma=1"] = Reranking(
        diffusion=Diffusion(k=10, alpha=0.9, gamma=1.0)
    )
    found["DBA + diffusion k=10 alpha=0.9 seeds=5"] = Reranking(dba, diffusion=Diffusion())
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="mobilenet_v2")
    parser.add_argument("--taps", nargs="+", default=["pool", "conv-rmac3"])
    parser.add_argument("--codes", type=Path, default=ROOT / "data" / "codes")
    args = parser.parse_args()
    for tap in args.taps:
        codes = CodeStore(args.codes).read(args.model, "demo_train", tap)
        x = l2_normalize(np.asarray(codes.codes, dtype=np.float32))
        labels = np.array([name.split("/")[0] for name in codes.ids])
        owner = np.arange(len(x))
        search = Search(gpu=False)
        plain = average_precision(Reranking().rank(search, x, owner, x, None).ranks, labels)
        print(f"\n{args.model} {tap}: {len(x)} queries, {len(set(labels))} objects")
        print("| re-ranking | mAP | Δ vs none ± SE |")
        print("|---|---|---|")
        print(f"| none | {plain.mean():.4f} | |")
        for name, reranking in settings().items():
            ap = average_precision(reranking.rank(search, x, owner, x, None).ranks, labels)
            delta = ap - plain
            se = delta.std(ddof=1) / np.sqrt(len(delta))
            print(f"| {name} | {ap.mean():.4f} | {delta.mean():+.4f} ± {se:.4f} |")


if __name__ == "__main__":
    main()
