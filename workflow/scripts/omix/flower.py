"""Federated MOFA+ over Flower (``flwr``): the coordinator is a Flower server, each site a
Flower client that answers :class:`omix.federated.Site`'s messages.

Flower's gRPC server and clients (``flwr.compat``: ``start_server``, ``start_client``) keep
one process per site for the whole fit, so the site's model stays in memory between rounds:
about 9 ms per round on this machine.  Flower's newer SuperLink/SuperNode runtime starts a
fresh ClientApp process for every message (6.2 s per round measured here, with a trivial
app), which a fit of a few hundred iterations x 3 rounds cannot afford.  The rounds are driven
by a small ``flwr.server.Server`` whose ``fit`` runs the MOFA+ schedule
(:meth:`omix.federated.Coordinator.fit`): a ``Strategy``'s one fit round per step does not
fit three different messages per iteration.  Each message is a ``FitIns``: the method in
``config["method"]``, the arrays as ``Parameters`` named by ``config["keys"]``.

Flower's telemetry is switched off (``FLWR_TELEMETRY_ENABLED=0``): no network beyond the
server address.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import AnalysisError
from .federated import (
    Coordinator,
    Exchange,
    FederatedResult,
    Payload,
    Site,
    power_options,
    site_from_h5mu,
)

os.environ["FLWR_TELEMETRY_ENABLED"] = "0"   # read by flwr at import
log = logging.getLogger("omix.flower")


def _pack(payload: Payload) -> tuple[list[np.ndarray], str]:
    keys = list(payload)
    return [np.asarray(payload[k]) for k in keys], json.dumps(keys)


def _unpack(arrays: list[np.ndarray], keys: str) -> Payload:
    return dict(zip(json.loads(keys), arrays, strict=True))


def serve(coordinator: Coordinator, n_sites: int, address: str, exchange: str | Path,
          *, arrays: bool = False, wait_s: float = 120.0) -> FederatedResult:
    """Run the coordinator as a Flower server on ``address`` until the fit is done; sites
    are ordered by name.  Every message is recorded under ``exchange``."""
    from flwr.common import (
        Code,
        FitIns,
        GetPropertiesIns,
        ndarrays_to_parameters,
        parameters_to_ndarrays,
    )
    from flwr.compat.server.app import start_server
    from flwr.server import History, Server, ServerConfig
    from flwr.server.client_manager import SimpleClientManager
    from flwr.server.server import fit_clients
    from flwr.server.strategy import FedAvg

    logging.getLogger("flwr").setLevel(logging.WARNING)   # not a line per message
    out: dict[str, Any] = {}

    class MofaServer(Server):
        def fit(self, num_rounds: int, timeout: float | None) -> tuple[Any, float]:
            t0 = time.monotonic()
            if not self.client_manager().wait_for(n_sites, timeout=int(wait_s)):
                raise AnalysisError(f"only {self.client_manager().num_available()} of "
                                    f"{n_sites} sites connected to {address} within "
                                    f"{wait_s:.0f} s", hint="start every site's client")
            clients = list(self.client_manager().all().values())
            names = [str(c.get_properties(GetPropertiesIns({}), timeout=None, group_id=0)
                         .properties["site"]) for c in clients]
            order = sorted(range(len(clients)), key=lambda i: names[i])
            clients, names = [clients[i] for i in order], [names[i] for i in order]
            seq = [0]

            def transport(method: str, payload: Payload) -> list[Payload]:
                arrays, keys = _pack(payload)
                ins = FitIns(ndarrays_to_parameters(arrays), {"method": method, "keys": keys})
                seq[0] += 1
                results, failures = fit_clients([(c, ins) for c in clients], max_workers=None,
                                                timeout=None, group_id=seq[0])
                if failures:
                    raise AnalysisError(f"{len(failures)} site(s) did not answer {method}: "
                                        f"{failures[0]!r}")
                by_cid = {proxy.cid: res for proxy, res in results}
                replies = []
                for c, name in zip(clients, names, strict=True):
                    res = by_cid[c.cid]
                    if res.status.code != Code.OK or "error" in res.metrics:
                        raise AnalysisError(f"site {name} failed at {method}: "
                                            f"{res.metrics.get('error', res.status.message)}")
                    replies.append(_unpack(parameters_to_ndarrays(res.parameters),
                                           str(res.metrics["keys"])))
                return replies

            record = Exchange(transport, exchange, names, arrays=arrays)
            try:
                out["result"] = coordinator.fit(record)
            finally:
                record.close()
            return History(), time.monotonic() - t0

    server = MofaServer(client_manager=SimpleClientManager(), strategy=FedAvg())
    start_server(server_address=address, server=server, config=ServerConfig(num_rounds=1))
    if "result" not in out:
        raise AnalysisError("the federated fit did not finish; see the log above")
    return out["result"]


def run_site(site: Site, address: str, wait_s: float = 120.0) -> None:
    """Connect ``site`` to the coordinator at ``address`` and answer until it is done."""
    from flwr.client import NumPyClient
    from flwr.compat.client.app import start_client

    logging.getLogger("flwr").setLevel(logging.WARNING)

    class SiteClient(NumPyClient):
        def get_properties(self, config: dict[str, Any]) -> dict[str, Any]:
            return {"site": site.data.name}

        def fit(self, parameters: list[np.ndarray], config: dict[str, Any]
                ) -> tuple[list[np.ndarray], int, dict[str, Any]]:
            method = str(config["method"])
            try:
                reply = site.handle(method, _unpack(parameters, str(config["keys"])))
            except Exception as exc:  # reported to the coordinator as one line
                log.error("site %s: %s failed: %s", site.data.name, method, exc)
                return [], 0, {"error": f"{type(exc).__name__}: {exc}"}
            arrays, keys = _pack(reply)
            return arrays, 0, {"keys": keys}

    start_client(server_address=address, client=SiteClient().to_client(), insecure=True,
                 max_wait_time=wait_s)


# --------------------------------------------------------------------------------------------
# command line: one coordinator, one process per site, and the three-site ACC demo
# --------------------------------------------------------------------------------------------
def write_coordinator(res: FederatedResult, out: Path) -> None:
    """The coordinator's outputs, in the formats of the pooled workflow's: ``weights.tsv``
    and ``variance_explained.tsv`` (as ``mofa/variance_explained_groups.tsv``: per site, then
    the pooled rows), the ELBO trace and the biomarker ranking (``ranked.tsv``, which needs
    only the shared weights and the pooled variance explained)."""
    from .io import write_tsv
    from .mofa import MofaResult, variance_explained_groups_table, weights_table
    from .tl import rank_features

    out.mkdir(parents=True, exist_ok=True)
    factors = list(next(iter(res.weights.values())).columns)
    shared = MofaResult(factors=pd.DataFrame(columns=factors), weights=res.weights,
                        r2=res.r2["all"], r2_total=res.r2_total["all"],
                        r2_groups={s: res.r2[s] for s in res.sites},
                        r2_total_groups={s: res.r2_total[s] for s in res.sites})
    write_tsv(weights_table(res.weights), out / "weights.tsv")
    write_tsv(variance_explained_groups_table(shared), out / "variance_explained.tsv")
    write_tsv(pd.DataFrame({"iteration": range(len(res.elbo)), "elbo": res.elbo}),
              out / "elbo.tsv", float_format="%.17g")
    write_tsv(rank_features(shared)[0], out / "ranked.tsv")


def main(argv: list[str] | None = None) -> None:
    import argparse

    import yaml

    from .errors import setup_logging

    ap = argparse.ArgumentParser(description="Federated MOFA+ over Flower")
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("coordinator", help="the Flower server: fits the shared weights")
    c.add_argument("--sites", type=int, required=True, help="how many sites will connect")
    s = sub.add_parser("site", help="one site: its normalised MuData stays here")
    s.add_argument("--name", required=True)
    s.add_argument("--h5mu", required=True, help="the site's normalised MuData")
    for p in (c, s):
        p.add_argument("--config", required=True, help="the workflow config (integrate:)")
        p.add_argument("--address", default="127.0.0.1:8089")
        p.add_argument("--out", required=True, help="where this party writes its results")
        p.add_argument("--min-site-size", type=int, default=None,
                       help="overrides federated.min_site_size of the config")
    d = sub.add_parser("demo", help="the bundled ACC cohort as three sites on this machine")
    d.add_argument("--config", default="config/config.yaml")
    d.add_argument("--out", default="results/federated_demo")
    d.add_argument("--sites", type=int, default=3)
    d.add_argument("--seed", type=int, default=2026)
    d.add_argument("--address", default="127.0.0.1:8089")
    a = ap.parse_args(argv)
    setup_logging(None)
    if a.cmd == "demo":
        from .federated_demo import run_demo

        run_demo(a.config, Path(a.out), a.sites, a.seed, a.address)
        return
    from .config import validate_config

    cfg = validate_config(yaml.safe_load(Path(a.config).read_text()))   # defaults filled
    opts = power_options(cfg)
    out = Path(a.out)
    if a.cmd == "coordinator":
        from .federated import Coordinator

        n_top = {o: t.get("n_top_features", 2000) for o, t in cfg["omics"].items()}
        res = serve(Coordinator(opts, n_top=n_top), a.sites, a.address, out / "exchange")
        write_coordinator(res, out)
        log.info("coordinator: %d iterations, final ELBO %.10g; wrote %s", len(res.elbo) - 1,
                 res.elbo[-1], out)
        return
    from .federated import MIN_SITE_SIZE
    from .io import write_tsv

    site = Site(site_from_h5mu(a.name, a.h5mu), opts, min_site_size=a.min_site_size
                or cfg["federated"].get("min_site_size", MIN_SITE_SIZE))
    run_site(site, a.address)
    if site.factors is None:
        raise AnalysisError(f"site {a.name}: the coordinator ended the fit early; see its log")
    out.mkdir(parents=True, exist_ok=True)
    write_tsv(site.factors.rename_axis("sample_id").reset_index(), out / "factors.tsv",
              float_format="%.17g")
    for v, w in site.weights.items():
        write_tsv(w.rename_axis("feature").reset_index(), out / f"weights_{v}.tsv")
    # the site's patients clustered on their factors (a partition of this site only)
    from .tl import ClusterOptions, cluster_factors

    clusters, _, _ = cluster_factors(site.factors, ClusterOptions.from_config(
        dict(cfg.get("cluster") or {})))
    write_tsv(clusters, out / "clusters.tsv")
    log.info("site %s: factors of its %d patients in %s", a.name, len(site.factors), out)


if __name__ == "__main__":
    main()
