"""Scoring speed of the official protocols: python -m benchmarks.scoring

500 Holidays-size queries (1,491-deep lists) and 70 revisited queries at full 100k depth, against
a literal per-element port of compute_ap.cpp on the same lists (the plain baseline): the one port,
`tests/helpers/compute_ap.py`, that the AP tests check against (run from the repository root).
"""

from __future__ import annotations

import time

import numpy as np

from ncl.protocols.official import APProtocol, RevisitedProtocol
from tests.helpers.compute_ap import compute_ap_cpp


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main() -> None:
    rng = np.random.default_rng(0)
    positives = [rng.choice(1491, 3, replace=False) for _ in range(500)]
    junk = [np.array([i]) for i in range(500)]
    ranks = np.argsort(rng.random((500, 1491)), axis=1)
    ours_s, scores = timed(lambda: APProtocol(positives, junk).score(ranks))
    base_s, base = timed(
        lambda: np.mean(
            [
                compute_ap_cpp(set(p.tolist()), set(j.tolist()), r.tolist())
                for r, p, j in zip(ranks, positives, junk, strict=True)
            ]
        )
    )
    print("| case | ncl s | per-element loop s | speed-up | |mAP diff| |")
    print("|---|---|---|---|---|")
    print(
        f"| Holidays: 500 queries x 1,491 | {ours_s:.3f} | {base_s:.3f} | {base_s / ours_s:.0f}x | {abs(scores.metrics['mAP'] - base):.1e} |"
    )

    easy = [rng.choice(5000, 60, replace=False) for _ in range(70)]
    hard = [rng.choice(5000, 40, replace=False) + 5000 for _ in range(70)]
    rjunk = [rng.choice(5000, 30, replace=False) + 10000 for _ in range(70)]
    ranks = np.stack([rng.permutation(100_000) for _ in range(70)])
    ours_s, scores = timed(lambda: RevisitedProtocol(easy, hard, rjunk).score(ranks))
    medium = [np.union1d(e, h) for e, h in zip(easy, hard, strict=True)]
    base_s, base = timed(
        lambda: np.mean(
            [
                compute_ap_cpp(set(p.tolist()), set(j.tolist()), r.tolist())
                for r, p, j in zip(ranks, medium, rjunk, strict=True)
            ]
        )
    )
    print(
        f"| revisited: 70 queries x 100k, 3 setups (loop: medium only) | {ours_s:.3f} | {base_s:.3f} | {base_s / ours_s:.0f}x | {abs(scores.metrics['medium/mAP'] - base):.1e} |"
    )


if __name__ == "__main__":
    main()
