"""``make bench-exporters``: ingest of files as other tools write them, against the same data as
a plain table, at real size (featureCounts, MaxQuant, GEO series matrix, MAF, Olink, ADAT).

For each exporter it writes the exporter's file and the plain table of the same numbers
(features x samples, first column the labels), ingests each in its own process (``wait4``
gives that process's peak RSS) and prints wall time, peak RSS and whether the two AnnData
hold the same matrix and feature names bit for bit::

    python -m omix.exporter_bench --workdir /tmp/exporters             # all three
    python -m omix.exporter_bench --which featurecounts --reps 1

featurecounts: 60,000 genes x 1,000 samples of counts, featureCounts' program line, annotation
columns and BAM paths as labels.  maxquant: 10,000 protein groups x 1,000 samples, Intensity,
iBAQ and LFQ columns (30 % zeros), 230 rows flagged as decoys or contaminants; read with
``label_column``/``columns``.  geo: a series matrix of 200,000 probes x 500 samples of beta
values (2 % missing as ``null``) below GEO's metadata lines.  maf: 300,000 variants of 1,000
tumours over 18,000 genes (a quarter silent or non-coding); its plain table is pandas'
crosstab of the protein-changing ones.  olink: an Olink Explore NPX export, 3,000 assays x
1,000 samples as 3 million ';'-separated rows (1 % of the pairs absent), read with ``long``.
adat: a SomaLogic ADAT of a SomaScan 11k study, 1,000 samples x 11,083 analytes, with
calibrator and QC wells and control analytes the reader leaves out.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

KINDS = {"featurecounts": "counts", "maxquant": "intensity", "geo": "beta", "maf": "binary",
         "olink": "continuous", "adat": "intensity"}
SAMPLE_ID = {"maf": {"regex": r"^(TCGA-\w\w-\w{4})"}}
OPTIONS: dict[str, dict[str, Any]] = {
    "maxquant": {"label_column": "Majority protein IDs", "columns": "^LFQ intensity (.+)$"},
    "olink": {"format": "csv_semicolon",
              "long": {"sample": "SampleID", "feature": "OlinkID", "value": "NPX"}}}


def _sheet(d: Path, ids: list[str]) -> None:
    pd.DataFrame({"sample_id": ids}).to_csv(d / "samples.tsv", sep="\t", index=False)


def write_featurecounts(d: Path, rng: np.random.Generator, n: int = 1000, genes: int = 60000
                        ) -> tuple[Path, Path]:
    ids = [f"P{i:04d}" for i in range(n)]
    names = [f"ENSG{i:011d}" for i in range(genes)]
    plain = pd.DataFrame(rng.poisson(rng.gamma(0.5, 200, genes)[:, None], (genes, n)),
                         index=pd.Index(names, name="gene"), columns=ids)
    plain.to_csv(d / "plain_counts.tsv", sep="\t")
    ann = pd.DataFrame({"Chr": "chr1;chr1", "Start": "100;300", "End": "200;400",
                        "Strand": "+;+", "Length": 202}, index=pd.Index(names))
    bams = plain.rename(columns=lambda s: f"/data/star/{s}Aligned.sortedByCoord.out.bam")
    with open(d / "counts.txt", "w") as fh:
        fh.write('# Program:featureCounts v2.0.6; Command:"featureCounts" "-T" "8"\n')
        pd.concat([ann, bams], axis=1).rename_axis("Geneid").to_csv(fh, sep="\t")
    _sheet(d, ids)
    return d / "counts.txt", d / "plain_counts.tsv"


def write_maxquant(d: Path, rng: np.random.Generator, n: int = 1000, proteins: int = 10000
                   ) -> tuple[Path, Path]:
    ids = [f"P{i:04d}" for i in range(n)]
    lfq = np.round(rng.lognormal(20, 2, (proteins, n)))
    lfq[rng.random((proteins, n)) < 0.3] = 0
    prot = np.array([f"Q{i:06d}" for i in range(proteins)])
    blocks = [pd.DataFrame({"Protein IDs": [f"{p};{p}-2" for p in prot],
                            "Majority protein IDs": prot,
                            "Gene names": [f"G{i}" for i in range(proteins)],
                            "Peptides": rng.integers(1, 50, proteins),
                            "Score": np.round(rng.random(proteins) * 300, 2)})]
    for prefix, f in (("Intensity ", 1.3), ("iBAQ ", 0.01), ("LFQ intensity ", 1.0)):
        blocks.append(pd.DataFrame(np.round(lfq * f), columns=[prefix + s for s in ids]))
    flags = pd.DataFrame({"Only identified by site": "", "Reverse": "",
                          "Potential contaminant": ""}, index=range(proteins))
    flags.loc[rng.choice(proteins, proteins * 3 // 200, replace=False), "Reverse"] = "+"
    flags.loc[rng.choice(proteins, proteins // 125, replace=False), "Potential contaminant"] = "+"
    blocks.append(flags)
    pd.concat(blocks, axis=1).to_csv(d / "proteinGroups.txt", sep="\t", index=False)
    keep = ~((flags["Reverse"] == "+") | (flags["Potential contaminant"] == "+")).to_numpy()
    pd.DataFrame(lfq[keep], index=pd.Index(prot[keep], name="protein"), columns=ids).to_csv(
        d / "plain_protein.tsv", sep="\t")
    _sheet(d, ids)
    return d / "proteinGroups.txt", d / "plain_protein.tsv"


def write_geo(d: Path, rng: np.random.Generator, n: int = 500, probes: int = 200000
              ) -> tuple[Path, Path]:
    ids = [f"GSM{i:07d}" for i in range(n)]
    b = rng.beta(2, 5, (probes, n))
    b[rng.random((probes, n)) < 0.02] = np.nan
    plain = pd.DataFrame(b, index=pd.Index([f"cg{i:08d}" for i in range(probes)],
                                           name="ID_REF"), columns=ids)
    plain.to_csv(d / "plain_meth.tsv", sep="\t", float_format="%.4f")
    with open(d / "GSE1_series_matrix.txt", "w") as fh:
        fh.write('!Series_title\t"a cohort"\n!Series_geo_accession\t"GSE1"\n')
        for key in ("title", "geo_accession", "characteristics_ch1", "characteristics_ch1"):
            fh.write(f"!Sample_{key}\t" + "\t".join(f'"{s} x"' for s in ids) + "\n")
        fh.write("!series_matrix_table_begin\n")
        plain.to_csv(fh, sep="\t", float_format="%.4f", na_rep="null")
        fh.write("!series_matrix_table_end\n")
    _sheet(d, ids)
    return d / "GSE1_series_matrix.txt", d / "plain_meth.tsv"


def write_maf(d: Path, rng: np.random.Generator, n: int = 1000, variants: int = 300000
              ) -> tuple[Path, Path]:
    """A MAF of ``variants`` rows over ``n`` tumours and 18,000 genes (mutation rates that
    vary over genes and tumours, a quarter of the variants silent or non-coding), with the
    other columns a MAF carries; the plain table is its pivot by pandas' crosstab."""
    genes = np.array([f"GENE{i:05d}" for i in range(min(18000, variants))])
    ids = np.array([f"TCGA-XX-{i:04d}-01A-11D-A000-08" for i in range(n)])
    g = genes[np.minimum(rng.zipf(1.3, variants) - 1, len(genes) - 1)]
    t = ids[rng.choice(n, variants, p=rng.dirichlet(np.full(n, 0.5)))]
    classes = np.array(["Missense_Mutation", "Nonsense_Mutation", "Frame_Shift_Del",
                        "Splice_Site", "In_Frame_Del", "Silent", "Intron", "3'UTR"])
    c = classes[rng.choice(len(classes), variants,
                           p=[0.55, 0.08, 0.05, 0.04, 0.03, 0.15, 0.05, 0.05])]
    maf = pd.DataFrame({"Hugo_Symbol": g, "Entrez_Gene_Id": 0, "Center": "BI",
                        "NCBI_Build": "GRCh38", "Chromosome": "chr1",
                        "Start_Position": rng.integers(1, 10**8, variants),
                        "Variant_Classification": c, "Variant_Type": "SNP",
                        "Reference_Allele": "A", "Tumor_Seq_Allele2": "T",
                        "Tumor_Sample_Barcode": t, "HGVSp_Short": "p.X1Y",
                        "t_depth": rng.integers(10, 300, variants)})
    with open(d / "mutations.maf", "w") as fh:
        fh.write("#version 2.4\n")
        maf.to_csv(fh, sep="\t", index=False)
    hit = maf[maf["Variant_Classification"].isin(classes[:5])]
    plain = (pd.crosstab(hit["Hugo_Symbol"], hit["Tumor_Sample_Barcode"]) > 0).astype(int)
    plain = plain.reindex(columns=pd.unique(t), fill_value=0).rename_axis("gene")
    plain.to_csv(d / "plain_mutations.tsv", sep="\t")
    _sheet(d, sorted({s[:12] for s in ids}))
    return d / "mutations.maf", d / "plain_mutations.tsv"


