"""Config loading: JSON-schema validation (draft 2020-12), defaults, and semantic checks.

Used at DAG-parse time by ``workflow/rules/common.smk`` and directly by tests; the same checks
run whether the config comes from ``config/config.yaml`` or ``--configfile``.
"""

from __future__ import annotations

import copy
import json
import logging
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema

from .errors import ConfigError
from .io import file_row, read_sample_sheet

log = logging.getLogger("omix.config")

SCHEMA_DIR = Path(__file__).resolve().parents[3] / "config" / "schemas"


@lru_cache(maxsize=4)
def load_schema(name: str = "config.schema.json", schema_dir: str | None = None) -> dict[str, Any]:
    path = Path(schema_dir) if schema_dir else SCHEMA_DIR
    with open(path / name) as fh:
        schema: dict[str, Any] = json.load(fh)
    jsonschema.Draft202012Validator.check_schema(schema)
    return schema


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref and ref.startswith("#/"):
        node: Any = root
        for part in ref[2:].split("/"):
            node = node[part]
        return _resolve(node, root)
    return schema


def fill_defaults(instance: Any, schema: dict[str, Any], root: dict[str, Any] | None = None) -> Any:
    """Return a copy of ``instance`` with every schema default filled in, recursively."""
    root = schema if root is None else root
    schema = _resolve(schema, root)
    if not isinstance(instance, dict) or schema.get("type") not in ("object", None):
        return instance
    out = dict(instance)
    for key, sub in schema.get("properties", {}).items():
        sub_r = _resolve(sub, root)
        if key not in out and "default" in sub_r:
            out[key] = copy.deepcopy(sub_r["default"])
        if key in out:
            out[key] = fill_defaults(out[key], sub_r, root)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        for key in out:
            if key not in schema.get("properties", {}):
                out[key] = fill_defaults(out[key], extra, root)
    return out


def _path_of(error: jsonschema.ValidationError) -> str:
    parts = [str(p) for p in error.absolute_path]
    return ".".join(parts) if parts else "(top level)"


def _describe(error: jsonschema.ValidationError) -> str:
    v = error.validator
    if v == "additionalProperties":
        return f"{error.message}; check the spelling against config/schemas/config.schema.json"
    if v == "enum":
        allowed = ", ".join(map(str, error.validator_value))
        return f"{error.instance!r} is not allowed; use one of: {allowed}"
    if v == "required":
        return f"{error.message}; add it to the config"
    if v == "type":
        want = error.validator_value
        want = " or ".join(want) if isinstance(want, list) else want
        return f"{error.instance!r} has the wrong type; expected {want}"
    return error.message


# Keys that existed once: the one-line error says what replaced them.
RETIRED = {
    ("select", "stability_c"): (
        "was replaced by select.stability_penalty (the penalty in units of the noise level, "
        "which keeps its meaning as the cohort grows; a fixed C let noise in at 1,000 "
        "patients); delete stability_c (the default penalty 2 suits most cohorts)"),
}


def validate_config(config: dict[str, Any], *, source: str = "config",
                    schema_dir: str | None = None) -> dict[str, Any]:
    """Validate ``config`` against the schema and return it with defaults filled in.

    Raises :class:`ConfigError` with one line naming the key and the fix.
    """
    for (section, key), why in RETIRED.items():
        if isinstance(config.get(section), dict) and key in config[section]:
            raise ConfigError(f"{key} {why}", file=source, where=f"{section}.{key}")
    schema = load_schema("config.schema.json", schema_dir)
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(e.absolute_path),
                                                                  list(map(str, e.path))))
    if errors:
        err = errors[0]
        more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        raise ConfigError(f"{_describe(err)}{more}", file=source, where=_path_of(err))
    return fill_defaults(config, schema)


