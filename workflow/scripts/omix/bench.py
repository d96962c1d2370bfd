"""``make bench``: stock mofapy2 against the fast engine on the same generated data.

Prints one CSV line per size, ``N, D, K, stock_s, engine_s, speedup, factor_r, elbo_rel_diff,
peak_rss_mb``, for float64 (the default) and then for the float32 option, plus ``#`` lines with
iteration counts, time per iteration and data-preparation time.  Each fit runs in its own
process so that ``peak_rss_mb`` (the engine process's peak resident memory, from ``wait4``)
belongs to that fit alone.  Times are training to convergence (mofapy2's rule, the pipeline's
options); ``factor_r`` is the smallest matched |r| between stock and engine factors and
``elbo_rel_diff`` the relative ELBO difference after the same number of iterations.  Stock
runs whose predicted time exceeds ``--stock-cap`` seconds are skipped, and the line says so.

    python -m omix.bench                      # N = 200, 1000, 5000 and engine-only 10000
    python -m omix.bench --sizes 200 --big 0  # a quick look
    python -m omix.bench --mixed --dims 4000,4000 --k 10 --sizes 1000,5000 --big 0
        # the first view binary, the others with 10 % of cells missing
    python -m omix.bench --floor --n 1000     # what exact training cannot go below

``--floor`` times only the products (the engine's own ``_gram`` and ``thin_mul``) and the
element-wise passes that one iteration of the exact updates cannot do without, on the shapes
of the workflow benchmark's scale cohort (N x (2,000 Gaussian, 2,000 Gaussian with 22 % of
cells missing, 1,000 binary), K = 10), with preallocated arrays and no ELBO, Python loop over
factors, import, reading or writing: a lower bound for the engine's time per iteration at the
current BLAS thread count.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

SMALL_D = (5000, 1000, 300)
BIG_D = (20000, 5000, 1000)


def generate(n: int, ds: tuple[int, ...], k: int = 10, seed: int = 0) -> list[np.ndarray]:
    """Gaussian views sharing k sparse factors, feature-specific noise, 30 % of the factors
    absent from each view (so ARD has something to switch off)."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, k))
    views = []
    for d in ds:
        active = rng.random(k) < 0.7
        active[rng.integers(k)] = True
        w = rng.standard_normal((d, k)) * (rng.random((d, k)) < 0.2) * active
        sd = np.sqrt(rng.gamma(2.0, 0.5, size=d))
        x = z @ w.T
        for lo in range(0, n, 1000):  # noise in row blocks: no second N x D temporary
            hi = min(n, lo + 1000)
            x[lo:hi] += rng.standard_normal((hi - lo, d)) * sd
        views.append(x)
    return views


def mixed(views: list[np.ndarray], seed: int = 0) -> tuple[list[np.ndarray], list[str]]:
    """The first view made binary (mutations: above its median, 2 % of cells missing), the
    others given 10 % of cells missing at random (proteomics); in place."""
    rng = np.random.default_rng(seed + 1)
    for i, x in enumerate(views):
        if i == 0:
            x[...] = x > np.median(x)
        x[rng.random(x.shape) < (0.02 if i == 0 else 0.1)] = np.nan
    return views, ["bernoulli"] + ["gaussian"] * (len(views) - 1)


