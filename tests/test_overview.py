"""The report's first page and key tables, from hand-made result tables."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from omix import overview, summary


def write_tables(d: Path, with_prediction: bool = True) -> dict[str, Path]:
    t = {
        "overlap": pd.DataFrame({"omics": ["rna+protein", "rna", "rna (any)", "protein (any)"],
                                 "n_omics": [2, 1, 1, 1], "n_samples": [30, 12, 42, 30]}),
        "variance": pd.DataFrame({"view": ["rna", "protein", "rna", "protein", "rna",
                                           "protein"],
                                  "factor": ["Factor1", "Factor1", "Factor2", "Factor2",
                                             "total", "total"],
                                  "r2_percent": [20.0, 5.0, 3.0, 9.0, 23.04, 14.5]}),
        "ranked": pd.DataFrame({"feature": [f"G{i}" for i in range(25)],
                                "omic": ["rna"] * 20 + ["protein"] * 5,
                                "rank": range(1, 26), "top_factor": "Factor1",
                                "factor_outcome_q": 2e-7, "selection_probability": 0.5,
                                "q_value": [0.01] * 3 + [0.5] * 22}),
        "clusters": pd.DataFrame({"sample_id": [f"PAT-{i:03d}" for i in range(42)],
                                  "cluster": ["K1"] * 25 + ["K2"] * 17}),
        "associations": pd.DataFrame({"variable": ["Factor1", "cluster"],
                                      "clinical": ["age", "survival"], "test": ["x", "y"],
                                      "p": [0.2, 0.0031], "q": [0.2, 0.0062]}),
    }
    if with_prediction:
        rows = [("inner_cv_choice", "procedure", 0.8123, 0.7011, 0.9234, False),
                ("l2_features", "reference", 0.79, 0.68, 0.9, False),
                ("random_forest", "reference", 0.77, 0.66, 0.88, True),
                ("baseline", "baseline", 0.5, 0.5, 0.5, False)]
        t["metrics"] = pd.DataFrame([{"model": m, "role": r, "metric": "auc", "mean": a,
                                      "sd": 0.05, "ci_low": lo, "ci_high": hi, "n_folds": 15,
                                      "selected": s} for m, r, a, lo, hi, s in rows])
    paths = {}
    for k, df in t.items():
        paths[k] = d / f"{k}.tsv"
        df.to_csv(paths[k], sep="\t", index=False)
    return paths


def test_first_page_shows_the_headline_figures_and_no_patient(tmp_path: Path):
    paths = write_tables(tmp_path)
    tables = {k: tmp_path / "out" / f"{k}.html" for k in overview.KEY_TABLES}
    overview.write_overview(paths, tmp_path / "out" / "overview.html", tables, cohort="demo",
                            outcome="response", endpoint="response")
    html = (tmp_path / "out" / "overview.html").read_text()
    text = " ".join(html.split())
    assert html.startswith('<div class="omix-overview"')  # a fragment the report embeds
    assert "42 patients, 30 measured in all 2 omics" in text
    assert "<td>rna</td><td class=\"num\">42</td><td class=\"num\">20</td>" \
           "<td class=\"num\">23.0</td>" in text
    assert "(2 MOFA+ factors)" in text and "3 features with q &le; 0.05" in text
    assert text.count("<tr><td class=\"num\">") == overview.TOP  # top 10 of 25 biomarkers
    assert "<b>K1</b> 25, <b>K2</b> 17" in text and "log-rank p = 0.0031" in text
    assert "AUC 0.812 (95% interval 0.701 - 0.923)" in text
    assert "plain random forest on all features</td><td class=\"num\">0.770" in text
    assert "Model refitted on all patients for new cohorts: random_forest" in text
    assert "PAT-" not in html  # cohort-level only: no sample ID from clusters.tsv
    ranked = (tmp_path / "out" / "biomarkers.html").read_text()
    assert "25 of 25 rows" in " ".join(ranked.split()) and "<td>G24</td>" in ranked
    assoc = (tmp_path / "out" / "associations.html").read_text()
    assert assoc.index("<td>survival</td>") < assoc.index("<td>age</td>")  # smallest q first
    assert "Not computed" in (tmp_path / "out" / "survival.html").read_text()


def test_without_prediction_the_page_says_nothing_about_it(tmp_path: Path):
    paths = write_tables(tmp_path, with_prediction=False)
    html = overview.overview_html(paths, "demo", None, None)
    assert "Prediction" not in html and "Headline results: cohort demo" in html
    lines = summary.summary_lines(tmp_path / "no-such-results")
    assert lines[-1].startswith("  report: not built")


def test_overview_rule_inputs_are_the_headline_tables():
    """The rule's named inputs (common.smk) and omix.summary.TABLES name the same files."""
    import re

    from conftest import ROOT

    smk = (ROOT / "workflow" / "rules" / "common.smk").read_text()
    body = smk[smk.index("def overview_inputs("):smk.index("OVERVIEW_TABLES")]
    named = dict(re.findall(r'"(\w+)": f"\{R\}/([^"]+)"', body))
    named.update(re.findall(r'out\["(\w+)"\] = f"\{R\}/([^"]+)"', body))
    assert named == summary.TABLES