def check_config(config: dict[str, Any], *, source: str = "config",
                 workdir: str | os.PathLike[str] = ".") -> dict[str, Any]:
    """Schema validation plus checks the schema cannot express: files exist, columns exist.

    Returns the config with defaults filled.  Relative paths are checked against ``workdir``.
    """
    cfg = validate_config(config, source=source)
    wd = Path(workdir)

    def exists(p: str, where: str) -> None:
        if not (wd / p).exists():
            raise ConfigError(f"file '{p}' does not exist (looked in {wd.resolve()})",
                              file=source, where=where,
                              hint="fix the path; relative paths resolve against the working "
                                   "directory")
        if not (wd / p).is_file():
            raise ConfigError(f"'{p}' is a directory, not a file", file=source, where=where,
                              hint="name the file itself")

    patterns = [("sample_id.regex", cfg["sample_id"].get("regex"), "the sample ID")]
    patterns += [(f"omics.{name}.columns", omic.get("columns"), "the label kept")
                 for name, omic in cfg["omics"].items()]
    for where, regex, group in patterns:
        if regex is None:
            continue
        import re

        try:
            pattern = re.compile(regex)
        except re.error as exc:
            raise ConfigError(f"regular expression does not compile: {exc}", file=source,
                              where=where,
                              hint="fix the pattern (in YAML, quote it and escape backslashes "
                                   "inside double quotes)") from None
        if pattern.groups > 1:
            raise ConfigError(f"regular expression has {pattern.groups} capture groups",
                              file=source, where=where,
                              hint=f"use one group around {group}, (?:...) for the others")

    exists(cfg["samples"], "samples")
    for name, omic in cfg["omics"].items():
        exists(omic["path"], f"omics.{name}.path")
        both = [k for k in ("label_column", "columns") if omic.get(k) is not None]
        if omic.get("long") and both:
            raise ConfigError(f"long and {' and '.join(both)} are both set", file=source,
                              where=f"omics.{name}",
                              hint="a long table names its columns in long: only; drop "
                                   f"{' and '.join(both)}")
    if cfg["sample_id"].get("map"):
        exists(cfg["sample_id"]["map"], "sample_id.map")
    sheet = read_sample_sheet(wd / cfg["samples"])
    for key, col in (("outcome", cfg.get("outcome")), ("normalize.batch",
                                                        cfg["normalize"].get("batch"))):
        if col is not None and col not in sheet.columns:
            raise ConfigError(f"column '{col}' is not in the sample sheet {cfg['samples']}",
                              file=source, where=key,
                              hint=f"use one of its columns ({_some(sheet.columns)}) or null")
    if cfg["normalize"].get("batch") is not None:   # 'Run1' and 'run1' would be two batches
        batch = cfg["normalize"]["batch"]
        _check_class_spellings(sheet[batch].dropna(), batch, "normalize.batch", source)
    groups = cfg.get("groups")
    if groups is not None and groups not in sheet.columns:
        raise ConfigError(f"column '{groups}' is not in the sample sheet {cfg['samples']}",
                          file=source, where="groups",
                          hint=f"use one of its columns ({_some(sheet.columns)}) or null")
    if groups is not None:  # MOFA+ groups: every patient in one, none too small
        from .mofa import MIN_GROUP_SIZE

        col = sheet[groups]
        if col.isna().any():
            row = file_row(sheet, list(col.isna()).index(True))
            raise ConfigError(f"{int(col.isna().sum())} patient(s) have no value in the groups "
                              f"column '{groups}' of {cfg['samples']} (first at line {row})",
                              file=source, where="groups",
                              hint="fill in each patient's site, or drop those patients")
        _check_class_spellings(col, groups, "groups", source)
        sizes = col.astype(str).value_counts()
        if (sizes < MIN_GROUP_SIZE).any():
            g = sizes.index[sizes < MIN_GROUP_SIZE][-1]
            raise ConfigError(f"group '{g}' of column '{groups}' has {int(sizes[g])} "
                              f"patient(s); MOFA+ groups need at least {MIN_GROUP_SIZE}",
                              file=source, where="groups",
                              hint="merge small sites in the sample sheet, or set groups: null")
    if cfg["predict"]["cv"] == "leave_group_out":
        if groups is None:
            raise ConfigError("leave_group_out needs a groups column", file=source,
                              where="predict.cv",
                              hint="set groups: to the sample-sheet column naming each "
                                   "patient's site, or use predict.cv: kfold")
        if sheet[groups].dropna().nunique() < 2:
            raise ConfigError(f"groups column '{groups}' has fewer than two groups: nothing to "
                              "hold out", file=source, where="predict.cv",
                              hint="use predict.cv: kfold")
    surv = cfg.get("survival") or {}
    named = [("survival.time", surv.get("time")), ("survival.event", surv.get("event")),
             ("survival.censor_time", surv.get("censor_time"))]
    named += [(f"bias.columns[{i}]", c) for i, c in enumerate(cfg["bias"]["columns"])]
    for key, col in named:
        if col is not None and col not in sheet.columns:
            raise ConfigError(f"column '{col}' is not in the sample sheet {cfg['samples']}",
                              file=source, where=key,
                              hint=f"use one of its columns ({_some(sheet.columns)})")
    sf = None
    if surv:
        from .stats import SurvivalSpec, survival_frame

        sf = survival_frame(sheet, SurvivalSpec.from_config(surv))  # type: ignore[arg-type]
    k = cfg["integrate"]["factors"]
    if len(sheet) <= k:
        raise ConfigError(f"{k} factors for {len(sheet)} samples in the sample sheet",
                          file=source, where="integrate.factors",
                          hint="MOFA+ needs more samples than factors: lower integrate.factors")
    ep = cfg["predict"].get("endpoint")
    if ep is not None and ep not in sheet.columns:
        raise ConfigError(f"column '{ep}' is not in the sample sheet {cfg['samples']}",
                          file=source, where="predict.endpoint",
                          hint=f"use one of its columns ({_some(sheet.columns)}) or null")
    if cfg.get("outcome") is not None:
        y = sheet[cfg["outcome"]].dropna()
        if y.nunique() < 2:
            raise ConfigError(f"outcome column '{cfg['outcome']}' has fewer than two distinct "
                              "values", file=source, where="outcome",
                              hint="choose a column that varies, or set outcome: null")
    priv = cfg["privacy"]
    if priv["pseudonymize"]:
        mf = priv.get("mapping_file")
        if not mf:
            raise ConfigError("pseudonymize is true but no mapping_file is set", file=source,
                              where="privacy.mapping_file",
                              hint="name a file outside results/ for the ID -> pseudonym table")
        res = (wd / "results").resolve()
        if (wd / mf).resolve().is_relative_to(res):
            raise ConfigError(f"'{mf}' lies inside results/", file=source,
                              where="privacy.mapping_file",
                              hint="keep the re-identification table apart from the results "
                                   "you share; choose a path outside results/")
        from .privacy import load_key

        load_key(priv["key_env"], priv.get("key_file") and str(wd / priv["key_file"]))
    _resolve_kinds(cfg, sheet, source)
    endpoint = ep or cfg.get("outcome")
    if endpoint is not None:
        from .errors import AnalysisError
        from .predict import check_classes

        try:
            check_classes(sheet[endpoint], cfg["predict"]["folds"],
                          cfg["predict"]["inner_folds"], cfg["predict"]["endpoint_kind"])
        except AnalysisError as err:
            raise ConfigError(err.what, file=source,
                              where="predict.endpoint" if ep else "outcome (predicted)",
                              hint=err.hint) from None
    _check_sizes(cfg, sheet, source, sf)
    _check_apply(cfg, source, exists, wd)
    if len(cfg["omics"]) == 1:
        log.warning("only one omic configured: MOFA+ then acts as a sparse factor analysis of "
                    "that omic, not a multi-omic integration")
    return cfg


