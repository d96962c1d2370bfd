"""envs/*.yaml are not installed in CI (no conda channels here): check syntax and pins."""

import re
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
    assert {p.stem for p in envs} == {"ingest", "normalize", "integrate", "select", "predict",
                                      "cluster", "report", "apply"}
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
    # every rule script is used (run_samples.py by two rules: discovery and apply)
    scripts = {p.name for p in (ROOT / "workflow" / "scripts").glob("run_*.py")}
    assert {f"run_{m}.py" for m in re.findall(r"scripts/run_(\w+)\.py", rules)} == scripts
    assert n_scripts == n_conda == len(scripts) + 1
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


# What each library entry point imports lazily (third-party packages its code path needs
# beyond the import closure of omix.steps), per function of omix.steps a rule script calls.
NEEDS = {"samples": set(), "ingest": {"pyarrow"},
         "normalize": {"scanpy", "statsmodels", "matplotlib"},
         "mudata": set(), "mofa_restart": {"mofapy2", "scikit-learn"},
         "integrate": {"mofapy2", "scikit-learn", "h5py"},
         "stability_shard": {"scikit-learn"}, "rf_importance": {"scikit-learn"},
         "select": {"scikit-learn", "statsmodels"},
         "cluster": {"scanpy", "scikit-learn", "igraph", "leidenalg", "umap-learn"},
         "plots": {"scikit-learn", "matplotlib"}, "manifest": set(), "overview": {"jinja2"},
         "associate": {"statsmodels", "lifelines", "matplotlib"},
         "by_group": {"statsmodels", "lifelines", "matplotlib"},
         # every outer fold renormalises (scanpy) and refits MOFA+ (mofapy2)
         "predict": {"scikit-learn", "mofapy2", "scanpy", "joblib", "matplotlib"},
         "predict_survival": {"lifelines", "mofapy2", "scanpy", "matplotlib"},
         "bundle": {"scikit-learn", "lifelines", "joblib", "h5py"},
         "apply_ingest": {"pyarrow"}, "apply_score": {"scikit-learn", "joblib"},
         "patient_report": {"jinja2", "markupsafe", "matplotlib", "joblib"}}


def rules_with_scripts() -> list[tuple[str, str, str]]:
    """(rule, env name, omix.steps function its script calls), read from workflow/rules."""
    import ast
    import re

    out = []
    for smk in sorted((ROOT / "workflow" / "rules").glob("*.smk")):
        for block in re.split(r"^rule ", smk.read_text(), flags=re.M)[1:]:
            name = block.split(":", 1)[0].strip()
            env = re.search(r'conda:\s*"\.\./\.\./envs/(\w+)\.yaml"', block)
            script = re.search(r'script:\s*"\.\./scripts/(\w+\.py)"', block)
            if script is None:
                continue
            assert env is not None, f"rule {name} has a script but no conda env"
            tree = ast.parse((ROOT / "workflow" / "scripts" / script.group(1)).read_text())
            fns = [n.func.attr for n in ast.walk(tree) if isinstance(n, ast.Call)
                   and isinstance(n.func, ast.Attribute) and isinstance(n.func.value, ast.Name)
                   and n.func.value.id == "steps"]
            assert len(fns) == 1, (name, fns)
            out.append((name, env.group(1), fns[0]))
    return out


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
    """Derived from the rules: each rule's conda env provides the import closure of omix.steps
    (found by importing it here) and what the library function its script calls needs."""
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
    assert {"numpy", "pandas"} <= at_import
    assert "matplotlib" not in at_import  # only the steps that draw import it (start-up time)
    rules = rules_with_scripts()
    assert len(rules) == len(list((ROOT / "workflow" / "scripts").glob("run_*.py"))) + 1
    unknown = sorted({fn for _, _, fn in rules} - set(NEEDS))
    assert not unknown, f"declare what these entry points need in NEEDS: {unknown}"
    for rule, env, fn in rules:
        missing = (at_import | NEEDS[fn]) - installed_with(env_packages(env))
        assert not missing, (rule, f"envs/{env}.yaml", sorted(missing))
