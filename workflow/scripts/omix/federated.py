"""Federated MOFA+: sites keep their patients' rows; a coordinator fits the multi-group model
that a pooled fit of the same data would give, exchanging only sums over each site's patients.

MOFA+ with one group per site couples the sites only through the weights W (and their ARD and
spike-and-slab nodes).  Everything indexed by patient (the factors Z, the data, the Bernoulli
pseudo-data) and everything of one site (its noise precisions Tau, its factor ARD AlphaZ) stays
at the site, in a mofapy2 model of the site's own data whose Z, AlphaZ, Tau and Y nodes are
updated with mofapy2's (and :mod:`omix.engine`'s) own code.  The coordinator holds mofapy2's W,
AlphaW and ThetaW nodes and updates W from the sites' sums (:class:`omix.engine.WPiece`: K x D,
D x K and K x K or D x K x K arrays).  One iteration is two rounds, in mofapy2's schedule:

1. ``w_stats``: the sites update Y (Bernoulli pseudo-data) and send their W pieces; the
   coordinator updates W, AlphaW and ThetaW;
2. ``local``: the sites receive the new W, update Z, AlphaZ and Tau and send their ELBO terms;
   the coordinator adds its own and applies mofapy2's convergence rule.

Before that the sites agree on features (names), keep the most variable ones (per-feature
count, sum and sum of squares), centre their Gaussian views (per site: MOFA+ centres each group)
and scale each view by its pooled standard deviation (three numbers per site and view), and
initialise the factors by a PCA of the pooled, mean-imputed data computed by block power
iteration on sums of X_s'(X_s V) (ΣD x L per site and round), scores scaled to unit SD.  A
pooled fit with ``integrate.init: power`` (:mod:`omix.pca_init`) runs the same
initialisation on the gathered data, so the two fits agree to rounding error.

Every message can be recorded (:class:`Exchange`): its arrays' names and shapes always, the
arrays themselves on request.  No message has a per-patient axis; a site refuses to take part
with fewer than ``min_site_size`` patients (default 10), so that no sum is one patient's row.

The transport is a callable ``(method, payload) -> [reply per site]``: :func:`local_transport`
calls the sites in this process (tests), :mod:`omix.flower` runs the same rounds over Flower.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io as _io
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import AnalysisError
from .mofa import MofaOptions
from .pca_init import PcaPart, power_pca, set_factors

log = logging.getLogger("omix.federated")

Payload = dict[str, np.ndarray]
Transport = Callable[[str, Payload], list[Payload]]
MIN_SITE_SIZE = 10
LOCAL_NODES = ("Y", "Z", "AlphaZ", "Tau")     # updated and scored at the sites
SHARED_NODES = ("W", "AlphaW", "ThetaW")       # updated and scored at the coordinator
W_PARAMS = ("mean_B1", "var_B1", "var_B0", "theta")


# --------------------------------------------------------------------------------------------
# a site
# --------------------------------------------------------------------------------------------
@dataclass
class SiteData:
    """What one site holds: its normalised views (its patients x features, NaN missing)."""

    name: str
    views: dict[str, pd.DataFrame]
    likelihoods: dict[str, str]


class Site:
    """One site's side of the fit.  :meth:`handle` answers the coordinator's messages; the
    patients' rows (data, factors) never leave this object."""

    def __init__(self, data: SiteData, opts: MofaOptions, min_site_size: int = MIN_SITE_SIZE):
        self.data, self.opts = data, opts
        self.views = {v: d.copy() for v, d in data.views.items()}
        self.samples = sorted(set().union(*(set(d.index) for d in self.views.values())), key=str)
        if len(self.samples) < min_site_size:
            raise AnalysisError(f"site {data.name} has {len(self.samples)} patients; a "
                                f"federated fit needs at least {min_site_size} per site",
                                hint="join a larger site, or lower federated.min_site_size "
                                     "if your governance allows it")
        self.order: list[str] = list(self.views)
        self.x: dict[str, np.ndarray] = {}
        self.pca: PcaPart | None = None
        self.ent: Any = None
        self.engine: Any = None
        self.factors: pd.DataFrame | None = None
        self.weights: dict[str, pd.DataFrame] = {}

    # -- feature agreement and scaling ---------------------------------------------------
    def _matrix(self, v: str) -> np.ndarray:
        return self.views[v].reindex(self.samples).to_numpy(dtype=float)

    def handle(self, method: str, p: Payload) -> Payload:
        return getattr(self, f"_m_{method}")(p)

    def _m_hello(self, p: Payload) -> Payload:
        out: Payload = {"name": np.array([self.data.name]),
                        "n": np.array([float(len(self.samples))])}
        for v in self.order:
            out[f"features/{v}"] = np.array([str(f) for f in self.views[v].columns])
            out[f"likelihood/{v}"] = np.array([self.data.likelihoods[v]])
        return out

    def _m_moments(self, p: Payload) -> Payload:
        out: Payload = {}
        for v in self.order:
            keep = [str(f) for f in p[f"common/{v}"]]
            self.views[v] = self.views[v][keep]
            x = self._matrix(v)
            ok = ~np.isnan(x)
            x0 = np.where(ok, x, 0.0)
            out[f"count/{v}"] = ok.sum(axis=0).astype(float)
            out[f"sum/{v}"] = x0.sum(axis=0)
            out[f"sumsq/{v}"] = np.square(x0).sum(axis=0)
        return out

    def _m_centre(self, p: Payload) -> Payload:
        """Keep the chosen features, centre Gaussian views on this site's means (MOFA+'s
        per-group centring); send the centred values' count, sum and sum of squares."""
        out: Payload = {}
        for v in self.order:
            self.views[v] = self.views[v][[str(f) for f in p[f"keep/{v}"]]]
            x = self._matrix(v)
            if self.data.likelihoods[v] == "gaussian":
                x = x - np.nanmean(x, axis=0)
            self.x[v] = x
            ok = ~np.isnan(x)
            x0 = np.where(ok, x, 0.0)
            out[f"moments/{v}"] = np.array([ok.sum(), x0.sum(), np.square(x0).sum()], dtype=float)
        return out

    def _m_scale(self, p: Payload) -> Payload:
        for v in self.order:
            if self.data.likelihoods[v] == "gaussian":
                self.x[v] = self.x[v] / float(p[f"sd/{v}"][0])
        self.pca = PcaPart(np.concatenate([self.x[v] for v in self.order], axis=1))
        return {}

    # -- PCA initialisation --------------------------------------------------------------
    def _m_pca_mean(self, p: Payload) -> Payload:
        assert self.pca is not None
        return self.pca.mean_sums()

    def _m_pca_centre(self, p: Payload) -> Payload:
        assert self.pca is not None
        self.pca.centre(p["mu"])
        return {}

    def _m_pca_apply(self, p: Payload) -> Payload:
        assert self.pca is not None
        return self.pca.apply(p["v"])

    def _m_pca_scores(self, p: Payload) -> Payload:
        assert self.pca is not None
        return self.pca.score_sums(p["v"])

    # -- training ------------------------------------------------------------------------
    def _m_build(self, p: Payload) -> Payload:
        """Build mofapy2's model of this site's data (one group, factor ARD as in the pooled
        multi-group model), start Z from the PCA scores, precompute; ELBO terms at start."""
        from .engine import FastEngine

        assert self.pca is not None
        z = (self.pca.scores(p["v"]) - p["mean"]) / p["sd"]
        self.pca = None
        o = self.opts
        ent = build_model([[self.x[v]] for v in self.order],
                          [self.data.likelihoods[v] for v in self.order], self.order,
                          self.data.name, self.samples,
                          [[f"{v}:{f}" for f in self.views[v].columns] for v in self.order], o)
        self.ent = ent
        set_factors(ent.model, z)
        self.engine = FastEngine(ent.model)
        self.engine.install()
        model = ent.model
        for n in model.nodes.values():
            n.precompute(model.options)
        self._set_w(p)
        return self._pseudo_sums(update=False)

    def _m_start(self, p: Payload) -> Payload:
        """The pooled pseudo-data means in place; ELBO terms before training."""
        model = self.ent.model
        self._pseudo_centre(p)
        for node in model.nodes["Y"].getNodes():
            node.TauTrick = False
        out = self._elbo()
        for node in model.nodes["Y"].getNodes():
            node.TauTrick = True
        return out

    def _bernoulli(self) -> list[tuple[int, Any]]:
        from .engine import _is_bernoulli

        return [(m, n) for m, n in enumerate(self.ent.model.nodes["Y"].getNodes())
                if _is_bernoulli(n)]

    def _pseudo_sums(self, update: bool = True) -> Payload:
        """mofapy2's Jaakkola pseudo-data, (2y - 1) / (4 lambda(zeta)), has its per-feature
        mean over all samples removed (nongaussian_nodes.py): here the site's column sums
        and sample count of the raw pseudo-data, for the pooled mean."""
        from mofapy2.core.utils import lambdafn

        out: Payload = {}
        self._raw: dict[int, np.ndarray] = {}
        for m, node in self._bernoulli():
            if update:
                node.updateParameters()
            raw = (2.0 * node.obs - 1.0) / (4.0 * lambdafn(node.params["zeta"]))
            self._raw[m] = raw
            out[f"ysum/{m}"] = raw.sum(axis=0)
            out[f"yn/{m}"] = np.array([float(raw.shape[0])])
        return out

    def _pseudo_centre(self, p: Payload) -> None:
        for m, node in self._bernoulli():
            node.means = np.asarray(p[f"ymean/{m}"])
            node.E = self._raw[m] - node.means

    def _set_w(self, p: Payload) -> None:
        for m, node in enumerate(self.ent.model.nodes["W"].nodes):
            q = {k: np.array(p[f"w/{m}/{k}"]) for k in W_PARAMS}
            node.Q.setParameters(mean_B0=np.zeros_like(q["mean_B1"]), **q)
            node.updateExpectations()

    def _elbo(self) -> Payload:
        e = self.ent.model.calculateELBO(*LOCAL_NODES)
        return {f"elbo/{k}": np.array([float(e[k])]) for k in LOCAL_NODES}

    def _m_y(self, p: Payload) -> Payload:
        """mofapy2's Y update (Gaussian views: nothing; Bernoulli: zeta, then the pseudo-data
        once the pooled means are known)."""
        self._set_w(p)
        return self._pseudo_sums()

    def _m_w_stats(self, p: Payload) -> Payload:
        model = self.ent.model
        self._pseudo_centre(p)
        zexp = model.nodes["Z"].getExpectations()
        out: Payload = {}
        for m in range(len(self.order)):
            piece = self.engine.w_piece(m, 0, zexp["E"], zexp["E2"])
            for k in ("t1", "foo", "tau", "ztz", "h"):
                val = getattr(piece, k)
                if val is not None:
                    out[f"w/{m}/{k}"] = val
        return out

    def _m_local(self, p: Payload) -> Payload:
        model = self.ent.model
        self._set_w(p)
        for name in ("Z", "AlphaZ", "Tau"):
            model.nodes[name].update()
        return self._elbo()

    def _m_variance(self, p: Payload) -> Payload:
        model = self.ent.model
        self._set_w(p)
        r2 = self.engine.variance_explained()[0]
        total = self.engine.variance_explained(total=True)[0]
        y = model.nodes["Y"].getExpectation()
        return {"r2": r2, "r2_total": total,
                "ss": np.array([float(np.square(ym).sum()) for ym in y])}

    def _m_finish(self, p: Payload) -> Payload:
        drop = [int(i) for i in p["drop"]]
        z = self.ent.model.nodes["Z"].getExpectation()
        keep = [k for k in range(z.shape[1]) if k not in drop]
        names = [f"Factor{i + 1}" for i in range(len(keep))]
        self.factors = pd.DataFrame(z[:, keep], index=self.samples, columns=names)
        self.weights = {v: pd.DataFrame(p[f"weights/{m}"], index=list(self.views[v].columns),
                                        columns=names) for m, v in enumerate(self.order)}
        return {}