def write_olink(d: Path, rng: np.random.Generator, n: int = 1000, assays: int = 3000
                ) -> tuple[Path, Path]:
    """An Olink Explore NPX export: one ';'-separated row per sample and assay (1 % of the
    pairs without a row) with Olink's other columns; the plain table is its pivot."""
    ids = np.array([f"P{i:04d}" for i in range(n)])
    oids = np.array([f"OID{20000 + i}" for i in range(assays)])
    s, a = np.repeat(ids, assays), np.tile(oids, n)
    keep = rng.random(len(s)) > 0.01
    npx = np.round(rng.normal(5, 2, len(s)), 4)
    long = pd.DataFrame({"SampleID": s, "Index": np.repeat(np.arange(n), assays), "OlinkID": a,
                         "UniProt": "P05231", "Assay": np.char.add("A", a), "MissingFreq": 0.01,
                         "Panel": "Explore", "PlateID": "plate1", "QC_Warning": "PASS",
                         "LOD": 1.25, "NPX": npx})[keep]
    long.to_csv(d / "npx.csv", sep=";", index=False)
    long.pivot(index="OlinkID", columns="SampleID", values="NPX").reindex(
        index=pd.unique(long["OlinkID"]), columns=pd.unique(long["SampleID"])).rename_axis(
        "assay").to_csv(d / "plain_npx.tsv", sep="\t")
    _sheet(d, list(ids))
    return d / "npx.csv", d / "plain_npx.tsv"