def child(engine: str, n: int, ds: tuple[int, ...], k: int, seed: int, out: str,
          with_mixed: bool = False) -> None:
    """One fit in this process; factors and the ELBO trace go to ``out`` (npz)."""
    import contextlib
    import io as _io

    from .mofa import MofaOptions, train_mofa

    t0 = time.perf_counter()
    views, likelihoods = generate(n, ds), ["gaussian"] * len(ds)
    if with_mixed:
        views, likelihoods = mixed(views)
    nested = [[x] for x in views]  # no other reference: mofapy2's copy replaces it
    del views
    t_gen = time.perf_counter() - t0
    opts = MofaOptions(factors=k, seed=seed, iterations=1000, min_r2=0.0,
                       engine="mofapy2" if engine == "stock" else "fast",
                       float32=engine == "fast32")
    names = [f"view{i}" for i in range(len(ds))]
    feats = [[f"v{i}_f{j}" for j in range(d)] for i, d in enumerate(ds)]
    timings: dict[str, float] = {}
    with contextlib.redirect_stdout(_io.StringIO()):
        import mofapy2.run.entry_point as ep

        run = ep.entry_point.run
        build = ep.entry_point.build

        def timed(fn: Any, key: str) -> Any:
            def inner(self: Any) -> Any:
                t = time.perf_counter()
                fn(self)
                timings[key] = time.perf_counter() - t
            return inner

        ep.entry_point.run, ep.entry_point.build = timed(run, "train"), timed(build, "build")
        t1 = time.perf_counter()
        ent = train_mofa(nested, likelihoods, names, [[f"s{i}" for i in range(n)]],
                         feats, opts, owned=True)
        total = time.perf_counter() - t1
    elbo = np.asarray(ent.model.train_stats["elbo"], dtype=float)
    elbo = elbo[~np.isnan(elbo)]
    r2 = ent.model.calculate_variance_explained()[0].max(axis=0) * 100
    np.savez(out, z=ent.model.nodes["Z"].getExpectation(), elbo=elbo, r2=r2)
    print(json.dumps({"train_s": timings["train"], "build_s": timings["build"],
                      "prep_s": total - timings["train"] - timings["build"], "gen_s": t_gen,
                      "iterations": int(len(elbo) - 1), "engine": ent.omix_engine}))


def run_child(engine: str, n: int, ds: tuple[int, ...], k: int, seed: int, workdir: Path,
              timeout: float, with_mixed: bool = False) -> dict[str, Any] | None:
    out = workdir / f"{engine}_{n}.npz"
    cmd = [sys.executable, "-m", "omix.bench", "--child", engine, "--n", str(n),
           "--ds", ",".join(map(str, ds)), "--k", str(k), "--seed", str(seed), "--out", str(out),
           *(["--mixed"] if with_mixed else [])]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            proc.kill()
            os.wait4(proc.pid, 0)
            return None
        time.sleep(0.2)
    stdout, stderr = proc.stdout.read(), proc.stderr.read()  # type: ignore[union-attr]
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"bench child {engine} N={n} failed:\n{stderr[-2000:]}")
    res = json.loads(stdout.strip().splitlines()[-1])
    res["peak_rss_mb"] = usage.ru_maxrss / 1024.0
    with np.load(out) as f:
        res["z"], res["elbo"], res["r2"] = f["z"], f["elbo"], f["r2"]
    return res


def matched_r(a: np.ndarray, b: np.ndarray) -> float:
    """Smallest |r| over a's factors after matching them one to one with b's."""
    from scipy.optimize import linear_sum_assignment

    k = a.shape[1]
    r = np.abs(np.corrcoef(a.T, b.T)[:k, k:])
    i, j = linear_sum_assignment(-np.nan_to_num(r))
    return float(r[i, j].min())


def agreement(ref: dict[str, Any], new: dict[str, Any]) -> tuple[float, float]:
    """(factor_r, relative ELBO difference after the same number of iterations).

    factor_r is taken over the reference's active factors (>= 1 % variance explained in some
    view, the pipeline's integrate.min_r2): an inactive factor is noise around zero, and the
    float32 option may legitimately leave different noise there.
    """
    it = min(len(ref["elbo"]), len(new["elbo"])) - 1
    e0, e1 = ref["elbo"][it], new["elbo"][it]
    active = ref["r2"] >= 1.0
    r = matched_r(ref["z"][:, active], new["z"]) if active.any() else float("nan")
    return r, float(abs(e0 - e1) / abs(e0))