def power_options(config: dict[str, Any]) -> MofaOptions:
    """The config's integrate options with the federated fit's initialisation."""
    opts = MofaOptions.from_config(dict(config.get("integrate") or {}))
    return dataclasses.replace(opts, init="power")


def site_from_h5mu(name: str, h5mu: str | Path) -> SiteData:
    """A site's normalised MuData as :class:`SiteData` (feature names as in its tables)."""
    from .io import omic_features, read_h5mu
    from .mofa import view_likelihood

    mdata = read_h5mu(h5mu)
    views, lik = {}, {}
    for v, a in mdata.mod.items():
        views[v] = pd.DataFrame(np.asarray(a.X, dtype=float), index=list(a.obs_names),
                                columns=list(omic_features(mdata, v)))
        lik[v] = view_likelihood(a)
    return SiteData(name, views, lik)


def build_model(data: list[list[np.ndarray]], likelihoods: list[str], views: list[str],
                group: str, samples: list[str], features: list[list[str]] | None,
                opts: MofaOptions) -> Any:
    """mofapy2's entry point built on one group's already centred and scaled data, with the
    training options set as ``entry_point.run`` sets them, not trained: a site's model of its
    own data, or the coordinator's (placeholder data) for its weight nodes.  Factor ARD as in
    a multi-group model; spike-and-slab ARD weights, the model the federated W update solves."""
    from mofapy2.run.entry_point import entry_point

    if not (opts.spikeslab_weights and opts.ard_weights):
        raise AnalysisError("a federated fit needs integrate.spikeslab_weights and "
                            "integrate.ard_weights (the defaults)", hint="set both to true")
    with contextlib.redirect_stdout(_io.StringIO()):
        ent = entry_point()
        ent.set_data_options(scale_views=False, center_groups=False)
        ent.set_data_matrix(data, likelihoods=likelihoods, views_names=views,
                            groups_names=[group], samples_names=[samples],
                            **({"features_names": features} if features else {}))
        ent.set_model_options(factors=opts.factors, spikeslab_weights=True, ard_weights=True,
                              ard_factors=True)
        ent.set_train_options(iter=opts.iterations, convergence_mode=opts.convergence,
                              seed=opts.seed, verbose=False, quiet=True, startELBO=1,
                              freqELBO=1, dropR2=None, gpu_mode=False)
        ent.build()
    ent.model.setTrainOptions(ent.train_opts)   # what entry_point.run does before training
    return ent


