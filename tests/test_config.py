import copy
import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml
from omix.config import check_config, fill_defaults, load_schema, schema_markdown, validate_config
from omix.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def base():
    return yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


@pytest.mark.parametrize("name", ["config.yaml", "synthetic.yaml"])
def test_bundled_configs_are_valid(name):
    cfg = yaml.safe_load((ROOT / "config" / name).read_text())
    out = check_config(cfg, source=name, workdir=ROOT)
    assert out["integrate"]["convergence"] == "fast"        # default filled
    for omic in out["omics"].values():
        assert omic["max_missing"] == 0.5 and "layout" in omic


def test_defaults_fill_nested_and_per_omic():
    cfg = {"cohort": "c", "samples": "s.tsv", "omics": {"a": {"path": "x", "kind": "beta"}}}
    out = validate_config(cfg)
    assert out["outcome"] is None
    assert out["cluster"]["resolutions"][0] == 0.1
    assert out["omics"]["a"]["layout"] == "features_x_samples"
    assert out["omics"]["a"]["impute"] == "half_min"
    assert cfg["omics"]["a"] == {"path": "x", "kind": "beta"}  # input not modified


@pytest.mark.parametrize("mutate,pattern", [
    (lambda c: c.update(colour="red"), r"\(top level\): Additional properties.*'colour'"),
    (lambda c: c["integrate"].update(factors="ten"), r"integrate\.factors: 'ten' has the wrong "
                                                      r"type; expected integer"),
    (lambda c: c.pop("omics"), r"'omics' is a required property; add it"),
    (lambda c: c["omics"]["rna"].update(kind="countz"), r"omics\.rna\.kind: 'countz' is not "
                                                         r"allowed; use one of: counts"),
    (lambda c: c["omics"]["rna"].update(layout="wide"), r"omics\.rna\.layout"),
    (lambda c: c.update(omics={}), r"omics: .*should be non-empty|does not have enough"),
    (lambda c: c["cluster"].update(resolutions=[]), r"cluster\.resolutions"),
    (lambda c: c.update(cohort="a b"), r"cohort: 'a b' does not match"),
    (lambda c: c.update(select={"stability_c": 0.05}),
     r"select\.stability_c: stability_c was replaced by select\.stability_penalty .*delete"),
])
def test_invalid_configs_give_one_line_naming_the_key(mutate, pattern):
    cfg = base()
    mutate(cfg)
    with pytest.raises(ConfigError) as e:
        validate_config(cfg, source="my.yaml")
    msg = str(e.value)
    assert msg.startswith("my.yaml: ") and "\n" not in msg
    assert re.search(pattern, msg), msg


def test_semantic_checks(tmp_path):
    cfg = base()
    cfg["omics"]["rna"]["path"] = "nope.csv"
    with pytest.raises(ConfigError, match=r"omics\.rna\.path: file 'nope.csv' does not exist"):
        check_config(cfg, workdir=ROOT)
    cfg = base()
    cfg["omics"]["rna"]["columns"] = "^LFQ (intensity"
    with pytest.raises(ConfigError, match=r"omics\.rna\.columns: regular expression does not "
                                          r"compile: missing \), unterminated subpattern"):
        check_config(cfg, workdir=ROOT)
    cfg["omics"]["rna"]["columns"] = "^(LFQ) intensity (.+)$"
    with pytest.raises(ConfigError, match=r"omics\.rna\.columns: regular expression has 2 "
                                          r"capture groups.*one group around the label kept"):
        check_config(cfg, workdir=ROOT)
    cfg = base()
    cfg["omics"]["rna"].update(long={"sample": "s", "feature": "f", "value": "v"}, columns="^P")
    with pytest.raises(ConfigError, match=r"omics\.rna: long and columns are both set\. A long "
                                          r"table names its columns in long: only"):
        check_config(cfg, workdir=ROOT)
    cfg = base()
    cfg["outcome"] = "no_such_column"
    with pytest.raises(ConfigError, match="outcome: column 'no_such_column' is not in the "
                                          "sample sheet"):
        check_config(cfg, workdir=ROOT)
    cfg = base()
    cfg["outcome"] = "tumor_tissue_site"  # a single value for every patient
    with pytest.raises(ConfigError, match="fewer than two distinct values"):
        check_config(cfg, workdir=ROOT)
    cfg = base()
    cfg["predict"] = {"cv": "leave_group_out"}
    with pytest.raises(ConfigError, match=r"predict\.cv: leave_group_out needs a groups "
                                          r"column. Set groups:"):
        check_config(cfg, workdir=ROOT)
    cfg["groups"] = "hospital"
    with pytest.raises(ConfigError, match="groups: column 'hospital' is not in the sample "
                                          "sheet"):
        check_config(cfg, workdir=ROOT)
    cfg["groups"] = "tumor_tissue_site"   # one site in the bundled extract
    with pytest.raises(ConfigError, match="predict.cv: groups column 'tumor_tissue_site' has "
                                          "fewer than two groups"):
        check_config(cfg, workdir=ROOT)


