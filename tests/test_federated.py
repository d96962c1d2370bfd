"""Federated MOFA+: the sites' and the coordinator's fit equals the pooled multi-group fit of
the same data, and no message carries a per-patient axis (in this process, then over Flower)."""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omix import federated as fd
from omix import mofa
from omix.bench import generate
from omix.errors import AnalysisError

SIZES = (23, 29, 31)            # patients per site: no array dimension may equal these
NAMES = ("rna", "mut", "prot")
LIK = {"rna": "gaussian", "mut": "bernoulli", "prot": "gaussian"}
OPTS = mofa.MofaOptions(factors=6, seed=3, min_r2=0.0, init="power")
ROOT = Path(__file__).resolve().parents[1]


def site_data(extra_feature: bool = False) -> list[fd.SiteData]:
    """Three sites of one synthetic cohort: a Gaussian view, a binary view with missing cells,
    a view with 10 % scattered missing values; site 1 shifted. Site 0 has one feature the
    others lack (``extra_feature``): the sites then agree on the common ones."""
    views = generate(sum(SIZES), (40, 25, 60), k=4, seed=5)
    rng = np.random.default_rng(2)
    views[1] = (views[1] > 0.3).astype(float)
    views[1][rng.random(views[1].shape) < 0.05] = np.nan
    views[2][rng.random(views[2].shape) < 0.1] = np.nan
    views[0][SIZES[0]:SIZES[0] + SIZES[1]] += 1.5
    edges = np.cumsum([0, *SIZES])
    out = []
    for i, (a, b) in enumerate(itertools.pairwise(edges)):
        samples = [f"s{j:03d}" for j in range(a, b)]
        dv = {v: pd.DataFrame(x[a:b], index=samples, columns=[f"f{j}" for j in range(x.shape[1])])
              for v, x in zip(NAMES, views, strict=True)}
        if extra_feature and i == 0:
            dv["rna"]["only_here"] = rng.standard_normal(b - a)
        out.append(fd.SiteData(f"site{i}", dv, dict(LIK)))
    return out


def pooled_twin(sites: list[fd.Site]):
    """The multi-group fit of the same data gathered in one place (integrate.init: power)."""
    data = [[s.views[v].to_numpy(float) for s in sites] for v in NAMES]
    with contextlib.redirect_stdout(io.StringIO()):
        return mofa.train_mofa(data, [LIK[v] for v in NAMES], list(NAMES),
                               [s.samples for s in sites],
                               [[f"{v}:{f}" for f in sites[0].views[v].columns] for v in NAMES],
                               OPTS, groups=[s.data.name for s in sites])


def assert_same_fit(res: fd.FederatedResult, factors: list[pd.DataFrame], ent) -> None:
    elbo = np.asarray(ent.model.train_stats["elbo"], dtype=float)
    elbo = elbo[~np.isnan(elbo)]
    assert len(elbo) > 20 and len(res.elbo) == len(elbo)      # same convergence iteration
    np.testing.assert_allclose(res.elbo, elbo, rtol=1e-9)
    z = ent.model.nodes["Z"].getExpectation()
    zf = np.vstack([f.to_numpy() for f in factors])
    np.testing.assert_allclose(zf, z, atol=1e-8)
    assert mofa.matched_correlation(pd.DataFrame(zf), pd.DataFrame(z)).min() >= 0.9999
    for m, v in enumerate(NAMES):
        np.testing.assert_allclose(res.weights[v].to_numpy(),
                                   ent.model.nodes["W"].getExpectation()[m], atol=1e-8)
    r2 = ent.model.calculate_variance_explained()
    for g, site in enumerate(res.sites):
        np.testing.assert_allclose(res.r2[site].to_numpy(), np.nan_to_num(r2[g]) * 100,
                                   atol=1e-8)


def no_patient_axis(shapes: list[tuple[str, list[int]]]) -> None:
    patients = {*SIZES, sum(SIZES)}
    bad = [(name, shape) for name, shape in shapes if patients & set(shape)]
    assert not bad, bad[:5]


def test_federated_fit_equals_the_pooled_fit_and_sends_only_sums(tmp_path):
    """Three sites in this process: the coordinator's ELBO trace, the sites' factors and the
    shared weights equal the pooled multi-group fit's (rtol 1e-9 / 1e-8); every message of the
    exchange, both ways, is recorded and none has an axis of patients."""
    sites = [fd.Site(d, OPTS) for d in site_data(extra_feature=True)]
    names = [s.data.name for s in sites]
    record = fd.Exchange(fd.local_transport(sites), tmp_path / "exchange", names, arrays=True)
    res = fd.Coordinator(OPTS).fit(record)
    record.close()
    assert "only_here" not in sites[0].views["rna"].columns      # not shared by every site
    assert_same_fit(res, [s.factors for s in sites], pooled_twin(sites))
    for s in sites:                                               # each site has the weights
        pd.testing.assert_frame_equal(s.weights["prot"], res.weights["prot"].set_axis(
            list(s.views["prot"].columns)))
    # every message, both ways: the manifest and the arrays themselves
    lines = [json.loads(x) for x in (tmp_path / "exchange" / "messages.jsonl").read_text()
             .splitlines()]
    assert {x["direction"] for x in lines} == {"to", "from"}
    assert {"hello", "moments", "pca_apply", "build", "y", "w_stats", "local", "variance",
            "finish"} <= {x["method"] for x in lines}
    no_patient_axis([(f"{x['method']}:{k}", a["shape"]) for x in lines
                     for k, a in x["arrays"].items()])
    files = sorted((tmp_path / "exchange").glob("*.npz"))
    assert len(files) > 100
    shapes = []
    for f in files:
        with np.load(f) as z:
            shapes += [(f"{f.name}:{k}", list(z[k].shape)) for k in z.files]
    no_patient_axis(shapes)