def _resolve_kinds(cfg: dict[str, Any], sheet: Any, source: str) -> None:
    """Decide once, on the whole sample sheet, whether the outcome and the endpoint are
    classes or numbers (``auto`` becomes ``classes`` or ``numbers`` in the config every rule
    receives); a column of text declared numbers is an error."""
    import pandas as pd

    from .outcome import resolve

    endpoint = cfg["predict"].get("endpoint") or cfg.get("outcome")
    for col, where, holder, key in ((cfg.get("outcome"), "outcome_kind", cfg, "outcome_kind"),
                                    (endpoint, "predict.endpoint_kind", cfg["predict"],
                                     "endpoint_kind")):
        if col is None:
            continue
        y = sheet[col].dropna()
        if holder[key] == "numbers":
            numeric = pd.to_numeric(y, errors="coerce")
            if numeric.isna().any():
                bad = y[numeric.isna()].iloc[0]
                raise ConfigError(f"{where} is numbers but column '{col}' holds text (e.g. "
                                  f"{bad!r})", file=source, where=where,
                                  hint="set it to classes or auto, or fix the column")
        holder[key] = resolve(holder[key], y)
        log.info("%s: column '%s' holds %s", where, col, holder[key])
        if holder[key] == "classes":
            _check_class_spellings(y, col, where.removesuffix("_kind"), source)