def adat_text(rfu: pd.DataFrame, *, calibrators: int = 2, flagged: Sequence[str] = ()) -> str:
    """A SomaLogic ADAT (the layout SomaLogic's readers parse: ^HEADER, ^COL_DATA, ^ROW_DATA,
    ^TABLE_BEGIN) of ``rfu`` (samples x analytes, the analytes' gene symbols as columns),
    with the rows and analytes a real one adds: calibrator and QC wells, a spuriomer, a
    hybridisation control and a mouse protein; the samples in ``flagged`` fail SomaLogic's
    RowCheck.  Values are written with ``repr``."""
    genes = [*map(str, rfu.columns), "", "", "Fc_MOUSE"]
    kinds = ["Protein"] * rfu.shape[1] + ["Spuriomer", "Hybridization Control Elution",
                                          "Protein"]
    organisms = ["Human"] * (rfu.shape[1] + 2) + ["Mouse"]
    col = {"SeqId": [f"{10000 + j}-{j % 90 + 1}" for j in range(len(genes))],
           "Target": [g or f"Ctrl{j}" for j, g in enumerate(genes)],
           "EntrezGeneSymbol": genes, "Organism": organisms, "Type": kinds,
           "ColCheck": ["PASS"] * len(genes)}
    fields = ["PlateId", "SampleId", "SampleType", "RowCheck"]
    lines = ["^HEADER", "!AdatId\tGID-0000-test", "!Version\t1.2", "!AssayVersion\tV4",
             "^COL_DATA", "!Name\t" + "\t".join(col), "!Type\t" + "\t".join(["String"] * len(col)),
             "^ROW_DATA", "!Name\t" + "\t".join(fields),
             "!Type\t" + "\t".join(["String"] * len(fields)), "^TABLE_BEGIN"]
    pad = "\t" * len(fields)
    lines += [pad + name + "\t" + "\t".join(v) for name, v in col.items()]
    lines.append("\t".join(fields) + "\t" * (len(genes) + 1))

    def row(plate: str, sid: str, kind: str, values: list[float]) -> str:
        check = "FLAG" if sid in flagged else "PASS"
        return "\t".join([plate, sid, kind, check, ""] + [repr(float(v)) for v in values])

    rows = [row("Plate1", f"CAL{k}", "Calibrator", [500.0 + k] * len(genes))
            for k in range(calibrators)]
    rows += [row("Plate1", str(sid), "Sample", [*vals, 310.5, 2200.25, 415.0])
             for sid, vals in zip(rfu.index, rfu.to_numpy().tolist(), strict=True)]
    rows.insert(len(rows) // 2, row("Plate1", "QC1", "QC", [700.0] * len(genes)))
    return "\n".join(lines + rows) + "\n"


def write_adat(d: Path, rng: np.random.Generator, n: int = 1000, analytes: int = 11083
               ) -> tuple[Path, Path]:
    """A SomaScan 11k ADAT of ``n`` study samples (RFU, one decimal, as SomaLogic writes
    them) with calibrator and QC wells and control analytes; the plain table holds the study
    samples' human protein analytes, named as the reader names them (gene_SeqId)."""
    ids = [f"P{i:04d}" for i in range(n)]
    rfu = pd.DataFrame(np.round(rng.lognormal(7, 1.2, (n, analytes)), 1), index=ids,
                       columns=[f"G{j}" for j in range(analytes)])
    (d / "study.adat").write_text(adat_text(rfu))
    rfu.T.set_axis([f"G{j}_{10000 + j}-{j % 90 + 1}" for j in range(analytes)]).rename_axis(
        "analyte").to_csv(d / "plain_adat.tsv", sep="\t")
    _sheet(d, ids)
    return d / "study.adat", d / "plain_adat.tsv"


WRITERS = {"featurecounts": write_featurecounts, "maxquant": write_maxquant, "geo": write_geo,
           "maf": write_maf, "olink": write_olink, "adat": write_adat}
FILES = {"featurecounts": ("counts.txt", "plain_counts.tsv"),
         "maxquant": ("proteinGroups.txt", "plain_protein.tsv"),
         "geo": ("GSE1_series_matrix.txt", "plain_meth.tsv"),
         "maf": ("mutations.maf", "plain_mutations.tsv"),
         "olink": ("npx.csv", "plain_npx.tsv"), "adat": ("study.adat", "plain_adat.tsv")}


def child(table: str, kind: str, out: str, options: str) -> None:
    """One ingest (in its own process), as the ``ingest`` rule does it (read, check, orient,
    write the AnnData); prints the result's digests as JSON."""
    import anndata as ad

    from .ingest import ingest_omic
    from .io import Columns, Long, read_sample_sheet, write_h5ad

    opts = json.loads(options)
    sample_id = opts.get("sample_id", {})
    sheet = read_sample_sheet(Path(table).parent / "samples.tsv")
    adata = ingest_omic(table, kind=kind, sample_ids=list(sheet.index),
                        fmt=opts.get("format", "auto"), regex=sample_id.get("regex"),
                        columns=Columns(opts.get("label_column"), opts.get("columns")),
                        long=Long(**opts["long"]) if "long" in opts else None)
    write_h5ad(adata, out)
    a = ad.read_h5ad(out)
    print(json.dumps({"shape": list(a.shape),
                      "x": hashlib.sha256(np.ascontiguousarray(a.X).tobytes()).hexdigest(),
                      "vars": hashlib.sha256("\n".join(a.var_names).encode()).hexdigest()}))


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}


