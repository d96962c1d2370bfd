"""envs/*.yaml are not installed in CI (no conda channels here): check syntax and pins."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def pins():
    out = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.strip().split("==")
            out[name.lower().replace("_", "-")] = version
    return out


def test_every_env_parses_and_agrees_with_requirements():
    req = pins()
    envs = sorted((ROOT / "envs").glob("*.yaml"))
    assert {p.stem for p in envs} == {"ingest", "normalize", "integrate", "select", "cluster",
                                      "report"}
    for path in envs:
        env = yaml.safe_load(path.read_text())
        assert env["channels"][0] == "conda-forge"
        deps = env["dependencies"]
        assert "python=3.11" in deps
        pip = next(d["pip"] for d in deps if isinstance(d, dict))
        for spec in pip:
            name, version = spec.split("==")
            assert req[name.lower().replace("_", "-")] == version, (path.name, spec)


def test_every_rule_with_a_script_names_an_existing_env():
    rules = "".join(p.read_text() for p in (ROOT / "workflow" / "rules").glob("*.smk"))
    n_scripts = rules.count("script:")
    n_conda = rules.count("conda:")
    assert n_scripts == n_conda == 12
    for line in rules.splitlines():
        if "envs/" in line:
            rel = line.strip().strip('"')
            assert (ROOT / "workflow" / "rules" / rel).resolve().exists(), rel


def test_requirements_pin_every_package_exactly():
    lines = [ln for ln in (ROOT / "requirements.txt").read_text().splitlines()
             if ln.strip() and not ln.startswith("#")]
    assert all("==" in ln for ln in lines)
    req = pins()
    for pkg in ("snakemake", "mofapy2", "scanpy", "anndata", "mudata", "scikit-learn"):
        assert pkg in req
    assert req["snakemake"].startswith("9.")