def _check_class_spellings(y: Any, col: str, where: str, source: str) -> None:
    """Refuse class labels that differ only in case, spaces or punctuation ('Responder' and
    'responder ', 'non-responder' and 'non_responder'): spreadsheet exports and hand-entered
    sheets have them, and each spelling would silently be a class of its own."""
    from .outcome import label_key

    counts = y.astype(str).str.strip().value_counts()
    seen: dict[str, str] = {}
    for label in sorted(counts.index):
        k = label_key(label)
        if k is None:
            continue
        if k in seen:
            a, b = seen[k], label
            raise ConfigError(
                f"column '{col}' has classes '{a}' ({int(counts[a])} sample"
                f"{'s' if counts[a] != 1 else ''}) and '{b}' "
                f"({int(counts[b])}) that differ only in case, spaces or punctuation: each "
                "would be a class of its own", file=source, where=where,
                hint="write each class one way in the sample sheet")
        seen[k] = label


def _check_sizes(cfg: dict[str, Any], sheet: Any, source: str, sf: Any) -> None:
    """Every cross-validation and resampling step has enough samples per class, fold and
    cluster, checked on the sample sheet before any job runs (the tables may hold fewer)."""
    n = len(sheet)
    nn = cfg["cluster"]["n_neighbors"]
    if n <= nn:
        raise ConfigError(f"cluster.n_neighbors is {nn} but the sample sheet has {n} samples",
                          file=source, where="cluster.n_neighbors",
                          hint=f"lower it below {n}")
    outcome = cfg.get("outcome")
    sel = cfg["select"]
    if outcome is not None:
        y = sheet[outcome].dropna()
        if cfg["outcome_kind"] == "classes":
            counts = y.astype(str).value_counts()
            small, k = counts.idxmin(), int(counts.min())
            if sel["rf"] and k < sel["rf_folds"]:
                raise ConfigError(
                    f"outcome class '{small}' has {k} samples, fewer than the "
                    f"{sel['rf_folds']} folds of the random-forest importance", file=source,
                    where="select.rf_folds", hint=f"set select.rf_folds to at most {k}, merge "
                                                  "rare classes, or set select.rf: false")
            if k < 4:
                raise ConfigError(
                    f"outcome class '{small}' has {k} samples: stability selection draws half "
                    "of the samples and needs at least 4 per class", file=source,
                    where="outcome", hint="merge rare classes or choose another outcome")
    if sf is not None and cfg["predict"]["survival"]:  # sf: the checked survival frame
        ev, folds = int(sf["event"].sum()), cfg["predict"]["folds"]
        if min(ev, len(sf) - ev) < folds:
            raise ConfigError(
                f"{ev} events among {len(sf)} patients with survival data: too few for "
                f"{folds}-fold cross-validation of survival", file=source,
                where="predict.survival", hint="lower predict.folds or set predict.survival: "
                                               "false")