def measure(table: Path, kind: str, options: dict[str, Any]) -> dict[str, Any]:
    """One ingest of ``table`` in a child process: its digests, wall time and peak RSS (MB,
    from ``wait4``: that process's alone)."""
    out = table.with_suffix(".bench.h5ad")
    cmd = [sys.executable, "-m", "omix.exporter_bench", "--child", str(table), kind, str(out),
           json.dumps(options)]
    env = _env()
    t0 = time.monotonic()
    with open(table.with_suffix(".bench.json"), "w+") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - t0
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"ingest of {table} failed")
        fh.seek(0)
        res: dict[str, Any] = json.loads(fh.read().strip().splitlines()[-1])
    res.update(wall=wall, peak_mb=usage.ru_maxrss / 1024)
    return res



def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--which", default="featurecounts,maxquant,geo,maf,olink,adat")
    ap.add_argument("--workdir", default="/tmp/omix_exporter_bench")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--small", action="store_true",
                    help="40 samples x 300 features per file: a check, not a measurement")
    ap.add_argument("--child", nargs=4)
    ap.add_argument("--write", nargs=2)
    a = ap.parse_args(argv)
    size = (40, 300) if a.small else ()
    if a.child:
        child(*a.child)
        return
    if a.write:
        WRITERS[a.write[0]](Path(a.write[1]), np.random.default_rng(0), *size)
        return
    print("| exporter | file (MB) | exporter's file: wall s, peak MB | plain table: wall s, "
          "peak MB | same X and features |")
    print("|---|---:|---|---|---|")
    for name in a.which.split(","):
        d = Path(a.workdir) / name
        d.mkdir(parents=True, exist_ok=True)
        # written by a child process: a child's peak RSS (wait4) starts at its parent's peak
        # (Linux carries it over at exec), so this process never holds the data
        subprocess.run([sys.executable, "-m", "omix.exporter_bench", "--write", name, str(d)]
                       + (["--small"] if a.small else []), check=True, env=_env())
        exported, plain = (d / f for f in FILES[name])
        runs: dict[str, list[tuple[float, float]]] = {"e": [], "p": []}
        digests = {}
        for _ in range(a.reps):
            ids = {"sample_id": SAMPLE_ID[name]} if name in SAMPLE_ID else {}
            for key, table, options in (("e", exported, {**OPTIONS.get(name, {}), **ids}),
                                        ("p", plain, ids)):
                r = measure(table, KINDS[name], options)
                runs[key].append((r["wall"], r["peak_mb"]))
                digests[key] = (r["shape"], r["x"], r["vars"])

        def span(v: list[tuple[float, float]]) -> str:
            w, m = [x[0] for x in v], [x[1] for x in v]
            return f"{min(w):.1f}-{max(w):.1f} s, {max(m):.0f} MB"
        print(f"| {name} {digests['e'][0][1]:,} features x {digests['e'][0][0]:,} samples | "
              f"{exported.stat().st_size / 1e6:.0f} | {span(runs['e'])} | {span(runs['p'])} | "
              f"{'yes' if digests['e'] == digests['p'] else 'NO'} |", flush=True)


if __name__ == "__main__":
    main()
