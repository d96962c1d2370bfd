"""``make federated-demo``: the bundled ACC cohort split at random into three sites that fit
one MOFA+ model together over Flower, and the check that it equals the pooled fit.

Under ``--out`` (default ``results/federated_demo``): per site ``site_<i>/`` its sample sheet
and config, its own workflow run up to the normalised MuData (``snakemake`` with the site's
patients only: the sites read the bundled tables with ``sample_id.ignore_unlisted``, each
listing only its patients), and ``federated/`` (its patients' factors, the shared weights);
``coordinator/`` (shared weights, variance explained per site and pooled, the ELBO trace, the
exchange record); ``comparison.tsv``: the federated fit against the multi-group fit of the
same normalised data gathered in one place (possible here only because the demo's sites share
a machine).  One coordinator and three site processes talk over Flower on ``--address``.
"""

from __future__ import annotations

import contextlib
import io as _io
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from .errors import AnalysisError

log = logging.getLogger("omix.federated_demo")
REPO = Path(__file__).resolve().parents[3]


def split_sites(config: str, out: Path, n_sites: int, seed: int) -> list[tuple[str, Path]]:
    """Write each site's sample sheet and config (absolute paths); return (name, dir)."""
    base = yaml.safe_load(Path(config).read_text())
    raw = pd.read_csv(base["samples"], sep="\t", dtype=str, keep_default_na=False)
    site_of = np.random.default_rng(seed).permutation(len(raw)) % n_sites
    sites = []
    for i in range(n_sites):
        name, d = f"site_{i + 1}", out / f"site_{i + 1}"
        d.mkdir(parents=True, exist_ok=True)
        raw[site_of == i].to_csv(d / "samples.tsv", sep="\t", index=False)
        cfg = yaml.safe_load(Path(config).read_text())
        cfg["cohort"] = name
        cfg["samples"] = str((d / "samples.tsv").resolve())
        cfg.setdefault("sample_id", {})["ignore_unlisted"] = True
        for o in cfg["omics"].values():
            o["path"] = str(Path(o["path"]).resolve())    # relative to the working directory
            # every feature that passes the site's filters: the coordinator keeps the
            # n_top_features most variable over all sites (pooled variance from sums)
            o["n_top_features"] = None
        cfg["apply"] = {}
        (d / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
        sites.append((name, d))
    return sites


def normalise_site(name: str, d: Path) -> Path:
    """The site runs the workflow on its own patients, up to the normalised MuData."""
    target = f"results/{name}/normalize/{name}_normalized.h5mu"
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "snakemake", target, "--snakefile",
                           str(REPO / "Snakefile"), "--directory", str(d), "--configfile",
                           str(d / "config.yaml"), "--cores", "2", "--quiet", "rules"],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise AnalysisError(f"{name}: its workflow run failed:\n{proc.stderr[-2000:]}")
    log.info("%s: normalised its patients' tables (%.0f s)", name, time.monotonic() - t0)
    return d / target


def run_demo(config: str, out: Path, n_sites: int, seed: int, address: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    sites = split_sites(config, out, n_sites, seed)
    h5mus = [normalise_site(name, d) for name, d in sites]
    env = {**os.environ, "PYTHONPATH": str(REPO / "workflow" / "scripts"),
           "FLWR_TELEMETRY_ENABLED": "0"}
    cmd = [sys.executable, "-m", "omix.flower"]
    t0 = time.monotonic()
    coord = subprocess.Popen([*cmd, "coordinator", "--sites", str(n_sites), "--config", config,
                              "--address", address, "--out", str(out / "coordinator")], env=env)
    time.sleep(2)
    procs = [subprocess.Popen([*cmd, "site", "--name", name, "--h5mu", str(h), "--config",
                               config, "--address", address, "--out",
                               str(d / "federated")], env=env)
             for (name, d), h in zip(sites, h5mus, strict=True)]
    codes = [p.wait() for p in procs] + [coord.wait()]
    if any(codes):
        raise AnalysisError(f"a party of the federated fit failed (exit codes {codes})")
    fed_s = time.monotonic() - t0
    log.info("federated fit: %d site processes and one coordinator, %.0f s", n_sites, fed_s)
    compare(config, out, sites, h5mus, fed_s)


def compare(config: str, out: Path, sites: list[tuple[str, Path]], h5mus: list[Path],
            fed_s: float) -> pd.DataFrame:
    """The federated fit against the multi-group fit of the same data gathered in one place."""
    from .federated import power_options, site_from_h5mu
    from .io import write_tsv
    from .mofa import matched_correlation, train_mofa

    cfg = yaml.safe_load(Path(config).read_text())
    opts = power_options(cfg)
    weights = pd.read_csv(out / "coordinator" / "weights.tsv", sep="\t")
    views = list(dict.fromkeys(weights["omic"]))
    data = [site_from_h5mu(name, h) for (name, _), h in zip(sites, h5mus, strict=True)]
    keep = {v: list(weights.loc[weights["omic"] == v, "feature"].astype(str)) for v in views}
    samples = [sorted(set().union(*(set(d.index) for d in s.views.values())), key=str)
               for s in data]
    mats = [[s.views[v].reindex(index=smp, columns=keep[v]).to_numpy(float)
             for s, smp in zip(data, samples, strict=True)] for v in views]
    t0 = time.monotonic()
    with contextlib.redirect_stdout(_io.StringIO()):
        ent = train_mofa(mats, [data[0].likelihoods[v] for v in views], views, samples,
                         [[f"{v}:{f}" for f in keep[v]] for v in views],
                         opts, groups=[s.name for s in data])
    pooled_s = time.monotonic() - t0
    elbo = np.asarray(ent.model.train_stats["elbo"], dtype=float)
    elbo = elbo[~np.isnan(elbo)]
    fed = pd.read_csv(out / "coordinator" / "elbo.tsv", sep="\t")["elbo"].to_numpy()
    z_fed = pd.concat([pd.read_csv(d / "federated" / "factors.tsv", sep="\t",
                                   index_col=0) for _, d in sites])
    z_pool = pd.DataFrame(ent.model.nodes["Z"].getExpectation(),
                          index=[s for smp in samples for s in smp])
    k = z_fed.shape[1]
    r = matched_correlation(z_fed, z_pool.iloc[:, :k] if z_pool.shape[1] >= k else z_pool)
    n = min(len(elbo), len(fed))
    table = pd.DataFrame([
        {"measure": "patients", "value": float(sum(len(s) for s in samples))},
        {"measure": "features", "value": float(sum(len(keep[v]) for v in views))},
        {"measure": "iterations_federated", "value": float(len(fed) - 1)},
        {"measure": "iterations_pooled", "value": float(len(elbo) - 1)},
        {"measure": "elbo_max_relative_difference",
         "value": float(np.max(np.abs(fed[:n] - elbo[:n]) / np.abs(elbo[:n])))},
        {"measure": "factor_min_matched_abs_r", "value": float(r.min())},
        {"measure": "seconds_federated_fit", "value": fed_s},
        {"measure": "seconds_pooled_fit", "value": pooled_s},
    ])
    write_tsv(table, out / "comparison.tsv", float_format="%.6g")
    log.info("federated vs pooled: %s", "; ".join(f"{m} {v:.6g}" for m, v in
                                                  zip(table["measure"], table["value"],
                                                      strict=True)))
    return table
