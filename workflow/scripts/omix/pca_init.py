"""The factors' starting values shared by a pooled and a federated MOFA+ fit: a PCA of the
pooled, mean-imputed data that needs only sums over patients (``integrate.init: power``).

mofapy2 starts the factors from sklearn's PCA (randomized SVD) of the pooled matrix, which a
federated fit cannot compute; :func:`power_pca` runs block power iteration on sums of
X_s'(X_s V) over parts, so the same function serves one cohort's groups (:func:`power_init`)
and federated sites (:mod:`omix.federated`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .engine import thin_mul

Payload = dict[str, np.ndarray]


class PcaPart:
    """One site's (or one group's) rows of the processed data, N_s x ΣD with NaN missing."""

    def __init__(self, x: np.ndarray) -> None:
        self.x = x
        self.xc: np.ndarray | None = None

    def mean_sums(self) -> Payload:
        ok = ~np.isnan(self.x)
        return {"count": ok.sum(axis=0).astype(float), "sum": np.where(ok, self.x, 0.0).sum(axis=0)}

    def centre(self, mu: np.ndarray) -> None:
        xc = self.x - mu
        xc[np.isnan(xc)] = 0.0      # mean imputation: an imputed entry is 0 once centred
        self.xc = xc

    def apply(self, v: np.ndarray) -> Payload:
        assert self.xc is not None
        return {"xtxv": thin_mul(self.xc.T, thin_mul(self.xc, v))}

    def scores(self, v: np.ndarray) -> np.ndarray:
        assert self.xc is not None
        return thin_mul(self.xc, v)

    def score_sums(self, v: np.ndarray) -> Payload:
        s = self.scores(v)
        return {"n": np.array([float(len(s))]), "sum": s.sum(axis=0),
                "sumsq": np.square(s).sum(axis=0)}


def power_pca(call: Callable[[str, Payload], list[Payload]], n_features: int, k: int, *,
              seed: int, iterations: int = 60, oversample: int = 5) -> tuple[np.ndarray,
                                                                           np.ndarray, np.ndarray]:
    """Top-k principal axes of the pooled, mean-imputed data from the parts' sums.

    ``call(method, payload)`` runs :class:`PcaPart`'s ``mean_sums`` / ``apply`` /
    ``score_sums`` on every part.  Block power iteration (k + ``oversample`` columns, QR
    each round, Rayleigh-Ritz at the end) from a seeded start; signs make each axis's largest
    loading positive.  Returns the axes (ΣD x k) and the scores' mean and SD (k each).

    Written here rather than sklearn's PCA (which mofapy2 uses) because it needs only sums
    over patients: the same function runs on one cohort's groups and on federated sites.
    """
    sums = call("pca_mean", {})
    count = sum(r["count"] for r in sums)
    mu = np.divide(sum(r["sum"] for r in sums), count, out=np.zeros(n_features),
                   where=count > 0)
    call("pca_centre", {"mu": mu})
    width = min(k + oversample, n_features)
    v = np.linalg.qr(np.random.default_rng(seed).standard_normal((n_features, width)))[0]
    for _ in range(iterations):
        w = sum(r["xtxv"] for r in call("pca_apply", {"v": v}))
        v = np.linalg.qr(w)[0]
    w = sum(r["xtxv"] for r in call("pca_apply", {"v": v}))
    evals, evecs = np.linalg.eigh(v.T @ w)
    v = v @ evecs[:, np.argsort(evals)[::-1][:k]]
    flip = np.sign(v[np.abs(v).argmax(axis=0), np.arange(v.shape[1])])
    v = v * np.where(flip == 0, 1.0, flip)
    s = call("pca_scores", {"v": v})
    n = sum(float(r["n"][0]) for r in s)
    mean = sum(r["sum"] for r in s) / n
    sd = np.sqrt(np.maximum(sum(r["sumsq"] for r in s) / n - mean**2, 0.0))
    return v, mean, np.where(sd > 0, sd, 1.0)


def pca_dispatch(parts: list[PcaPart]) -> Callable[[str, Payload], list[Payload]]:
    """``power_pca``'s calls answered by parts in this process (a pooled fit's groups)."""
    def call(method: str, p: Payload) -> list[Payload]:
        if method == "pca_mean":
            return [q.mean_sums() for q in parts]
        if method == "pca_centre":
            for q in parts:
                q.centre(p["mu"])
            return [{} for _ in parts]
        if method == "pca_apply":
            return [q.apply(p["v"]) for q in parts]
        return [q.score_sums(p["v"]) for q in parts]
    return call


def set_factors(model: Any, z: np.ndarray) -> None:
    """Start mofapy2's factor node from ``z`` (variance 1, as mofapy2's own initialisation)."""
    node = model.nodes["Z"]
    node.Q.setParameters(mean=np.array(z, dtype=float), var=np.ones_like(z, dtype=float))
    node.Q.updateExpectations()


def power_init(ent: Any, factors: int, seed: int) -> None:
    """``integrate.init: power`` for a built pooled entry point: the federated fit's
    initialisation, with each MOFA+ group as one part."""
    from .engine import group_slices

    slices = group_slices(ent.model)
    assert slices is not None
    views = []
    for d, node in zip(ent.data, ent.model.nodes["Y"].getNodes(), strict=True):
        x = np.array(d, dtype=float)          # mofapy2 has put 0 at the missing entries
        x[node.getMask(full=True)] = np.nan
        views.append(x)
    x = np.concatenate(views, axis=1)
    parts = [PcaPart(x[sl]) for sl in slices]
    v, mean, sd = power_pca(pca_dispatch(parts), x.shape[1], factors, seed=seed)
    set_factors(ent.model, np.vstack([(p.scores(v) - mean) / sd for p in parts]))