def test_sites_refuse_too_few_patients_and_must_measure_the_same_omics():
    data = site_data()
    small = fd.SiteData("tiny", {v: d.iloc[:8] for v, d in data[0].views.items()}, dict(LIK))
    with pytest.raises(AnalysisError, match="site tiny has 8 patients; a federated fit needs "
                                            "at least 10 per site"):
        fd.Site(small, OPTS)
    data[2].views.pop("mut")
    sites = [fd.Site(d, OPTS) for d in data]
    with pytest.raises(AnalysisError, match="site site2 has views \\['rna', 'prot'\\], site "
                                            "site0 \\['rna', 'mut', 'prot'\\]"):
        fd.Coordinator(OPTS).fit(fd.local_transport(sites))


SITE_PROCESS = """
import sys
sys.path.insert(0, {tests!r})
from test_federated import OPTS, site_data
from omix import federated as fd, flower
data = site_data()[{i}]
flower.run_site(fd.Site(data, OPTS), {address!r}, wait_s=60)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_federated_fit_over_flower_equals_the_pooled_fit(tmp_path):
    """The same fit with the coordinator as a Flower server and each site a Flower client in
    its own process: equal to the pooled fit, and the exchange holds no patient axis."""
    from omix import flower

    address = f"127.0.0.1:{free_port()}"
    env = {"PYTHONPATH": str(ROOT / "workflow" / "scripts"), "PATH": "/usr/bin:/bin",
           "FLWR_TELEMETRY_ENABLED": "0", "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", SITE_PROCESS.format(
        tests=str(ROOT / "tests"), i=i, address=address)], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for i in range(3)]
    try:
        res = flower.serve(fd.Coordinator(OPTS), 3, address, tmp_path / "exchange",
                           arrays=True, wait_s=60)
    finally:
        errs = [p.communicate(timeout=60)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [e[-2000:] for e in errs]
    assert res.sites == ["site0", "site1", "site2"]
    # the pooled twin, from the same data (the sites' processes kept theirs)
    sites = [fd.Site(d, OPTS) for d in site_data()]
    local = fd.Coordinator(OPTS).fit(fd.local_transport(sites))
    np.testing.assert_allclose(res.elbo, local.elbo, rtol=1e-12)
    for v in NAMES:
        np.testing.assert_allclose(res.weights[v].to_numpy(), local.weights[v].to_numpy(),
                                   atol=1e-10)
    assert_same_fit(local, [s.factors for s in sites], pooled_twin(sites))
    shapes = []
    for f in sorted((tmp_path / "exchange").glob("*.npz")):
        with np.load(f) as z:
            shapes += [(f"{f.name}:{k}", list(z[k].shape)) for k in z.files]
    assert len(shapes) > 500
    no_patient_axis(shapes)


@pytest.mark.slow
def test_acc_three_site_demo_equals_the_pooled_fit(tmp_path):
    """make federated-demo: the bundled ACC cohort as three sites (31/31/30 patients), each
    normalising its own patients with the workflow, one coordinator and three site processes
    over Flower. The fit equals the pooled multi-group fit of the same data (ELBO relative
    difference <= 1e-9, factors |r| >= 0.9999 after matching); no recorded message has a
    patient axis; each site has its patients' factors and clusters, the coordinator a ranking."""
    out = tmp_path / "demo"
    proc = subprocess.run([sys.executable, "-m", "omix.flower", "demo", "--out", str(out),
                           "--address", f"127.0.0.1:{free_port()}"], cwd=ROOT,
                          env={"PYTHONPATH": str(ROOT / "workflow" / "scripts"),
                               "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
                               "HOME": str(tmp_path)},
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    c = pd.read_csv(out / "comparison.tsv", sep="\t").set_index("measure")["value"]
    assert c["patients"] == 92
    assert c["elbo_max_relative_difference"] <= 1e-9
    assert c["factor_min_matched_abs_r"] >= 0.9999
    assert c["iterations_federated"] == c["iterations_pooled"] > 10
    sizes = {len(pd.read_csv(out / f"site_{i}" / "samples.tsv", sep="\t")) for i in (1, 2, 3)}
    assert sizes == {31, 30}
    lines = [json.loads(x) for x in (out / "coordinator" / "exchange" / "messages.jsonl")
             .read_text().splitlines()]
    assert len(lines) > 500
    bad = [(x["method"], k, a["shape"]) for x in lines for k, a in x["arrays"].items()
           if {30, 31, 92} & set(a["shape"])]
    assert not bad, bad[:5]
    for i in (1, 2, 3):
        f = pd.read_csv(out / f"site_{i}" / "federated" / "factors.tsv", sep="\t")
        cl = pd.read_csv(out / f"site_{i}" / "federated" / "clusters.tsv", sep="\t")
        assert len(f) in (30, 31) and list(cl["sample_id"]) == list(f["sample_id"])
    ranked = pd.read_csv(out / "coordinator" / "ranked.tsv", sep="\t")
    assert ranked["rank"].tolist() == list(range(1, len(ranked) + 1)) and len(ranked) == \
        c["features"]
