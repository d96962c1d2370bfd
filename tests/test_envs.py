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
                                      "report", "apply"}
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
    assert n_scripts == n_conda == 20
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


# What rules of each family import lazily, inside the library functions they call.
LAZY = {"ingest": set(), "normalize": {"scanpy", "scikit-learn", "statsmodels"},
        "integrate": {"mofapy2", "scikit-learn"},
        "select": {"scikit-learn", "statsmodels", "lifelines"},
        "cluster": {"scanpy", "scikit-learn", "igraph", "leidenalg", "umap-learn"},
        "report": {"scikit-learn", "statsmodels", "lifelines"},
        "apply": {"scikit-learn", "lifelines", "joblib", "jinja2", "markupsafe"}}


def env_packages(name: str) -> set[str]:
    env = yaml.safe_load((ROOT / "envs" / f"{name}.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    return {spec.split("==")[0].lower().replace("_", "-") for spec in pip}


def installed_with(packages: set[str]) -> set[str]:
    """``packages`` and everything pip installs with them (requirements whose environment
    marker holds here, without extras)."""
    from importlib import metadata

    from packaging.requirements import Requirement

    seen, todo = set(), list(packages)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for text in metadata.requires(name) or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name.lower().replace("_", "-"))
    return seen


def test_every_env_can_import_what_its_rules_import():
    """Every rule script imports omix.steps; each env must provide that import closure (found
    by importing it here) and what its family's functions import lazily."""
    import subprocess
    import sys

    code = ("import sys, importlib.metadata as md; import omix.steps; "
            "d = md.packages_distributions(); "
            "print('\\n'.join(sorted({d[m.split('.')[0]][0] for m in list(sys.modules) "
            "if m.split('.')[0] in d})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, env={"PYTHONPATH": str(ROOT / "workflow" / "scripts")},
                         check=True).stdout.split()
    # imported only when present: cloudpickle by pyarrow, idna by jsonschema's format checks
    optional = {"setuptools", "cloudpickle", "idna"}
    at_import = {n.lower().replace("_", "-") for n in out} - optional
    assert {"numpy", "pandas", "matplotlib"} <= at_import
    for family, lazy in LAZY.items():
        listed = env_packages(family)
        missing = (at_import | lazy) - installed_with(listed)
        assert not missing, (family, sorted(missing))