def _check_apply(cfg: dict[str, Any], source: str, exists: Any, wd: Path) -> None:
    """Cohorts to score: files exist; with this run's own bundle, omics and kinds match."""
    own = f"results/{cfg['cohort']}/model"
    for name, a in cfg["apply"].items():
        where = f"apply.{name}"
        exists(a["samples"], f"{where}.samples")
        for o, t in a["omics"].items():
            exists(t["path"], f"{where}.omics.{o}.path")
        if Path(a["model"]).as_posix().rstrip("/") == own:
            for o, t in a["omics"].items():
                if o not in cfg["omics"]:
                    raise ConfigError(f"omic '{o}' is not one of the discovery omics "
                                      f"({', '.join(cfg['omics'])})", file=source,
                                      where=f"{where}.omics",
                                      hint="name each table after the discovery omic it "
                                           "measures")
                if t.get("kind") not in (None, cfg["omics"][o]["kind"]):
                    raise ConfigError(f"kind {t['kind']} differs from the discovery's "
                                      f"{cfg['omics'][o]['kind']}", file=source,
                                      where=f"{where}.omics.{o}.kind",
                                      hint="the model transforms new data as it transformed "
                                           "the discovery data; leave kind out or match it")
        elif not (wd / a["model"] / "manifest.json").exists():
            raise ConfigError(f"'{a['model']}' is not a model bundle (no manifest.json)",
                              file=source, where=f"{where}.model",
                              hint=f"use {own} (built by this run) or the model directory "
                                   "of a finished discovery run")
        if a.get("outcome") is not None:
            sheet = read_sample_sheet(wd / a["samples"])
            if a["outcome"] not in sheet.columns:
                raise ConfigError(f"column '{a['outcome']}' is not in the sample sheet "
                                  f"{a['samples']}", file=source, where=f"{where}.outcome",
                                  hint=f"use one of its columns ({_some(sheet.columns)}) or "
                                       "null")


def _some(cols: Any, n: int = 6) -> str:
    cols = list(cols)
    s = ", ".join(map(str, cols[:n]))
    return s + (", ..." if len(cols) > n else "")


def schema_markdown() -> str:
    """The configuration reference table of the README, generated from the schema.

    ``tests/test_config.py`` checks the README holds exactly this table, so the two cannot drift.
    """
    schema = load_schema()
    rows = ["| key | type | default | meaning |", "|---|---|---|---|"]

    def typ(v: dict[str, Any]) -> str:
        t = v.get("type")
        return " or ".join(t) if isinstance(t, list) else str(t)

    def walk(props: dict[str, Any], prefix: str) -> None:
        for k, v in props.items():
            v = _resolve(v, schema)
            d = json.dumps(v["default"]) if "default" in v else "**required**"
            desc = v.get("description", "").replace("|", "/")
            rows.append(f"| `{prefix}{k}` | {typ(v)} | {d} | {desc} |")
            if "properties" in v:
                walk(v["properties"], f"{prefix}{k}.")
            extra = v.get("additionalProperties")
            if isinstance(extra, dict) and "$ref" in extra:
                walk(_resolve(extra, schema)["properties"], f"{prefix}{k}.<name>.")

    walk(schema["properties"], "")
    return "\n".join(rows) + "\n"


def update_readme(readme: str | os.PathLike[str]) -> bool:
    """Replace the configuration table of ``readme`` with :func:`schema_markdown`; True when
    the file changed (``make docs``)."""
    path = Path(readme)
    lines = path.read_text().splitlines(keepends=True)
    start = next(i for i, ln in enumerate(lines) if ln.startswith("| key | type | default |"))
    end = start
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    new = "".join([*lines[:start], schema_markdown(), *lines[end:]])
    changed = new != path.read_text()
    if changed:
        path.write_text(new)
    return changed


if __name__ == "__main__":
    import sys

    print("README.md configuration table", "updated" if update_readme(
        sys.argv[1] if len(sys.argv) > 1 else "README.md") else "already current")