def floor(n: int, k: int = 10, iterations: int = 61, reps: int = 20, seed: int = 0) -> float:
    """Seconds per iteration of the unavoidable work of exact MOFA+ updates (``--floor``),
    through the engine's own product helpers."""
    from .engine import _gram, thin_mul

    rng = np.random.default_rng(seed)
    gauss = [rng.normal(size=(n, 2000)) for _ in range(2)]
    observed = (rng.random((n, 2000)) > 0.22).astype(float)
    quarter = 0.25 * (2.0 * (rng.random((n, 1000)) > 0.5) - 1.0)
    z, w, wb = rng.normal(size=(n, k)), rng.normal(size=(2000, k)), rng.normal(size=(1000, k))
    buf = [np.empty((n, 1000)) for _ in range(5)]

    def one() -> None:
        for y in gauss:                                # Z update: Y W; W and Tau: Y'Z
            thin_mul(y, w), thin_mul(y.T, z)
        # masked view: per-sample and per-feature Gram matrices with their E[w^2] / E[z^2] sums
        _gram(observed, w, extra=w), _gram(observed.T, z, extra=z)
        zw = np.matmul(z, wb.T, out=buf[0])            # binary view: E[(ZW)^2], zeta, lambda
        m2 = np.matmul(np.hstack([z, -z]), np.hstack([wb, wb]).T, out=buf[1])
        m2 += np.square(zw, out=zw)
        zeta = np.sqrt(m2, out=m2)
        lam = np.tanh(np.multiply(zeta, 0.5, out=buf[2]), out=buf[2])
        lam /= zeta
        y = np.divide(quarter, lam, out=buf[3])        # pseudo-data, centred
        y -= y.mean(axis=0)
        ty = np.multiply(lam, y, out=buf[0])
        _gram(lam, wb, extra=wb), _gram(lam.T, z, extra=z), thin_mul(ty, wb), z.T @ ty
        log_term = np.exp(np.negative(zeta, out=buf[4]), out=buf[4])   # the bound's log term
        np.log1p(log_term, out=log_term)

    one()
    t = time.perf_counter()
    for _ in range(reps):
        one()
    per = (time.perf_counter() - t) / reps
    print(f"# floor of exact MOFA+ training, N={n}, D=2000+2000 (22 % missing)+1000 binary, "
          f"K={k}, BLAS threads {os.environ.get('OPENBLAS_NUM_THREADS', 'default')}: "
          f"{per * 1e3:.1f} ms per iteration, {per * iterations:.2f} s for {iterations} "
          "iterations", flush=True)
    return per


