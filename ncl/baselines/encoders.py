"""Encoders: the local descriptors of an image -> one holistic vector (seminar, section 2).

Each encoder is built from a vocabulary (k x d centroids, fitted on a separate image set) and is
selected by name like a model: ``build_encoder("vlad", centroids, alpha=0.5)``. They all encode a
batch of images at once (one nearest-centroid search or one sparse-coding solve for the batch,
then a scatter into per-image rows), since per-image calls spend most of their time in overhead.
An image without descriptors encodes to the zero vector.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar, Literal, Protocol

import faiss
import numpy as np
import torch
from sklearn.preprocessing import normalize

from ncl.baselines.normalize import intra_normalize, power_law
from ncl.baselines.sparse_coding import lasso_fista
from ncl.compress.base import l2_normalize

ENCODERS: dict[str, type[VocabularyEncoder]] = {}


class Encoder(Protocol):
    """What `encode_image_set` needs: a dimension, a batch encoder and a config for the meta."""

    name: ClassVar[str]

    @property
    def dim(self) -> int: ...

    def encode(self, descriptors: np.ndarray) -> np.ndarray: ...

    def encode_batch(self, descriptor_sets: Sequence[np.ndarray]) -> np.ndarray: ...

    def config(self) -> dict[str, Any]: ...


def _sha1(array: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(array).tobytes()).hexdigest()


class VocabularyEncoder(ABC):
    """Shared state of the encoders: the vocabulary and an exact nearest-word index on it. A
    subclass registers under its `name`, which `encoder.encoder` in the config selects: a new
    encoder is one class (and one YAML file), no table to edit."""

    name: ClassVar[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if getattr(cls, "name", None):
            ENCODERS[cls.name] = cls

    def __init__(self, centroids: np.ndarray) -> None:
        self.centroids = np.ascontiguousarray(centroids, dtype=np.float32)
        self.k, self.descriptor_dim = self.centroids.shape
        self._index = faiss.IndexFlatL2(self.descriptor_dim)
        self._index.add(self.centroids)

    def encode(self, descriptors: np.ndarray) -> np.ndarray:
        """The code of one image (n x d descriptors)."""
        return self.encode_batch([descriptors])[0]

    @property
    @abstractmethod
    def dim(self) -> int:
        """The length of a code."""

    @abstractmethod
    def encode_batch(self, descriptor_sets: Sequence[np.ndarray]) -> np.ndarray:
        """B x dim float32 codes of B images, each given as its n_b x d descriptors."""

    def config(self) -> dict[str, Any]:
        return {"encoder": self.name, "k": self.k, "vocabulary_sha1": _sha1(self.centroids)}

    def _stack(self, descriptor_sets: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """All descriptors of the batch (N x d float32) and the batch row each one belongs to."""
        for s in descriptor_sets:
            if s.ndim != 2 or s.shape[1] != self.descriptor_dim:
                raise ValueError(
                    f"{self.name}: descriptors of shape {s.shape} for a vocabulary of "
                    f"{self.descriptor_dim}-d words"
                )
        x = np.concatenate([np.asarray(s, dtype=np.float32) for s in descriptor_sets])
        owner = np.repeat(np.arange(len(descriptor_sets)), [len(s) for s in descriptor_sets])
        return x, owner

    def _nearest_word(self, x: np.ndarray) -> np.ndarray:
        if x.shape[0] == 0:
            return np.empty(0, dtype=np.int64)
        return self._index.search(x, 1)[1][:, 0]


class BoVW(VocabularyEncoder):
    """Bag of Visual Words (Sivic & Zisserman 2003): hard-assignment counts, tf-idf weighted,
    component-wise square root, L2-normalised.

    tf is the raw count: dividing by the image's number of descriptors is a per-image scale that
    the final L2 normalisation removes. idf is a fitted parameter (`fit_idf`), learnt on the counts
    of a training set or of the database. The square root (with L2) damps bursty words.
    """

    name: ClassVar[str] = "bovw"

    def __init__(self, centroids: np.ndarray, *, tfidf: bool = True, sqrt: bool = True) -> None:
        super().__init__(centroids)
        self.tfidf = tfidf
        self.sqrt = sqrt
        self.idf: np.ndarray | None = None

    @property
    def dim(self) -> int:
        return self.k

    def counts(self, descriptor_sets: Sequence[np.ndarray]) -> np.ndarray:
        """B x k visual-word counts of a batch of images."""
        x, owner = self._stack(descriptor_sets)
        words = owner * self.k + self._nearest_word(x)
        bins = np.bincount(words, minlength=len(descriptor_sets) * self.k)
        return bins.reshape(len(descriptor_sets), self.k).astype(np.float32)

    def fit_idf(self, count_matrix: np.ndarray) -> np.ndarray:
        """idf_w = log(N / N_w) from an N x k count matrix, N_w the images containing word w
        (at least 1, so a word never seen gets the largest weight, log N)."""
        if count_matrix.ndim != 2 or count_matrix.shape[1] != self.k:
            raise ValueError(f"bovw: count matrix of shape {count_matrix.shape}, k = {self.k}")
        document_frequency = np.maximum((count_matrix > 0).sum(axis=0), 1)
        self.idf = np.log(count_matrix.shape[0] / document_frequency).astype(np.float32)
        return self.idf

    def encode_batch(self, descriptor_sets: Sequence[np.ndarray]) -> np.ndarray:
        weights = self.counts(descriptor_sets)
        if self.tfidf:
            if self.idf is None:
                raise RuntimeError("bovw: tf-idf needs fit_idf(count_matrix) before encoding")
            weights *= self.idf
        if self.sqrt:
            weights = np.sqrt(weights)
        return l2_normalize(weights)

    def config(self) -> dict[str, Any]:
        idf = None if not self.tfidf or self.idf is None else _sha1(self.idf)
        return {**super().config(), "tfidf": self.tfidf, "sqrt": self.sqrt, "idf_sha1": idf}


class VLAD(VocabularyEncoder):
    """VLAD (Jégou et al., CVPR 2010): per visual word, the sum of the residuals of the descriptors
    assigned to it; k x d dimensions.

    Then, in this order: signed power law (`alpha`, 0.5 = signed square root; 1 turns it off),
    intra-normalisation (`intra`: L2 per word block, Arandjelović & Zisserman, CVPR 2013), and a
    final L2 normalisation. Both normalisations damp bursty words (seminar, appendix A.2).
    """

    name: ClassVar[str] = "vlad"

    def __init__(self, centroids: np.ndarray, *, alpha: float = 0.5, intra: bool = True) -> None:
        super().__init__(centroids)
        self.alpha = alpha
        self.intra = intra

    @property
    def dim(self) -> int:
        return self.k * self.descriptor_dim

    def residual_sums(self, descriptor_sets: Sequence[np.ndarray]) -> np.ndarray:
        """B x (k·d) unnormalised VLAD: block w of row b sums y - c_w over image b's descriptors
        nearest to word w."""
        x, owner = self._stack(descriptor_sets)
        words = self._nearest_word(x)
        residuals = torch.from_numpy(x - self.centroids[words])
        sums = torch.zeros(len(descriptor_sets) * self.k, self.descriptor_dim)
        sums.index_add_(0, torch.from_numpy(owner * self.k + words), residuals)
        return sums.reshape(len(descriptor_sets), self.dim).numpy()

    def encode_batch(self, descriptor_sets: Sequence[np.ndarray]) -> np.ndarray:
        v = power_law(self.residual_sums(descriptor_sets), self.alpha)
        if self.intra:
            v = intra_normalize(v, self.k)
        return l2_normalize(v)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "alpha": self.alpha, "intra": self.intra}


class SparseCoder(VocabularyEncoder):
    """Sparse-coded features (Ge, Ke & Sun, BMVC 2013; seminar 2.3).

    Every descriptor y (L2-normalised first, so that λ means the same for SIFT, whose norm is
    about 512, and for RootSIFT) is coded as r* = argmin_r ||y - D r||² + λ||r||₁, D the
    L2-normalised centroids as columns, by batched FISTA. The codes are max-pooled over the image:
    `pooling="max"` takes max_l r_l per word as the seminar writes it (a word that only ever gets
    negative weights contributes its largest, i.e. least negative, one); `pooling="abs"` takes
    max_l |r_l| (Yang et al., CVPR 2009). Then signed power law (`alpha`; 1 turns it off) and L2.

    FISTA converges slowly on a vocabulary, whose atoms are strongly correlated: on RootSIFT of real
    photos, k = 256 and λ = 0.1, the pooled codes after 100 / 200 / 400 iterations have cosine
    0.99 / 0.998 / 0.9999 to the converged ones, hence `max_iter` = 200 by default.
    """

    name: ClassVar[str] = "sparse"

    def __init__(
        self,
        centroids: np.ndarray,
        *,
        lam: float = 0.1,
        pooling: Literal["max", "abs"] = "max",
        alpha: float = 0.5,
        max_iter: int = 200,
        tol: float = 1e-4,
        normalize_descriptors: bool = True,
        chunk_size: int = 16384,
        device: str | None = None,
    ) -> None:
        super().__init__(centroids)
        if pooling not in ("max", "abs"):
            raise ValueError(f"sparse: pooling must be 'max' or 'abs', not {pooling!r}")
        self.lam = lam
        self.pooling = pooling
        self.alpha = alpha
        self.max_iter = max_iter
        self.tol = tol
        self.normalize_descriptors = normalize_descriptors
        self.chunk_size = chunk_size
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.dictionary = torch.from_numpy(normalize(self.centroids).T.copy()).to(self.device)

    @property
    def dim(self) -> int:
        return self.k

    def codes(self, x: np.ndarray) -> torch.Tensor:
        """Sparse codes (N x k, on `device`) of N descriptors; rows are independent, so they are
        solved in chunks of `chunk_size` to bound memory."""
        if x.shape[0] == 0:
            return torch.zeros(0, self.k, device=self.device)
        if self.normalize_descriptors:
            x = normalize(x)
        y = torch.from_numpy(x).to(self.device)
        chunks = y.split(self.chunk_size)
        return torch.cat(
            [
                lasso_fista(c, self.dictionary, self.lam, max_iter=self.max_iter, tol=self.tol)
                for c in chunks
            ]
        )

    def encode_batch(self, descriptor_sets: Sequence[np.ndarray]) -> np.ndarray:
        x, owner = self._stack(descriptor_sets)
        r = self.codes(x)
        if self.pooling == "abs":
            r = r.abs()
        index = torch.from_numpy(owner).to(self.device)[:, None].expand_as(r)
        pooled = torch.zeros(len(descriptor_sets), self.k, device=self.device)
        pooled.scatter_reduce_(0, index, r, reduce="amax", include_self=False)
        return l2_normalize(power_law(pooled.cpu().numpy(), self.alpha))

    def config(self) -> dict[str, Any]:
        return {
            **super().config(),
            "lam": self.lam,
            "pooling": self.pooling,
            "alpha": self.alpha,
            "max_iter": self.max_iter,
            "tol": self.tol,
            "normalize_descriptors": self.normalize_descriptors,
        }


def build_encoder(name: str, centroids: np.ndarray, **params: Any) -> VocabularyEncoder:
    """The encoder called `name` ("bovw", "vlad", "sparse") on a vocabulary, with its options."""
    if name not in ENCODERS:
        raise ValueError(f"unknown encoder {name!r}; known: {', '.join(sorted(ENCODERS))}")
    return ENCODERS[name](centroids, **params)
