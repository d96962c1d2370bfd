"""The bad-input corpus: every case runs the real workflow (snakemake CLI) on a tiny cohort.

Each case must end with exit code != 0, exactly one line starting with ``ERROR`` that names the
file or config key and what to do, no traceback, and no output of the failing rule.  Two inputs
that are *not* errors (one omic only; all-missing and constant features) are checked to pass
with the note they deserve.
"""

from __future__ import annotations

import gzip
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import run_snakemake
from omix.exporter_bench import adat_text

Case = Callable[[Path, dict[str, Any]], None]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from omix.synthetic import SyntheticSpec, write

    out = tmp_path_factory.mktemp("tiny")
    write(SyntheticSpec(n_samples=24, seed=5, rna_features=40, mutation_features=20,
                        protein_features=20, metabolite_features=20,
                        methylation_features=30, missing_view_fraction=0.0), out / "data")
    cfg = {"cohort": "tiny", "samples": "data/samples.tsv", "outcome": "response",
           "omics": {
               "rna": {"path": "data/rna_counts.csv", "kind": "counts"},
               "mutations": {"path": "data/mutations.tsv.gz", "kind": "binary",
                             "min_prevalence": 0.0},
               "methylation": {"path": "data/methylation.csv", "kind": "beta"},
               "metabolites": {"path": "data/metabolomics.parquet", "kind": "intensity",
                               "pqn": True}},
           "survival": {"time": "os_time", "event": "os_event"},
           "integrate": {"factors": 3}}
    (out / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return out


def edit_csv(rel: str, fn: Callable[[list[list[str]]], None]) -> Case:
    def case(work: Path, cfg: dict[str, Any]) -> None:
        p = work / rel
        rows = [line.split(",") for line in p.read_text().splitlines()]
        fn(rows)
        p.write_text("\n".join(",".join(r) for r in rows) + "\n")
    return case


def set_cell(r: int, c: int, value: str) -> Callable[[list[list[str]]], None]:
    def fn(rows: list[list[str]]) -> None:
        rows[r][c] = value
    return fn


def edit_cfg(fn: Callable[[dict[str, Any]], None]) -> Case:
    def case(work: Path, cfg: dict[str, Any]) -> None:
        fn(cfg)
    return case


def write_file(rel: str, data: bytes) -> Case:
    def case(work: Path, cfg: dict[str, Any]) -> None:
        (work / rel).write_bytes(data)
    return case


def sheet(fn: Callable[[pd.DataFrame], pd.DataFrame]) -> Case:
    def case(work: Path, cfg: dict[str, Any]) -> None:
        p = work / "data" / "samples.tsv"
        fn(pd.read_csv(p, sep="\t", dtype=str)).to_csv(p, sep="\t", index=False)
    return case


def truncate_gzip(work: Path, cfg: dict[str, Any]) -> None:
    p = work / "data" / "mutations.tsv.gz"
    text = gzip.decompress(p.read_bytes()) * 40
    data = gzip.compress(text, mtime=0)
    p.write_bytes(data[: len(data) // 2])


def transpose_rna(work: Path, cfg: dict[str, Any]) -> None:
    p = work / "data" / "rna_counts.csv"
    pd.read_csv(p, index_col=0).T.rename_axis("sample").to_csv(p)


def rename_columns(prefix: str, first_only: bool = False) -> Case:
    def fn(rows: list[list[str]]) -> None:
        for j in range(1, 2 if first_only else len(rows[0])):
            rows[0][j] = prefix + rows[0][j][4:]
    return edit_csv("data/rna_counts.csv", fn)


def aliquots(work: Path, cfg: dict[str, Any]) -> None:
    p = work / "data" / "rna_counts.csv"
    rows = [line.split(",") for line in p.read_text().splitlines()]
    rows[0] = [rows[0][0]] + [f"{c}-01A" for c in rows[0][1:]]
    rows[0][2] = rows[0][1][:-4] + "-02A"  # a second aliquot of the first patient
    p.write_text("\n".join(",".join(r) for r in rows) + "\n")
    cfg["sample_id"] = {"regex": r"^(SYN-\d{4})"}


def privacy(**kw: Any) -> Case:
    def case(work: Path, cfg: dict[str, Any]) -> None:
        cfg["privacy"] = {"pseudonymize": True, "key_env": "OMIX_TEST_KEY_NOT_SET", **kw}
    return case


def rewrite(rel: str, fn: Callable[[str], bytes]) -> Case:
    """Replace a table's text by ``fn(text)`` (bytes: any encoding or compression)."""
    def case(work: Path, cfg: dict[str, Any]) -> None:
        p = work / rel
        p.write_bytes(fn(p.read_text()))
    return case


def lines(fn: Callable[[list[str]], list[str]]) -> Callable[[str], bytes]:
    return lambda text: ("\n".join(fn(text.splitlines())) + "\n").encode()


def adat_with_a_bad_cell(work: Path, cfg: dict[str, Any]) -> None:
    """The metabolites as a SomaLogic ADAT whose 2nd study sample has a text cell."""
    met = pd.read_parquet(work / "data" / "metabolomics.parquet").set_index("feature").T
    lines = adat_text(met).split("\n")
    k = [i for i, ln in enumerate(lines) if "\tSample\t" in ln][1]
    cells = lines[k].split("\t")
    cells[7] = "n.d."
    lines[k] = "\t".join(cells)
    (work / "data" / "metabolites.adat").write_text("\n".join(lines))
    cfg["omics"]["metabolites"]["path"] = "data/metabolites.adat"


def disjoint_omics(work: Path, cfg: dict[str, Any]) -> None:
    """Two omics measured on different patients: rna on the first 12, methylation on the rest."""
    for rel, keep in (("data/rna_counts.csv", slice(0, 13)),
                      ("data/methylation.csv", [0, *range(13, 25)])):
        p = work / rel
        rows = [ln.split(",") for ln in p.read_text().splitlines()]
        cols = list(range(25))[keep] if isinstance(keep, slice) else keep
        p.write_text("\n".join(",".join(r[j] for j in cols) for r in rows) + "\n")
    cfg["omics"] = {"rna": cfg["omics"]["rna"], "methylation": cfg["omics"]["methylation"]}


# id, mutation, stage ("config" = fails before any job), expected message (regex)
def apply_cohort(model: str | None = None, omic: str = "methylation", kind: str | None = None,
                 bad_cell: bool = False) -> Case:
    """An apply: entry scoring the tiny cohort's methylation table with a bundle; without
    ``model``, a stand-in bundle holding what apply_ingest reads (the omic kinds)."""
    def case(work: Path, cfg: dict[str, Any]) -> None:
        path = "data/methylation.csv"
        if bad_cell:
            rows = [ln.split(",") for ln in (work / path).read_text().splitlines()]
            rows[4][7] = "high"
            path = "data/val_methylation.csv"
            (work / path).write_text("\n".join(",".join(r) for r in rows) + "\n")
        if model is None:
            (work / "bundle").mkdir()
            for stub in ("manifest.json", "frozen.json"):  # never read before the error
                (work / "bundle" / stub).write_text("{}\n")
            (work / "bundle" / "normalization.json").write_text(
                '{"methylation": {"kind": "beta"}}\n')
        table = {"path": path} if kind is None else {"path": path, "kind": kind}
        cfg["apply"] = {"val": {"model": model or "bundle", "samples": "data/samples.tsv",
                                "omics": {omic: table}}}
    return case


CASES: list[tuple[str, Case, str, str]] = [
    # config
    ("config_unknown_key", edit_cfg(lambda c: c.update(colour="red")), "config",
     r"\(top level\): Additional properties are not allowed \('colour' was unexpected\)"),
    ("config_wrong_type", edit_cfg(lambda c: c["integrate"].update(factors="3")), "config",
     r"integrate\.factors: '3' has the wrong type; expected integer"),
    ("config_missing_required", edit_cfg(lambda c: c.pop("samples")), "config",
     r"'samples' is a required property; add it to the config"),
    ("config_unknown_kind", edit_cfg(lambda c: c["omics"]["rna"].update(kind="rnaseq")),
     "config", r"omics\.rna\.kind: 'rnaseq' is not allowed; use one of: counts, intensity"),
    ("config_path_missing", edit_cfg(lambda c: c["omics"]["rna"].update(path="data/x.csv")),
     "config", r"omics\.rna\.path: file 'data/x\.csv' does not exist"),
    ("config_cohort_escapes_results", edit_cfg(lambda c: c.update(cohort="../elsewhere")),
     "config", r"cohort: '\.\./elsewhere' does not match"),
    ("config_outcome_not_a_column", edit_cfg(lambda c: c.update(outcome="respons")), "config",
     r"outcome: column 'respons' is not in the sample sheet"),
    ("config_constant_outcome", sheet(lambda d: d.assign(response="responder")), "config",
     r"outcome column 'response' has fewer than two distinct values"),
    ("config_no_omics", edit_cfg(lambda c: c.update(omics={})), "config",
     r"omics: \{\} should be non-empty"),
    ("config_mapping_file_inside_results",
     privacy(mapping_file="results/tiny/map.tsv"), "config",
     r"privacy\.mapping_file: 'results/tiny/map\.tsv' lies inside results/"),
    ("config_pseudonymize_without_key", privacy(mapping_file="private/map.tsv"), "config",
     r"privacy: privacy\.pseudonymize is true but no key of at least 16 characters"),
    # sample sheet
    ("sheet_no_sample_id", sheet(lambda d: d.rename(columns={"sample_id": "id"})), "config",
     r"samples\.tsv: has no 'sample_id' column"),
    ("sheet_duplicated_ids", sheet(lambda d: pd.concat([d, d.iloc[[3]]])), "config",
     r"samples\.tsv: sample_id at row 26 repeats the one at row 5"),
    ("sheet_empty", sheet(lambda d: d.iloc[:0]), "config",
     r"samples\.tsv: has a header but no samples"),
    ("sheet_ids_match_no_table", sheet(lambda d: d.assign(sample_id="X" + d["sample_id"])),
     "ingest", r"none of the 24 sample column labels matches a sample_id"),
    # omic tables
    ("table_empty_file", write_file("data/methylation.csv", b""), "ingest",
     r"methylation\.csv: file is empty"),
    ("table_header_only", edit_csv("data/methylation.csv", lambda r: r.__delitem__(
        slice(1, None))), "ingest", r"methylation\.csv: has a header but no data rows"),
    ("table_duplicated_feature", edit_csv("data/methylation.csv", set_cell(3, 0, "cg00000001")),
     "ingest", r"feature 'cg00000001' appears twice \(rows 2 and 4\)"),
    ("table_duplicated_sample", edit_csv("data/methylation.csv", set_cell(0, 5, "SYN-0001")),
     "ingest", r"sample columns 2 and 6 have the same label"),
    ("table_non_numeric_cell", edit_csv("data/methylation.csv", set_cell(4, 7, "high")),
     "ingest", r"non-numeric cell at row 5, column 8 \(feature 'cg00000004'\); 1 such cell"),
    ("table_inf", edit_csv("data/methylation.csv", set_cell(2, 2, "inf")), "ingest",
     r"infinite value at row 3, column 3"),
    ("table_negative_counts", edit_csv("data/rna_counts.csv", set_cell(3, 3, "-4")), "ingest",
     r"rna_counts\.csv: negative count at row 4, column 4 \(feature 'GENE0003'\)\. Counts "
     r"must be >= 0"),
    ("table_beta_outside_0_1", edit_csv("data/methylation.csv", set_cell(2, 4, "1.7")),
     "ingest", r"beta value outside \[0, 1\]"),
    ("table_binary_not_0_1", edit_cfg(lambda c: c["omics"]["methylation"].update(
        kind="binary")), "ingest", r"methylation\.csv: value other than 0/1"),
    ("table_wrong_orientation", transpose_rna, "ingest",
     r"oriented the other way\. Set layout: samples_x_features"),
    ("table_not_csv_tsv_parquet", write_file("data/metabolomics.parquet",
                                             b"<html>not a table</html>\n"), "ingest",
     r"metabolomics\.parquet: not a parquet file"),
    ("table_binary_garbage_as_csv", write_file("data/methylation.csv",
                                               bytes(range(256)) * 8), "ingest",
     r"methylation\.csv: holds NUL bytes: UTF-16 text without a byte-order mark, or not a "
     r"text table at all"),
    ("table_truncated_gzip", truncate_gzip, "ingest",
     r"mutations\.tsv\.gz: gzip stream is truncated or corrupt"),
    ("table_zero_overlap", rename_columns("XXX-"), "ingest",
     r"none of the 24 sample column labels matches a sample_id"),
    ("table_unknown_samples", rename_columns("XXX-", first_only=True), "ingest",
     r"1 of 24 sample columns match no sample_id of the sample sheet \(first: column 2\)"),
    ("table_two_aliquots_one_sample", aliquots, "ingest",
     r"sample columns 2 and 3 map to the same sample_id"),
    ("table_sample_placeholder", edit_csv("data/methylation.csv", lambda rows: [
        r.__setitem__(4, "0.5") for r in rows[1:]]), "ingest",
     r"methylation\.csv: sample column 5 has one and the same value in all 30 of its measured "
     r"features\. That is a placeholder an export wrote"),
    ("table_sample_copied", edit_csv("data/rna_counts.csv", lambda rows: [
        r.__setitem__(9, r[3]) for r in rows[1:]]), "ingest",
     r"rna_counts\.csv: sample columns 4 and 10 hold the same values in all 40 of their "
     r"measured features\. Two patients cannot have identical profiles"),
    ("table_adat_text_cell", adat_with_a_bad_cell, "ingest",
     r"metabolites\.adat: line 22, column 8 \(analyte '10002-3'\) is not a finite number"),
    ("table_counts_with_missing", edit_csv("data/rna_counts.csv", set_cell(2, 2, "")),
     "ingest", r"missing count at row 3, column 3 \(feature 'GENE0002'\)"),
    # exporters' damage: read exactly or refused with the cause, never shifted silently
    ("table_trailing_delimiter_on_data_rows",
     rewrite("data/methylation.csv", lines(lambda ls: [ls[0]] + [ln + "," for ln in ls[1:]])),
     "ingest", r"methylation\.csv: the header has 25 fields but every data row has 26, the "
               r"last one always empty: either each data row ends with a delimiter"),
    ("table_header_lacks_first_cell",
     rewrite("data/methylation.csv", lines(lambda ls: [ls[0].split(",", 1)[1], *ls[1:]])),
     "ingest", r"the header lacks the cell above the row labels \(as R's write\.table writes "
               r"it\)\. Add a label such as 'feature'"),
    ("table_row_with_extra_field",
     rewrite("data/methylation.csv", lines(lambda ls: [*ls[:3], ls[3] + ",0.5", *ls[4:]])),
     "ingest", r"methylation\.csv: line 4 has 26 fields but the header has 25"),
    ("table_latin1", rewrite("data/methylation.csv", lambda t: t.replace(
        "cg00000003", "cg0000000\u00e9").encode("latin-1")), "ingest",
     r"methylation\.csv: is not UTF-8 text: byte 0xe9 on line 4"),
    ("table_tab_separated_named_csv", rewrite("data/methylation.csv",
                                              lambda t: t.replace(",", "\t").encode()),
     "ingest", r"is read as csv \(comma-separated\) but its header line is tab-separated\. "
               r"Name it \.tsv or set format: tsv"),
    ("table_semicolons_and_decimal_commas", rewrite(
        "data/methylation.csv", lambda t: t.replace(",", ";").replace(".", ",").encode()),
     "ingest", r"separated by semicolons \(a European-locale export, often with decimal "
               r"commas\)"),
    ("table_named_gz_not_compressed", write_file("data/mutations.tsv.gz", b"feature\tx\n"),
     "ingest", r"mutations\.tsv\.gz: is named \.gz but its content is not compressed"),
    ("sheet_semicolons", rewrite("data/samples.tsv", lambda t: t.replace("\t", ";").encode()),
     "config", r"samples\.tsv: is read as tsv but its header line is separated by semicolons"),
    ("sheet_trailing_tabs",
     rewrite("data/samples.tsv", lines(lambda ls: [ls[0]] + [ln + "\t" for ln in ls[1:]])),
     "config", r"samples\.tsv: the header has 7 fields but every data row has 8"),
    ("sheet_duplicated_column", rewrite("data/samples.tsv", lines(
        lambda ls: [ls[0].replace("age", "sex"), *ls[1:]])), "config",
     r"samples\.tsv: columns 3 and 4 have the same name 'sex'\. Rename or remove one"),
    # config values that could only fail later
    ("config_regex_does_not_compile", edit_cfg(lambda c: c.update(
        sample_id={"regex": "^(SYN-[0-9]{4}"})), "config",
     r"sample_id\.regex: regular expression does not compile: missing \), unterminated "
     r"subpattern"),
    ("config_path_is_a_directory", edit_cfg(lambda c: c["omics"]["rna"].update(path="data")),
     "config", r"omics\.rna\.path: 'data' is a directory, not a file"),
    ("config_survival_event_as_words", sheet(lambda d: d.assign(
        os_event=d["os_event"].map({"1": "dead", "0": "alive"}))), "config",
     r"survival\.event: survival column 'os_event' holds 24 value\(s\) that are not numbers "
     r"\(first at sample row 2 of the sample sheet\)\. Code events as 1"),
    ("config_class_smaller_than_rf_folds", lambda w, c: (
        sheet(lambda d: d.assign(response=["yes"] * 5 + ["no"] * 19))(w, c),
        c.update(select={"rf_folds": 6})), "config",
     r"select\.rf_folds: outcome class 'yes' has 5 samples, fewer than the 6 folds of the "
     r"random-forest importance"),
    ("config_outcome_class_spelt_two_ways", sheet(lambda d: d.assign(
        response=["Responder"] * 12 + ["responder "] * 2 + ["no"] * 10)), "config",
     r"outcome: column 'response' has classes 'Responder' \(12 samples\) and 'responder' "
     r"\(2\) that differ only in case, spaces or punctuation"),
    ("config_too_few_events_for_survival_cv", sheet(lambda d: d.assign(
        os_event=["1"] * 3 + ["0"] * 21)), "config",
     r"predict\.survival: 3 events among 24 patients with survival data: too few for 5-fold"),
    ("config_neighbours_exceed_samples", edit_cfg(lambda c: c.update(
        cluster={"n_neighbors": 30})), "config",
     r"cluster\.n_neighbors: cluster\.n_neighbors is 30 but the sample sheet has 24 samples"),
    # cohort-level and arithmetic checks
    ("omics_share_no_sample", disjoint_omics, "mudata",
     r"no sample is measured in more than one omic \(samples per omic: rna 12, methylation "
     r"12\)"),
    ("counts_overflow_library_size", edit_csv("data/rna_counts.csv", lambda r: [
        r[2].__setitem__(4, "1e308"), r[3].__setitem__(4, "1e308")]), "normalize",
     r"rna: the total count of sample 4 \(table order\) overflows"),
    # cohorts to score with a frozen model (apply:)
    ("apply_omic_not_in_discovery", apply_cohort("results/tiny/model", omic="protein"),
     "config", r"apply\.val\.omics: omic 'protein' is not one of the discovery omics"),
    ("apply_kind_differs", apply_cohort("results/tiny/model", kind="counts"), "config",
     r"apply\.val\.omics\.methylation\.kind: kind counts differs from the discovery's beta"),
    ("apply_model_not_a_bundle", apply_cohort("data"), "config",
     r"apply\.val\.model: 'data' is not a model bundle \(no manifest\.json\)"),
    ("apply_table_non_numeric_cell", apply_cohort(bad_cell=True), "apply_ingest",
     r"val_methylation\.csv: non-numeric cell at row 5, column 8 \(feature 'cg00000004'\)"),
    # downstream
    ("endpoint_class_too_small", sheet(lambda d: d.assign(response=["yes"] * 3 + ["no"] * 21)),
     "config", r"outcome \(predicted\): endpoint 'response': class 'yes' has 3 samples; "
               r"5-fold outer and 3-fold inner cross-validation need at least 5 per class"),
    ("survival_negative_time", sheet(lambda d: d.assign(os_time=[-1.0] + [10.0] * 23)),
     "config", r"survival\.time: negative survival time \(first at sample row 2 of the sample "
               r"sheet\)"),
    ("fewer_samples_than_factors", edit_cfg(lambda c: c["integrate"].update(factors=30)),
     "config", r"integrate\.factors: 30 factors for 24 samples in the sample sheet\. MOFA\+ "
     r"needs more samples than factors"),
]


# one case per kind of failure runs in `make test`; the whole corpus in `make test-all` (CI)
QUICK = {"config_unknown_key", "config_outcome_not_a_column", "sheet_duplicated_ids",
         "table_non_numeric_cell", "table_header_lacks_first_cell", "table_truncated_gzip",
         "counts_overflow_library_size", "apply_model_not_a_bundle",
         "endpoint_class_too_small", "fewer_samples_than_factors"}


@pytest.mark.parametrize("name,mutate,stage,pattern", [
    pytest.param(*c, id=c[0], marks=() if c[0] in QUICK else pytest.mark.slow) for c in CASES])
def test_bad_input_gives_one_line_and_nothing_behind(tiny: Path, tmp_path: Path, name: str,
                                                     mutate: Case, stage: str, pattern: str):
    work = tmp_path / "w"
    shutil.copytree(tiny, work)
    cfg = yaml.safe_load((work / "config.yaml").read_text())
    mutate(work, cfg)
    (work / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    t0 = time.monotonic()
    until = ["--until", stage] if stage in ("ingest", "apply_ingest", "normalize",
                                            "mudata") else []
    proc = run_snakemake(work, "--cores", "1", *until)  # one job at a time: first error stops
    elapsed = time.monotonic() - t0
    assert proc.returncode != 0, proc.stderr[-2000:]
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("ERROR")]
    assert len(errors) == 1, proc.stderr[-3000:]
    assert errors[0].startswith(f"ERROR [{stage}] "), errors[0]
    assert re.search(pattern, errors[0]), errors[0]
    assert "Traceback" not in proc.stderr
    results = work / "results" / "tiny"
    if stage == "config":
        assert not results.exists()
    else:
        leftovers = [p for p in results.rglob("*") if p.name.startswith(".")]
        assert leftovers == []
        if stage == "ingest":
            assert not (results / "normalize").exists()
        if stage == "apply_ingest":
            assert not list((results / "apply").rglob("*.h5ad"))
        log = "".join(p.read_text() for p in (work / "logs" / stage).rglob("*.log"))
        assert re.search(pattern, log), log[-2000:]
    print(f"{name}: failed after {elapsed:.1f} s")


def test_one_omic_is_allowed_with_a_note(tiny: Path, tmp_path: Path):
    work = tmp_path / "w"
    shutil.copytree(tiny, work)
    cfg = yaml.safe_load((work / "config.yaml").read_text())
    cfg["omics"] = {"rna": cfg["omics"]["rna"]}
    (work / "config.yaml").write_text(yaml.safe_dump(cfg))
    proc = run_snakemake(work, "-n")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "only one omic configured: MOFA+ then acts as a sparse factor analysis" in (
        proc.stderr + proc.stdout)


def test_all_missing_and_constant_features_and_empty_samples_are_dropped_with_a_note(
        tiny: Path, tmp_path: Path):
    work = tmp_path / "w"
    shutil.copytree(tiny, work)
    p = work / "data" / "methylation.csv"
    rows = [line.split(",") for line in p.read_text().splitlines()]
    rows[1][1:] = [""] * (len(rows[1]) - 1)      # a feature never measured
    rows[2][1:] = ["0.5"] * (len(rows[2]) - 1)   # a constant feature
    for r in rows[1:]:
        r[3] = ""                                # a sample with no value at all
    p.write_text("\n".join(",".join(r) for r in rows) + "\n")
    proc = run_snakemake(work, "--until", "normalize")
    assert proc.returncode == 0, proc.stderr[-2000:]
    log = "".join(p.read_text() for p in (work / "logs").rglob("methylation.log"))
    assert "1 sample(s) have no measured value and are treated as not measured" in log
    assert "dropped_missing=1" in log and "dropped_low_variance=1" in log


@pytest.mark.slow
def test_exporters_files_give_the_plain_tables_results(tiny: Path, tmp_path: Path):
    """The tiny cohort's tables as other tools write them (featureCounts' counts.txt, a
    MaxQuant-style table read by label_column/columns with a decoy and a contaminant row, a
    ';'-separated long table, a cBioPortal clinical sheet with coded survival status)
    normalise to the same matrices as the plain tables, through the real workflow."""
    import anndata as ad

    plain, exported = tmp_path / "plain", tmp_path / "exported"
    shutil.copytree(tiny, plain)
    shutil.copytree(tiny, exported)
    data = exported / "data"
    rna = pd.read_csv(data / "rna_counts.csv", index_col=0)
    fc = pd.concat([pd.DataFrame({"Chr": "chr1;chr1", "Start": "1;50", "End": "20;90",
                                  "Strand": "+;+", "Length": 61}, index=rna.index),
                    rna.rename(columns=lambda s: f"/data/bam/{s}Aligned.sortedByCoord.out.bam")],
                   axis=1).rename_axis("Geneid")
    (data / "counts.txt").write_text('# Program:featureCounts v2.0.6; Command:"featureCounts"\n'
                                     + fc.to_csv(sep="\t"))
    met = pd.read_parquet(data / "metabolomics.parquet")
    met = met.set_index(met.columns[0]) if met.index.name is None else met
    decoys = pd.DataFrame(1000.0, index=["REV__x", "CON__y"], columns=met.columns)
    mq = pd.concat([met, decoys]).rename(columns=lambda s: f"LFQ intensity {s}")
    mq.insert(0, "Majority protein IDs", mq.index)
    mq.insert(1, "Gene names", "G")
    mq["Reverse"] = ["+" if i == "REV__x" else "" for i in mq.index]
    mq["Potential contaminant"] = ["+" if i == "CON__y" else "" for i in mq.index]
    mq.index = pd.Index([f"row{k}" for k in range(len(mq))], name="Protein IDs")
    mq.to_csv(data / "proteinGroups.txt", sep="\t")
    sheet = pd.read_csv(data / "samples.tsv", sep="\t", dtype=str)
    sheet["os_event"] = sheet["os_event"].map({"1": "1:DECEASED", "0": "0:LIVING"})
    meta = ["#" + "\t".join(sheet.columns), "#" + "\t".join(sheet.columns),
            "#" + "\t".join(["STRING"] * sheet.shape[1]), "#" + "\t".join(["1"] * sheet.shape[1])]
    (data / "samples.txt").write_text("\n".join(meta) + "\n" + sheet.to_csv(sep="\t", index=False))
    cfg = yaml.safe_load((exported / "config.yaml").read_text())
    cfg["samples"] = "data/samples.txt"
    cfg["omics"]["rna"]["path"] = "data/counts.txt"
    meth = pd.read_csv(data / "methylation.csv", index_col=0)
    tidy = meth.rename_axis("probe").reset_index().melt(id_vars="probe", var_name="sample",
                                                         value_name="beta")
    tidy.dropna().to_csv(data / "methylation_long.csv", sep=";", index=False)
    cfg["omics"]["methylation"].update(path="data/methylation_long.csv", format="csv_semicolon",
                                       long={"sample": "sample", "feature": "probe",
                                             "value": "beta"})
    cfg["omics"]["metabolites"].update(path="data/proteinGroups.txt",
                                       label_column="Majority protein IDs",
                                       columns="^LFQ intensity (.+)$")
    (exported / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    for work in (plain, exported):
        proc = run_snakemake(work, "--cores", "2", "--until", "mudata")
        assert proc.returncode == 0, proc.stderr[-3000:]
    for omic in ("rna", "metabolites", "methylation"):
        a, b = (ad.read_h5ad(w / "results" / "tiny" / "normalize" / f"{omic}.h5ad")
                for w in (plain, exported))
        assert list(a.obs_names) == list(b.obs_names) and list(a.var_names) == list(b.var_names)
        np.testing.assert_array_equal(a.X, b.X)
    log = "".join(p.read_text() for p in (exported / "logs").rglob("*.log"))
    assert "2 row(s) marked '+' (MaxQuant) or True" in log and "a featureCounts table" in log