def fmt(v: float | None, spec: str) -> str:
    return "NA" if v is None else format(v, spec)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="200,1000,5000", help="N of the stock-vs-engine sizes")
    ap.add_argument("--big", type=int, default=10000, help="engine-only N with D=20000,5000,"
                                                          "1000; 0 skips it")
    ap.add_argument("--k", type=int, default=15, help="factors")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--stock-cap", type=float, default=900.0,
                    help="skip stock when its predicted time exceeds this many seconds")
    ap.add_argument("--dims", default=",".join(map(str, SMALL_D)),
                    help="features per view of the stock-vs-engine sizes")
    ap.add_argument("--mixed", action="store_true",
                    help="the first view binary (Bernoulli), the others with 10 %% of cells "
                         "missing")
    ap.add_argument("--child"), ap.add_argument("--n", type=int), ap.add_argument("--ds")
    ap.add_argument("--out")
    ap.add_argument("--floor", action="store_true",
                    help="time only what exact updates cannot avoid (N from --n, default 1000)")
    a = ap.parse_args(argv)
    if a.floor:
        floor(a.n or 1000)
        return
    if a.child:
        child(a.child, a.n, tuple(int(d) for d in a.ds.split(",")), a.k, a.seed, a.out,
              a.mixed)
        return
    small_d = tuple(int(d) for d in a.dims.split(","))

    print(f"# MOFA+ benchmark: K={a.k}, mofapy2 options of the pipeline (convergence fast), "
          + ("first view binary, the others 10 % missing, " if a.mixed else "")
          + f"{os.cpu_count()} cores, OMP/BLAS threads "
          f"{os.environ.get('OMP_NUM_THREADS', 'default')}", flush=True)
    header = "N, D, K, stock_s, engine_s, speedup, factor_r, elbo_rel_diff, peak_rss_mb"
    rows: dict[str, list[str]] = {"fast": [], "fast32": []}
    notes: list[str] = []
    per_iter_stock: tuple[float, float] | None = None   # (seconds per iteration, N*D)
    sizes = [(int(n), small_d) for n in a.sizes.split(",") if n] + (
        [(a.big, BIG_D)] if a.big else [])
    with tempfile.TemporaryDirectory(prefix="omix-bench-") as tmp:
        for n, ds in sizes:
            d = sum(ds)
            engine_only = n == a.big and ds == BIG_D
            res = {e: run_child(e, n, ds, a.k, a.seed, Path(tmp), 3600.0, a.mixed)
                   for e in ("fast", "fast32")}
            stock = None
            if not engine_only:
                predicted = None if per_iter_stock is None else (
                    per_iter_stock[0] * n * d / per_iter_stock[1] * res["fast"]["iterations"])
                if predicted is not None and predicted > a.stock_cap:
                    notes.append(f"# N={n}: stock skipped, predicted {predicted:.0f} s > "
                                 f"--stock-cap {a.stock_cap:.0f} s")
                else:
                    stock = run_child("stock", n, ds, a.k, a.seed, Path(tmp), 2 * a.stock_cap,
                                      a.mixed)
                    if stock is None:
                        notes.append(f"# N={n}: stock stopped at {2 * a.stock_cap:.0f} s")
                    else:
                        per_iter_stock = (stock["train_s"] / stock["iterations"], n * d)
            for e, r in res.items():
                assert r is not None
                ref = stock if stock is not None else (res["fast"] if e == "fast32" else None)
                fr, ed = agreement(ref, r) if ref is not None else (None, None)
                sp = stock["train_s"] / r["train_s"] if stock is not None else None
                rows[e].append(", ".join([
                    str(n), "+".join(map(str, ds)), str(a.k),
                    fmt(stock["train_s"] if stock else None, ".1f"), f"{r['train_s']:.2f}",
                    fmt(sp, ".1f"), fmt(fr, ".6f"), fmt(ed, ".1e"), f"{r['peak_rss_mb']:.0f}"]))
                notes.append(
                    f"# N={n} {e}: {r['iterations']} iterations, "
                    f"{r['train_s'] / r['iterations'] * 1e3:.1f} ms/iteration "
                    f"({r['train_s'] / r['iterations'] / (n * d * a.k) * 1e12:.0f} ps per N*D*K), "
                    f"data preparation {r['prep_s']:.1f} s, model build {r['build_s']:.1f} s, "
                    f"engine used: {r['engine']}, active factors (>= 1 % R2) "
                    f"{int((r['r2'] >= 1.0).sum())}"
                    + ("" if ref is not None and e == "fast32" and stock is not None
                       else " (float32 compared with float64 engine)" if e == "fast32" else ""))
            if stock is not None:
                notes.append(f"# N={n} stock: {stock['iterations']} iterations, "
                             f"{stock['train_s'] / stock['iterations'] * 1e3:.1f} ms/iteration, "
                             f"peak RSS {stock['peak_rss_mb']:.0f} MB")
            print(f"{header}\n" + rows["fast"][-1], flush=True)
    print("\n# float64 (default)\n" + header + "\n" + "\n".join(rows["fast"]))
    print("\n# float32 option (integrate.float32: true)\n" + header + "\n"
          + "\n".join(rows["fast32"]))
    print("\n" + "\n".join(notes))


if __name__ == "__main__":
    main()
