from pathlib import Path

from omix.workflow_bench import markdown, rule_table

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def bench(path: Path, wall: float, rss: float, cpu: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + f"{wall}\t0:00:00\t{rss}\t0\t0\t0\t0\t0\t0\t{cpu}\n")


def test_rule_table_sums_jobs_of_a_rule_and_keeps_the_longest_and_the_peak(tmp_path: Path):
    b = tmp_path / "benchmarks"
    bench(b / "stability" / "c" / "shard_0.tsv", 100.0, 500.0, 140.0)
    bench(b / "stability" / "c" / "shard_1.tsv", 120.0, 520.0, 150.0)
    bench(b / "predict" / "c.tsv", 600.0, 1500.0, 900.0)
    t = rule_table(b).set_index("rule")
    assert list(t.index) == ["predict", "stability"]          # longest first
    assert t.loc["stability", "jobs"] == 2
    assert t.loc["stability", "wall_s"] == 220.0 and t.loc["stability", "longest_s"] == 120.0
    assert t.loc["stability", "max_rss_mb"] == 520.0 and t.loc["stability", "cpu_s"] == 290.0
    text = markdown(1000, 900.0, 1600.0, rule_table(b))
    assert "15.0 min wall" in text and "1.56 GB" in text
    assert "| stability | 2 | 220 | 120 | 520 | 290 |" in text


def test_exporter_bench_files_ingest_to_their_plain_tables(tmp_path: Path, capsys):
    """The exporter benchmark's files (featureCounts, MaxQuant, GEO, MAF, Olink, ADAT) and its
    plain tables of the same numbers (for the MAF, pandas' crosstab of its protein-changing
    variants; for the ADAT, its study samples' human proteins) give the same matrix and
    features: the comparison its figures rest on."""
    from omix.exporter_bench import main

    main(["--small", "--reps", "1", "--workdir", str(tmp_path)])
    rows = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("| ")][1:]
    assert [r.split(" ")[1] for r in rows] == ["featurecounts", "maxquant", "geo", "maf",
                                                  "olink", "adat"]
    assert all(r.endswith("| yes |") for r in rows), rows
    import pandas as pd

    mq = pd.read_csv(tmp_path / "maxquant" / "proteinGroups.txt", sep="\t", dtype=str)
    measured = int((~(mq[["Reverse", "Potential contaminant"]] == "+").any(axis=1)).sum())
    assert 290 <= measured < 300                     # 300 less the decoys and contaminants
    assert f"| maxquant {measured} features x 40 samples |" in rows[1]


def test_predict_bench_reproduces_the_rules_outer_fold(finished_run: Path, capsys):
    """The predict benchmark prepares outer fold K as the rule does: its candidates' held-out
    AUCs are the rule's for that fold (metrics_per_fold.tsv); the L1 candidate is also timed
    as the former liblinear grid search, on the same fold."""
    import pandas as pd
    from omix.predict_bench import main

    main([str(finished_run), "--fold", "1", "--models", "factors,features,l2_features"])
    rows = [ln.split(", ") for ln in capsys.readouterr().out.splitlines()
            if not ln.startswith(("#", "model,"))]
    assert [r[:2] for r in rows] == [["factors", "omix"], ["features", "omix"],
                                     ["features", "liblinear grid"], ["l2_features", "omix"]]
    per_fold = pd.read_csv(finished_run / "results" / "small" / "predict" /
                           "metrics_per_fold.tsv", sep="\t")
    rule = per_fold[(per_fold["repeat"] == 1) & (per_fold["fold"] == 2)].set_index("model")
    for model, name, _, _, _, auc in rows:
        if name == "omix":
            assert abs(float(auc) - rule.loc[model, "auc"]) <= 5e-5, model
    assert rows[1][4] in {"0.01", "0.1", "1.0", "10.0"} and 0.5 < float(rows[2][5]) <= 1


def test_fold_memory_runs_the_rules_folds_in_forked_workers_and_prints_their_memory(
        finished_run: Path, capsys):
    import re

    from omix.fold_memory import main

    main([str(finished_run), "--folds", "2", "--workers", "2"])
    out = capsys.readouterr().out.splitlines()
    done = [ln for ln in out if ln.startswith("fold ")]
    assert [ln.split(" done")[0] for ln in done] == ["fold 1", "fold 2"]
    workers = [re.findall(r"(\d+) RSS (\d+) MB, PSS (\d+) MB", ln) for ln in done]
    assert all(len(w) == 2 for w in workers)          # two forked workers, alive at each fold
    peaks = [ln for ln in out if ln.startswith("peak of ")]
    assert len(peaks) == 3 and sum("(the parent)" in ln for ln in peaks) == 1
    assert all(0 < int(re.search(r"PSS (\d+)", ln).group(1)) <= int(
        re.search(r"RSS (\d+)", ln).group(1)) for ln in peaks)
    assert out[-1].startswith("2 folds, 2 workers: ")