def test_groups_need_every_patient_in_a_group_of_three(tmp_path):
    """MOFA+ groups: a patient without a site, or a site of two patients, is refused before
    anything runs, naming the column, the sheet's line (never the patient's ID) or the site;
    a site or batch spelt two ways would be two sites or batches, and is refused too."""
    import pandas as pd

    sheet = pd.read_csv(ROOT / "config" / "samples.tsv", sep="\t", dtype=str)
    sheet["site"] = ["north", "south"] * (len(sheet) // 2) + ["north"] * (len(sheet) % 2)
    sheet.loc[5, "site"] = None
    sheet.to_csv(tmp_path / "sheet.tsv", sep="\t", index=False)
    cfg = base()
    cfg["samples"] = str(tmp_path / "sheet.tsv")
    for o in cfg["omics"].values():
        o["path"] = str(ROOT / o["path"])
    cfg["groups"] = "site"
    with pytest.raises(ConfigError, match="groups: 1 patient\\(s\\) have no value in the "
                                          "groups column 'site' .* \\(first at line 7\\)") as e:
        check_config(cfg, workdir=ROOT)
    assert sheet.iloc[5, 0] not in str(e.value)       # the sheet's line, not the patient's ID
    sheet.loc[5, "site"] = "North "
    sheet.to_csv(tmp_path / "sheet.tsv", sep="\t", index=False)
    with pytest.raises(ConfigError, match="groups: column 'site' has classes 'North' \\(1 "
                                          "sample\\) and 'north' .* differ only in case"):
        check_config(cfg, workdir=ROOT)
    sheet.loc[5, "site"] = "north"
    sheet.loc[[7, 9], "site"] = "east"
    sheet.to_csv(tmp_path / "sheet.tsv", sep="\t", index=False)
    with pytest.raises(ConfigError, match="groups: group 'east' of column 'site' has 2 "
                                          "patient\\(s\\); MOFA\\+ groups need at least 3"):
        check_config(cfg, workdir=ROOT)
    sheet.loc[11, "site"] = "east"
    sheet.to_csv(tmp_path / "sheet.tsv", sep="\t", index=False)
    assert check_config(cfg, workdir=ROOT)["groups"] == "site"
    # a batch column spelt two ways would be two batches for ComBat
    sheet["run"] = ["run_1", "run_2"] * (len(sheet) // 2) + ["run_1"] * (len(sheet) % 2)
    sheet.loc[3, "run"] = "Run 1"
    sheet.to_csv(tmp_path / "sheet.tsv", sep="\t", index=False)
    cfg["normalize"] = {"batch": "run"}
    with pytest.raises(ConfigError, match="normalize.batch: column 'run' has classes 'Run 1' "
                                          "\\(1 sample\\) and 'run_1'"):
        check_config(cfg, workdir=ROOT)


def test_schemas_are_draft_2020_12_and_fully_documented():
    for name in ("config.schema.json", "samples.schema.json"):
        schema = json.loads((ROOT / "config" / "schemas" / name).read_text())
        assert schema["$schema"].endswith("2020-12/schema")
        jsonschema.Draft202012Validator.check_schema(schema)
    schema = load_schema()
    missing = []

    def walk(node, path, required=()):
        for key, sub in node.get("properties", {}).items():
            sub = schema["$defs"]["omic"] if sub.get("$ref") == "#/$defs/omic" else sub
            p = f"{path}.{key}" if path else key
            if "description" not in sub or "type" not in sub:
                missing.append(p)
            if "default" not in sub and key not in required and sub.get("type") != "object":
                missing.append(p + " (default)")
            walk(sub, p, sub.get("required", ()))
    walk(schema, "", schema["required"])
    walk(schema["$defs"]["omic"], "omics.<name>", schema["$defs"]["omic"]["required"])
    assert missing == []


def test_readme_config_reference_is_the_schema():
    readme = (ROOT / "README.md").read_text()
    table = schema_markdown()
    assert table in readme, "regenerate the README table with omix.config.schema_markdown()"
    schema = load_schema()
    for key in [*list(schema["properties"]), "omics.<name>.kind", "privacy.mapping_file"]:
        assert f"`{key}`" in table


def test_sample_sheet_schema_accepts_the_bundled_sheets():
    import pandas as pd

    schema = json.loads((ROOT / "config" / "schemas" / "samples.schema.json").read_text())
    for path in (ROOT / "config" / "samples.tsv", ROOT / "resources/synthetic/samples.tsv"):
        df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
        for rec in df.replace({"": None}).to_dict(orient="records"):
            jsonschema.validate(rec, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"age": "3"}, schema)


def test_fill_defaults_does_not_touch_given_values():
    schema = load_schema()
    cfg = copy.deepcopy(base())
    cfg["integrate"]["factors"] = 3
    assert fill_defaults(cfg, schema)["integrate"]["factors"] == 3


@pytest.mark.parametrize("section,cls", [("predict", "omix.predict.PredictOptions"),
                                         ("cluster", "omix.tl.ClusterOptions"),
                                         ("integrate", "omix.mofa.MofaOptions")])
def test_options_dataclass_defaults_equal_the_schema_defaults(section, cls):
    import dataclasses
    import importlib

    mod, name = cls.rsplit(".", 1)
    options = getattr(importlib.import_module(mod), name)
    props = load_schema()["properties"][section]["properties"]
    shared = [f for f in dataclasses.fields(options) if f.name in props]
    assert len(shared) >= 4
    for f in shared:
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        want = props[f.name]["default"]
        assert (list(default) if isinstance(default, tuple) else default) == want, f.name


def test_outcome_and_endpoint_kinds_are_resolved_once_on_the_whole_sheet(tmp_path):
    """auto becomes classes or numbers at parse time, from the whole sample sheet, and every
    rule receives that answer; an explicit choice is kept; text declared numbers is refused."""
    import numpy as np
    import pandas as pd

    sheet = pd.read_csv(ROOT / "config" / "samples.tsv", sep="\t", dtype=str)
    rng = np.random.default_rng(0)
    sheet["stage_code"] = rng.integers(1, 5, len(sheet))         # 4 levels coded as numbers
    sheet["dose"] = rng.normal(10, 2, len(sheet)).round(3)       # numbers
    path = tmp_path / "samples.tsv"
    sheet.to_csv(path, sep="\t", index=False)

    def resolved(**cfg_updates):
        cfg = base()
        cfg["samples"] = str(path)
        for k, v in cfg_updates.items():
            if k == "endpoint":
                cfg.setdefault("predict", {})["endpoint"] = v
            elif k == "endpoint_kind":
                cfg.setdefault("predict", {})["endpoint_kind"] = v
            else:
                cfg[k] = v
        out = check_config(cfg, workdir=ROOT)
        return out["outcome_kind"], out["predict"]["endpoint_kind"]

    assert resolved(outcome="stage_code", endpoint="dose") == ("classes", "numbers")
    assert resolved(outcome="dose") == ("numbers", "numbers")      # endpoint = outcome
    assert resolved(outcome="stage_code", endpoint="stage_code",
                    endpoint_kind="numbers") == ("classes", "numbers")
    with pytest.raises(ConfigError) as err:
        resolved(outcome="C1A.C1B", outcome_kind="numbers")
    assert re.search(r"outcome_kind: outcome_kind is numbers but column 'C1A\.C1B' holds "
                     r"text \(e\.g\. '\w+'\)\. Set it to classes or auto", err.value.one_line())


def test_class_labels_spelt_two_ways_are_refused(tmp_path):
    """'Responder' and 'responder ' (or non-responder / non_responder) in the outcome or the
    endpoint would each be a class of their own: the check names the column and both
    spellings with their counts."""
    import pandas as pd

    sheet = pd.read_csv(ROOT / "config" / "samples.tsv", sep="\t", dtype=str)
    n = len(sheet)
    resp = ["Responder"] * (n // 2) + ["non-responder"] * (n - n // 2)
    resp[1] = resp[3] = "responder "
    sheet["resp"] = resp
    sheet["arm"] = ["non_responder" if i == 5 else r for i, r in enumerate(resp)]
    path = tmp_path / "samples.tsv"
    sheet.to_csv(path, sep="\t", index=False)
    cfg = base()
    cfg["samples"], cfg["outcome"] = str(path), "resp"
    with pytest.raises(ConfigError) as err:
        check_config(cfg, workdir=ROOT)
    assert re.search(r"outcome: column 'resp' has classes 'Responder' \(\d+ samples\) and "
                     r"'responder' \(2\) that differ only in case, spaces or punctuation",
                     err.value.one_line())
    cfg = base()
    cfg["samples"], cfg["outcome"] = str(path), None
    cfg.setdefault("predict", {})["endpoint"] = "arm"
    with pytest.raises(ConfigError) as err:
        check_config(cfg, workdir=ROOT)
    assert "predict.endpoint: column 'arm' has classes 'non-responder'" in err.value.one_line()
    assert "and 'non_responder' (1)" in err.value.one_line()
    # one spelling per class passes
    sheet["resp"] = [r.strip().capitalize() for r in resp]
    sheet.to_csv(path, sep="\t", index=False)
    cfg = base()
    cfg["samples"], cfg["outcome"] = str(path), "resp"
    assert check_config(cfg, workdir=ROOT)["outcome_kind"] == "classes"


def test_steps_use_the_resolved_kind_not_their_subset():
    """A numeric column with few levels is a class by the rule on a small subset but numbers
    when the config says so: prediction then reports R2, not AUC."""
    import numpy as np
    import pandas as pd
    from omix import predict as pr

    rng = np.random.default_rng(2)
    x = pd.DataFrame(rng.normal(size=(60, 8)), columns=[f"v:{j}" for j in range(8)])
    y = pd.Series(np.round(x.iloc[:, 0] * 1.5).clip(-2, 2) + 3, name="score")  # 5 levels
    opts = pr.PredictOptions(folds=3, repeats=1, inner_folds=3, models=("l2_features",))
    per_auto = pr.nested_cv_matrix(x, y, opts)
    per_numbers = pr.nested_cv_matrix(x, y, pr.PredictOptions(
        folds=3, repeats=1, inner_folds=3, models=("l2_features",), endpoint_kind="numbers"))
    assert "auc" in per_auto and "auc" not in per_numbers and "r2" in per_numbers