def local_transport(sites: list[Site]) -> Transport:
    """The coordinator's messages answered by sites in this process, in order."""
    return lambda method, payload: [s.handle(method, payload) for s in sites]


# --------------------------------------------------------------------------------------------
# the exchange record
# --------------------------------------------------------------------------------------------
class Exchange:
    """Records every message of a transport: ``messages.jsonl`` (direction, method, site, each
    array's name, shape and dtype) and, with ``arrays``, the arrays as ``<seq>_<...>.npz``."""

    def __init__(self, transport: Transport, folder: str | Path, sites: list[str],
                 arrays: bool = False) -> None:
        self.transport, self.sites, self.arrays = transport, sites, arrays
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.log = (self.folder / "messages.jsonl").open("w")
        self.seq = 0

    def _record(self, direction: str, method: str, site: str, payload: Payload) -> None:
        self.log.write(json.dumps({
            "seq": self.seq, "direction": direction, "method": method, "site": site,
            "arrays": {k: {"shape": list(np.shape(a)), "dtype": str(np.asarray(a).dtype)}
                       for k, a in payload.items()}}) + "\n")
        if self.arrays and payload:
            np.savez(self.folder / f"{self.seq:06d}_{direction}_{site}_{method}.npz",
                     **{k.replace("/", "__"): np.asarray(a) for k, a in payload.items()})
        self.seq += 1

    def __call__(self, method: str, payload: Payload) -> list[Payload]:
        self._record("to", method, "all", payload)
        replies = self.transport(method, payload)
        for site, r in zip(self.sites, replies, strict=True):
            self._record("from", method, site, r)
        return replies

    def close(self) -> None:
        self.log.close()


