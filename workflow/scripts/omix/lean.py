"""mofapy2's data preparation and factor initialisation without its copies of the data.

mofapy2 0.7.5 copies the input at every step before training: ``set_data_matrix`` casts each
matrix (a copy), concatenates the groups (a copy) and ``process_data`` centres and scales
through whole-matrix temporaries (``np.nanmean``, ``np.nanstd``, ``std``, ``isnan(..).mean``);
``build`` then starts the factors from sklearn's PCA of all views side by side
(``np.concatenate``: a copy; sklearn centres it: another).  At 10,000 patients x 26,000
features (2.1 GB of float64) that peaked at 7.2 GB, and the data preparation took 26 s of a
47 s fit.  The functions here give mofapy2's entry point the same state:

- :func:`set_data_inplace` centres each group's features and scales each Gaussian view in
  place, in column blocks (the per-column means are the same numbers mofapy2 computes; the
  view's SD differs from ``np.nanstd`` in the last bits, its summation order being
  blockwise), and reuses the caller's arrays when it owns them;
- :func:`pca_factors` computes mofapy2's starting factors, sklearn's randomized PCA
  (``PCA(whiten=True)``: the same solver choice, the same draws from NumPy's global random
  state, the same power iterations with LU normalisation, QR, SVD and sign convention) of the
  mean-imputed, centred concatenation of the views, without forming it: every product with
  that matrix is a sum of products with the views, centring applied through the column means
  and missing cells (0 once centred) handled in row blocks.

Iterates equal stock mofapy2's to rounding (tests/test_engine.py compares ELBO traces at rtol
1e-10).  Used with the fast engine; ``integrate.engine: mofapy2`` keeps mofapy2's own path.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from itertools import chain
from typing import Any

import numpy as np

from .engine import thin_mul

BLOCK_BYTES = 64 * 2**20   # temporaries of at most this size (row or column blocks)


def _col_blocks(n: int, d: int) -> Iterator[slice]:
    step = max(1, BLOCK_BYTES // (8 * max(n, 1)))
    for lo in range(0, d, step):
        yield slice(lo, min(d, lo + step))


def _row_blocks(n: int, d: int) -> Iterator[slice]:
    step = max(1, BLOCK_BYTES // (8 * max(d, 1)))
    for lo in range(0, n, step):
        yield slice(lo, min(n, lo + step))


def _nanstd(x: np.ndarray) -> float:
    """``np.nanstd(x)`` (ddof 0) in two passes over row blocks, without a copy of ``x``."""
    n, d = x.shape
    total, count = 0.0, 0
    for rows in _row_blocks(n, d):
        b = x[rows]
        ok = ~np.isnan(b)
        total += float(np.sum(b, where=ok))
        count += int(ok.sum())
    mean = total / count
    ss = 0.0
    for rows in _row_blocks(n, d):
        b = x[rows] - mean
        ss += float(np.sum(b * b, where=~np.isnan(b)))
    return float(np.sqrt(ss / count))


def set_data_inplace(ent: Any, data: list[list[np.ndarray]], likelihoods: list[str],
                     views: list[str], groups: list[str], samples: list[list[str]],
                     features: list[list[str]], *, owned: bool = False) -> None:
    """What ``ent.set_data_matrix(data, ...)`` followed by mofapy2's ``process_data`` leaves on
    ``ent`` (``data``, ``intercepts``, ``likelihoods``, ``dimensionalities``, ``data_opts``),
    with ``ent.set_data_options`` already called.  ``owned``: the caller hands over ``data``
    (its float64 arrays are centred in place, not copied, when there is one group)."""
    opts = ent.data_opts
    m_views, n_groups = len(data), len(data[0])
    n_per = [x.shape[0] for x in data[0]]
    dims = ent.dimensionalities
    dims["M"], dims["G"] = m_views, n_groups
    dims["D"] = [data[m][0].shape[1] for m in range(m_views)]
    opts["views_names"], opts["features_names"] = list(views), features
    opts["groups_names"], opts["samples_names"] = list(groups), samples
    if len(set(groups)) != len(groups) or len(set(views)) != len(views):
        raise ValueError("duplicated group or view names")
    for names in (list(chain(*samples)), list(chain(*features))):
        if len(set(names)) != len(names):
            raise ValueError("duplicated sample or feature names")
    opts["samples_groups"] = np.concatenate([[g] * n for g, n in zip(groups, n_per,
                                                                     strict=True)])
    n = sum(n_per)
    bounds = np.concatenate([[0], np.cumsum(n_per)])
    out, intercepts = [], []
    for m in range(m_views):
        d = dims["D"][m]
        parts = data[m]
        if (owned and n_groups == 1 and parts[0].dtype == np.float64
                and parts[0].flags.c_contiguous):
            x = parts[0]
        else:
            x = np.empty((n, d))
            for g, part in enumerate(parts):
                x[bounds[g]:bounds[g + 1]] = part
        if owned:
            data[m] = []      # the caller's per-group arrays can go
        x[x == -2147483648] = np.nan   # as mofapy2 does (R's integer NA through reticulate)
        means = [np.empty(d) for _ in range(n_groups)]
        with warnings.catch_warnings():   # a group lacking the view: NaN means, as mofapy2's
            warnings.simplefilter("ignore", RuntimeWarning)
            for cols in _col_blocks(n, d):
                for g in range(n_groups):
                    rows = slice(bounds[g], bounds[g + 1])
                    means[g][cols] = np.nanmean(x[rows, cols], axis=0)
        intercepts.append(means)
        if likelihoods[m] == "gaussian":
            if opts["center_groups"]:
                for g in range(n_groups):
                    x[bounds[g]:bounds[g + 1]] -= means[g]
            if opts["scale_views"]:
                x /= _nanstd(x)
            if opts.get("scale_groups"):
                raise NotImplementedError("scale_groups is not used by this workflow")
        out.append(x)
    dims["N"] = n   # mofapy2 keeps the total once the groups are stacked
    ent.intercepts = intercepts
    ent.likelihoods = list(likelihoods)
    ent.data = out


class _Centred:
    """The mean-imputed, centred concatenation M of the views (sklearn's ``X - mean_`` after
    ``SimpleImputer(strategy="mean")``), as products only: M @ Y and M.T @ Y.

    A view with missing cells (or never-measured features) is imputed and centred block by
    block in every product; while the imputed copies of such views fit in ``cache_bytes``
    they are made once instead (the randomized PCA makes ~17 products: at 1,000 patients x
    3,000 masked features rebuilding them each time was 0.25 s of a 0.5 s start)."""

    def __init__(self, views: list[np.ndarray], cache_bytes: int = 4 * BLOCK_BYTES) -> None:
        self.views = []
        budget = cache_bytes
        for x in views:
            n, d = x.shape
            count, total = np.zeros(d), np.zeros(d)
            for rows in _row_blocks(n, d):
                ok = ~np.isnan(x[rows])
                count += ok.sum(axis=0)
                total += np.sum(x[rows], axis=0, where=ok)
            keep = np.flatnonzero(count > 0)   # SimpleImputer drops all-missing features
            mu = total[keep] / count[keep]
            missing, full = bool((count[keep] < n).any()), len(keep) == d
            if (missing or not full) and n * len(keep) * 8 <= budget:
                x = self._block(x, keep, mu, full, slice(0, n))
                budget -= x.nbytes
                keep, mu, missing, full = np.arange(len(keep)), np.zeros(len(keep)), False, True
            self.views.append((x, keep, mu, missing, full))
        self.n = views[0].shape[0]
        self.d = sum(len(v[1]) for v in self.views)

    def _block(self, x: np.ndarray, keep: np.ndarray, mu: np.ndarray, full: bool,
               rows: slice) -> np.ndarray:
        if full:
            b = x[rows] - mu             # the one copy (x[rows] is a view)
        else:
            b = x[rows][:, keep]         # a copy already: centred in place
            b -= mu
        b[np.isnan(b)] = 0.0
        return b

    def mv(self, y: np.ndarray) -> np.ndarray:
        """M @ y, y of shape (columns of M, r)."""
        out = np.zeros((self.n, y.shape[1]))
        lo = 0
        for x, keep, mu, missing, full in self.views:
            ym = y[lo:lo + len(keep)]
            lo += len(keep)
            if not missing and full:
                out += thin_mul(x, ym)
                out -= mu @ ym
                continue
            for rows in _row_blocks(self.n, x.shape[1]):
                out[rows] += thin_mul(self._block(x, keep, mu, full, rows), ym)
        return out

    def rmv(self, y: np.ndarray) -> np.ndarray:
        """M.T @ y, y of shape (N, r)."""
        out = []
        for x, keep, mu, missing, full in self.views:
            if not missing and full:
                out.append(thin_mul(x.T, y) - np.outer(mu, y.sum(axis=0)))
                continue
            acc = np.zeros((len(keep), y.shape[1]))
            for rows in _row_blocks(self.n, x.shape[1]):
                acc += thin_mul(self._block(x, keep, mu, full, rows).T, y[rows])
            out.append(acc)
        return np.vstack(out)


def pca_factors(views: list[np.ndarray], k: int, cache_bytes: int = 4 * BLOCK_BYTES
                ) -> np.ndarray:
    """mofapy2's starting factors (``initZ(qmean="pca", impute=True)``): the whitened scores
    of sklearn's ``PCA(n_components=k, whiten=True)`` on the mean-imputed concatenation of
    ``views`` (NaN = missing), each factor then scaled to [-1, 1].

    sklearn's randomized solver is replayed on products with the views; the other solvers
    sklearn picks for small or tall-and-skinny data get the concatenated matrix (small then).
    ``cache_bytes``: how much imputed data may be kept between products (:class:`_Centred`)."""
    from scipy import linalg
    from sklearn.utils.extmath import svd_flip

    m = _Centred(views, cache_bytes)
    n, d = m.n, m.d
    if (d <= 1_000 and n >= 10 * d) or max(n, d) <= 500 or not 1 <= k < 0.8 * min(n, d):
        from sklearn.decomposition import PCA
        from sklearn.impute import SimpleImputer

        y = np.concatenate(views, axis=1)
        if np.isnan(y).any():
            y = SimpleImputer(missing_values=np.nan, strategy="mean").fit_transform(y)
        q = PCA(n_components=k, whiten=True).fit(y).transform(y)
    else:
        rs = np.random.mtrand._rand          # PCA(random_state=None): NumPy's global state
        n_random = k + 10
        n_iter = 7 if k < 0.1 * min(n, d) else 4
        transpose = n < d
        a_dot, at_dot = (m.rmv, m.mv) if transpose else (m.mv, m.rmv)
        q_ = rs.normal(size=(n if transpose else d, n_random))
        for _ in range(n_iter):
            q_, _ = linalg.lu(a_dot(q_), permute_l=True, check_finite=False)
            q_, _ = linalg.lu(at_dot(q_), permute_l=True, check_finite=False)
        q_, _ = linalg.qr(a_dot(q_), mode="economic", check_finite=False)
        b = (m.mv(q_) if transpose else m.rmv(q_)).T      # Q.T @ A
        uhat, s, vt = linalg.svd(b, full_matrices=False, lapack_driver="gesdd")
        u = q_ @ uhat
        if transpose:
            u_k, vt_k = vt[:k].T, u[:, :k].T
        else:
            u_k, vt_k = u[:, :k], vt[:k]
        u_k, vt_k = svd_flip(u_k, vt_k, u_based_decision=False)
        explained = s[:k] ** 2 / (n - 1)
        q = m.mv(vt_k.T) / np.sqrt(explained)
    return 2.0 * (q - np.min(q, axis=0)) / np.ptp(q, axis=0) - 1


@contextlib.contextmanager
def lean_build(pca: bool = True) -> Iterator[None]:
    """While active, mofapy2's ``build`` starts the factors with :func:`pca_factors`, or at 0
    when ``pca`` is False (the caller sets them next, as ``integrate.init: power`` does)."""
    from mofapy2.build_model import build_model

    cls = build_model.buildBiofam
    original = cls.build_Z

    def build_z(self: Any) -> None:
        if self.model_opts["spikeslab_factors"]:
            original(self)
            return
        start = pca_factors(self.data, self.dim["K"]) if pca else 0.0
        self.init_model.initZ(qmean=start, Y=self.data, impute=True,
                              weight_views=self.train_opts["weight_views"])

    cls.build_Z = build_z
    try:
        yield
    finally:
        cls.build_Z = original