# --------------------------------------------------------------------------------------------
# the coordinator
# --------------------------------------------------------------------------------------------
@dataclass
class FederatedResult:
    """What the coordinator ends with: shared weights, variance explained, the ELBO trace."""

    weights: dict[str, pd.DataFrame]
    r2: dict[str, pd.DataFrame]          # site (and "all") -> views x factors, percent
    r2_total: dict[str, pd.Series]       # site (and "all") -> view, percent
    elbo: np.ndarray
    sites: list[str]
    n_per_site: dict[str, int]
    info: dict[str, Any] = field(default_factory=dict)


class Coordinator:
    """Runs mofapy2's schedule over the sites through ``transport``; holds W, AlphaW and
    ThetaW (mofapy2's nodes, built on placeholder data: they do not depend on the data)."""

    def __init__(self, opts: MofaOptions, n_top: dict[str, int | None] | None = None) -> None:
        self.opts = opts
        self.n_top = n_top or {}
        self.sites: list[str] = []     # the sites' names, in the transport's order (hello)

    def _agree_features(self, call: Transport) -> tuple[list[str], dict[str, str],
                                                        dict[str, list[str]], dict[str, int]]:
        hello = call("hello", {})
        self.sites = [str(h["name"][0]) for h in hello]
        if len(set(self.sites)) != len(self.sites):
            raise AnalysisError(f"two sites call themselves the same: {self.sites}",
                                hint="give every site its own name")
        views = [k.split("/", 1)[1] for k in hello[0] if k.startswith("features/")]
        for site, h in zip(self.sites, hello, strict=True):
            mine = [k.split("/", 1)[1] for k in h if k.startswith("features/")]
            if mine != views:
                raise AnalysisError(f"site {site} has views {mine}, site {self.sites[0]} "
                                    f"{views}", hint="every site must measure the same omics")
        lik = {v: str(hello[0][f"likelihood/{v}"][0]) for v in views}
        common = {}
        for v in views:
            names = [str(f) for f in hello[0][f"features/{v}"]]
            shared = set.intersection(*({str(f) for f in h[f"features/{v}"]} for h in hello))
            common[v] = [f for f in names if f in shared]
            if not common[v]:
                raise AnalysisError(f"view {v}: the sites have no feature in common",
                                    hint="check that the sites name features alike")
        n = {s: int(h["n"][0]) for s, h in zip(self.sites, hello, strict=True)}
        return views, lik, common, n

    def _select(self, call: Transport, views: list[str], common: dict[str, list[str]]
                ) -> dict[str, list[str]]:
        """The ``n_top`` features of each view with the largest pooled variance."""
        mom = call("moments", {f"common/{v}": np.array(common[v]) for v in views})
        keep = {}
        for v in views:
            c = sum(r[f"count/{v}"] for r in mom)
            s = sum(r[f"sum/{v}"] for r in mom)
            ss = sum(r[f"sumsq/{v}"] for r in mom)
            with np.errstate(invalid="ignore", divide="ignore"):
                var = np.where(c > 1, (ss - s**2 / np.maximum(c, 1)) / np.maximum(c - 1, 1), 0)
            n_top = self.n_top.get(v)
            varying = np.flatnonzero(var > 0)     # a constant feature has nothing to model
            idx = varying if n_top is None else np.sort(
                varying[np.argsort(-var[varying], kind="stable")[:n_top]])
            keep[v] = [common[v][i] for i in idx]
            log.info("view %s: %d features in common, %d kept (largest pooled variance)", v,
                     len(common[v]), len(keep[v]))
        return keep

    def _shared_model(self, views: list[str], lik: dict[str, str], dims: list[int]) -> Any:
        """mofapy2's model on placeholder data of the right shape: its W, AlphaW and ThetaW
        nodes (initialised without looking at data) are the coordinator's."""
        o = self.opts
        rng = np.random.default_rng(0)
        n = o.factors + 5
        data = [[(rng.random((n, d)) > 0.5).astype(float) if lik[v] == "bernoulli"
                 else rng.standard_normal((n, d))] for v, d in zip(views, dims, strict=True)]
        ent = build_model(data, [lik[v] for v in views], views, "placeholder",
                          [f"p{i}" for i in range(n)], None, o)
        return ent.model

    def _w_payload(self, model: Any) -> Payload:
        out: Payload = {}
        for m, node in enumerate(model.nodes["W"].nodes):
            q = node.Q.getParameters()
            for k in W_PARAMS:
                out[f"w/{m}/{k}"] = np.asarray(q[k])
        return out

    def _shared_elbo(self, model: Any) -> float:
        e = model.calculateELBO(*SHARED_NODES)
        return float(sum(e[k] for k in SHARED_NODES))

    def fit(self, call: Transport) -> FederatedResult:
        from .engine import WPiece, apply_w_update, combine_w_pieces

        t0 = time.monotonic()
        views, lik, common, n_site = self._agree_features(call)
        log.info("federated MOFA+: %d sites (%s), %d patients in all; views %s", len(self.sites),
                 ", ".join(f"{s} {n_site[s]}" for s in self.sites), sum(n_site.values()),
                 ", ".join(views))
        keep = self._select(call, views, common)
        mom = call("centre", {f"keep/{v}": np.array(keep[v]) for v in views})
        sd = {}
        for v in views:
            c, s, ss = (sum(r[f"moments/{v}"][i] for r in mom) for i in range(3))
            sd[v] = float(np.sqrt(max(ss / c - (s / c) ** 2, 0.0))) if self.opts.scale_views \
                else 1.0
        call("scale", {f"sd/{v}": np.array([sd[v]]) for v in views})
        dims = [len(keep[v]) for v in views]
        v_pca, mean, sdz = power_pca(call, sum(dims), self.opts.factors, seed=self.opts.seed)
        log.info("PCA initialisation done (%.1f s)", time.monotonic() - t0)
        model = self._shared_model(views, lik, dims)
        for name in SHARED_NODES:
            model.nodes[name].precompute(model.options)
        sums = call("build", {"v": v_pca, "mean": mean, "sd": sdz, **self._w_payload(model)})
        terms = call("start", self._pseudo_means(sums))
        trace = [self._site_elbo(terms) + self._shared_elbo(model)]
        opt = model.options
        token, converged, i = 1, False, 0
        for i in range(1, opt["maxiter"]):
            sums = call("y", self._w_payload(model))
            pieces = call("w_stats", self._pseudo_means(sums))
            for m, node in enumerate(model.nodes["W"].nodes):
                ps = [WPiece(**{k: r[f"w/{m}/{k}"] for k in ("t1", "foo", "tau", "ztz", "h")
                                if f"w/{m}/{k}" in r}) for r in pieces]
                apply_w_update(node, combine_w_pieces(ps))
                node.updateExpectations()
            model.nodes["AlphaW"].update()
            if i >= opt["start_sparsity"]:
                model.nodes["ThetaW"].update()
            terms = call("local", self._w_payload(model))
            trace.append(self._site_elbo(terms) + self._shared_elbo(model))
            delta = trace[i] - trace[i - 1]
            if i % 10 == 0:
                log.info("iteration %d: ELBO %.6g, relative change %.2e (%.1f s)", i,
                         trace[i], abs(delta / trace[0]), time.monotonic() - t0)
            if i > opt["start_elbo"] and i > opt["min_iter"]:
                token, converged = model.assess_convergence(delta, trace[0], token)
                if converged:
                    trace = trace[:i]       # as mofapy2 keeps it
                    break
        log.info("federated MOFA+ %s: %d iterations kept (%.1f s)",
                 "converged" if converged else "stopped", len(trace) - 1,
                 time.monotonic() - t0)
        var = call("variance", self._w_payload(model))
        r2_g = np.nan_to_num(np.stack([r["r2"] for r in var])) * 100        # S x M x K
        drop = (np.nonzero((r2_g < self.opts.min_r2).all(axis=(0, 1)))[0]
                if self.opts.min_r2 > 0 else np.array([], dtype=int))
        if len(drop) == r2_g.shape[2]:
            raise AnalysisError(f"no factor explains {self.opts.min_r2}% of the variance in "
                                "any view at any site", hint="lower integrate.min_r2")
        kept = [k for k in range(r2_g.shape[2]) if k not in set(drop.tolist())]
        names = [f"Factor{i + 1}" for i in range(len(kept))]
        w = model.nodes["W"].getExpectation()
        call("finish", {"drop": np.asarray(drop, dtype=float),
                        **{f"weights/{m}": w[m][:, kept] for m in range(len(views))}})
        weights = {v: pd.DataFrame(w[m][:, kept], index=[f"{v}:{f}" for f in keep[v]],
                                   columns=names) for m, v in enumerate(views)}
        ss = np.stack([r["ss"] for r in var])                                 # S x M
        r2_t = np.nan_to_num(np.stack([r["r2_total"] for r in var])) * 100
        r2 = {s: pd.DataFrame(r2_g[i][:, kept], index=views, columns=names)
              for i, s in enumerate(self.sites)}
        r2_total = {s: pd.Series(r2_t[i], index=views) for i, s in enumerate(self.sites)}
        r2["all"] = pd.DataFrame(np.einsum("sm,smk->mk", ss, r2_g[:, :, kept])
                                 / ss.sum(axis=0)[:, None], index=views, columns=names)
        r2_total["all"] = pd.Series(np.einsum("sm,sm->m", ss, r2_t) / ss.sum(axis=0),
                                    index=views)
        return FederatedResult(weights=weights, r2=r2, r2_total=r2_total,
                               elbo=np.asarray(trace), sites=list(self.sites),
                               n_per_site=n_site,
                               info={"iterations": len(trace) - 1, "dropped": len(drop),
                                     "seconds": time.monotonic() - t0, "scales": sd})

    @staticmethod
    def _pseudo_means(sums: list[Payload]) -> Payload:
        """Per Bernoulli view, the pooled mean of the raw pseudo-data over all samples."""
        keys = [k.split("/", 1)[1] for k in sums[0] if k.startswith("ysum/")]
        return {f"ymean/{m}": sum(r[f"ysum/{m}"] for r in sums)
                / sum(float(r[f"yn/{m}"][0]) for r in sums) for m in keys}

    @staticmethod
    def _site_elbo(terms: list[Payload]) -> float:
        return float(sum(float(r[f"elbo/{k}"][0]) for r in terms for k in LOCAL_NODES))
