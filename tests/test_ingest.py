import numpy as np
import pandas as pd
import pytest
from omix.errors import InputDataError
from omix.ingest import ingest_omic

SHEET = ["P1", "P2", "P3", "P4"]


def table(tmp_path, text, name="t.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


def as_parquet(p, sep="\t", **read_kw):
    """The table ``p`` (text) written as parquet beside it, as pandas reads it."""
    out = p.with_suffix(".parquet")
    pd.read_csv(p, sep=sep, **read_kw).to_parquet(out, index=False)
    return out


def test_features_x_samples_mapped_and_in_sheet_order(tmp_path):
    p = table(tmp_path, "f,P3-x,P1-y,P2-z\ng1,1,2,3\ng2,4,5,6\n")
    a = ingest_omic(p, kind="counts", sample_ids=SHEET, regex=r"^(P\d)")
    assert list(a.obs_names) == ["P1", "P2", "P3"]
    assert list(a.var_names) == ["g1", "g2"]
    np.testing.assert_array_equal(a.X, [[2, 5], [3, 6], [1, 4]])
    assert a.uns["omix"]["kind"] == "counts"


def test_samples_x_features_layout(tmp_path):
    p = table(tmp_path, "s\tg1\tg2\nP2\t0.1\t0.2\nP4\t0.3\t\n", "t.tsv")
    a = ingest_omic(p, kind="beta", sample_ids=SHEET, layout="samples_x_features")
    assert list(a.obs_names) == ["P2", "P4"] and np.isnan(a.X[1, 1])


def test_transposed_table_is_recognised(tmp_path):
    p = table(tmp_path, "s,g1,g2\nP1,1,2\nP2,3,4\n")
    with pytest.raises(InputDataError, match="oriented the other way.*layout: samples_x_features"):
        ingest_omic(p, kind="counts", sample_ids=SHEET)


@pytest.mark.parametrize("text,kind,message", [
    ("f,P1,P2\ng1,1,2\ng1,3,4\n", "counts", "feature 'g1' appears twice"),
    ("f,P1,P1\ng1,1,2\n", "counts", "sample columns 2 and 3 have the same label"),
    ("f,P1,Q7\ng1,1,2\n", "counts", "1 of 2 sample columns match no sample_id"),
    ("f,X1,X2\ng1,1,2\n", "counts", "none of the 2 sample column labels matches"),
    ("f,P1,P2\ng1,1,-2\n", "counts", "negative count"),
    ("f,P1,P2\ng1,1,\ng2,1,1\n", "counts", "missing count"),
    ("f,P1,P2\ng1,0.5,1.2\n", "beta", r"beta value outside \[0, 1\]"),
    ("f,P1,P2\ng1,0,2\n", "binary", "value other than 0/1"),
    ("f,P1,P2\ng1,5,-1\n", "intensity", "negative intensity"),
    ("f,P1,P2\ng1,,\n", "continuous", "every value is missing"),
])
def test_bad_tables_rejected_with_location(tmp_path, text, kind, message):
    p = table(tmp_path, text)
    with pytest.raises(InputDataError, match=message) as e:
        ingest_omic(p, kind=kind, sample_ids=SHEET)
    assert str(p) in str(e.value) and "\n" not in str(e.value)


def test_two_aliquots_of_one_patient_rejected(tmp_path):
    p = table(tmp_path, "f,P1-a,P1-b\ng1,1,2\n")
    with pytest.raises(InputDataError, match="map to the same sample_id.*sample_id.map"):
        ingest_omic(p, kind="counts", sample_ids=SHEET, regex=r"^(P\d)")


def test_tumour_and_normal_barcodes_of_one_patient_are_named(tmp_path):
    p = table(tmp_path, "f,TCGA-OR-A5J1-01A-11R-A29S-07,TCGA-OR-A5J1-11A-11R-A29S-07\ng1,1,2\n")
    sheet = ["TCGA-OR-A5J1"]
    types = r"map to the same sample_id \(TCGA sample types 01 and 11: primary tumour and normal"
    with pytest.raises(InputDataError, match=types) as e:
        ingest_omic(p, kind="counts", sample_ids=sheet, regex=r"^(TCGA-\w\w-\w{4})")
    assert "A5J1" not in str(e.value)
    # two aliquots of the same sample type: no type note
    p = table(tmp_path, "f,TCGA-OR-A5J1-01A-11R-A29S-07,TCGA-OR-A5J1-01B-11R-A29S-07\ng1,1,2\n")
    with pytest.raises(InputDataError, match=r"map to the same sample_id\. Keep one aliquot"):
        ingest_omic(p, kind="counts", sample_ids=sheet, regex=r"^(TCGA-\w\w-\w{4})")


def test_map_file_resolves_aliquots(tmp_path):
    p = table(tmp_path, "f,P1-a,P1-b\ng1,1,2\n")
    m = table(tmp_path, "name,sample_id\nP1-b,P1\nP1-a,P2\n", "map.csv")
    a = ingest_omic(p, kind="counts", sample_ids=SHEET, map_file=m)
    assert list(a.obs_names) == ["P1", "P2"]
    np.testing.assert_array_equal(np.asarray(a.X).ravel(), [2, 1])


def test_sample_without_any_value_is_not_measured(tmp_path):
    p = table(tmp_path, "f,P1,P2,P3\ng1,1,,2\ng2,1,,3\n")
    a = ingest_omic(p, kind="continuous", sample_ids=SHEET)
    assert list(a.obs_names) == ["P1", "P3"]
    assert isinstance(a.obs["n_measured"], pd.Series)


def test_written_h5ad_round_trips_for_csv_with_empty_corner(tmp_path):
    """TCGA exports have an empty first header cell (R's write.csv)."""
    import anndata as ad
    from omix.io import write_h5ad

    p = table(tmp_path, '"","P1","P2"\n"g1",1,2\n"g2",3,4\n')
    a = ingest_omic(p, kind="counts", sample_ids=SHEET)
    write_h5ad(a, tmp_path / "a.h5ad")
    b = ad.read_h5ad(tmp_path / "a.h5ad")
    assert list(b.var_names) == ["g1", "g2"] and list(b.obs_names) == ["P1", "P2"]


def test_spreadsheet_mangled_gene_names_are_flagged():
    from omix.ingest import spreadsheet_mangled

    names = ["TP53", "2-Sep", "SEPT2", "1-MAR", "Mar-1", "2006-03-01", "3/1/2006", "2.31E+13",
             "1-Mar-2006", "GENE-1", "12-3", "1.5", "Sep"]
    assert spreadsheet_mangled(names) == [1, 3, 4, 5, 6, 7, 8]


def test_spreadsheet_mangled_names_warned_once_and_kept(tmp_path, caplog, capfd):
    p = table(tmp_path, "f,P1,P2\nTP53,1,2\n2-Sep,3,4\n1-Mar,5,6\n")
    with caplog.at_level("WARNING", logger="omix"):
        a = ingest_omic(p, kind="counts", sample_ids=SHEET, name="rna")
    assert list(a.var_names) == ["TP53", "2-Sep", "1-Mar"]
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warned) == 1 and "rna: 2 feature name(s) of t.csv look like dates" in warned[0]
    assert "first: '2-Sep'" in warned[0]
    assert "WARNING rna: 2 feature name(s)" in capfd.readouterr().err


def test_names_a_spreadsheet_merged_get_the_cause(tmp_path):
    p = table(tmp_path, "f,P1,P2\n1-Mar,1,2\n1-Mar,3,4\n")
    with pytest.raises(InputDataError, match="feature '1-Mar' appears twice.*A spreadsheet "
                                             "turned gene names into dates"):
        ingest_omic(p, kind="counts", sample_ids=SHEET)


@pytest.mark.parametrize("header,why", [
    ("f,TCGA.OR.A5J1,TCGA.OR.A5J2", r"2 of them: they would match with '-' for '\.' \(R's make"),
    ("f,X01,X02", r"2 of them: they would match without a leading 'X'"),
    ("f,tcga-or-a5j1,tcga-or-a5j2", r"2 of them: they would match ignoring upper/lower case"),
    ("f,P7,P0042", r"2 of them: they would match if their numbers had the same leading "
                   r"zeros"),
])
def test_labels_an_exporter_changed_are_diagnosed_without_printing_them(tmp_path, header, why):
    sheet = ["TCGA-OR-A5J1", "TCGA-OR-A5J2", "01", "02", "P007", "P042"]
    p = table(tmp_path, header + "\ng1,1,2\n")
    with pytest.raises(InputDataError, match="none of the 2 sample column labels matches a "
                                             "sample_id of the sample sheet \\(" + why) as e:
        ingest_omic(p, kind="counts", sample_ids=sheet)
    assert not any(label in str(e.value) for label in header.split(",")[1:])


def test_partly_changed_labels_are_diagnosed(tmp_path):
    p = table(tmp_path, "f,P1,p2,P3\ng1,1,2,3\n")
    with pytest.raises(InputDataError, match=r"1 of 3 sample columns match no sample_id of the "
                                             r"sample sheet \(first: column 3; 1 of them: they "
                                             r"would match ignoring upper/lower case \(sample IDs "
                                             r"are case-sensitive\)\)"):
        ingest_omic(p, kind="counts", sample_ids=SHEET)


def test_htseq_and_star_tallies_are_left_out_of_counts(tmp_path, caplog, capfd):
    text = ("gene\tP1\tP2\nG1\t5\t7\nG2\t0\t3\n__no_feature\t900\t800\n"
            "__ambiguous\t10\t12\nN_unmapped\t40\t50\n")
    p = table(tmp_path, text, "htseq.tsv")
    with caplog.at_level("WARNING", logger="omix"):
        a = ingest_omic(p, kind="counts", sample_ids=SHEET, name="rna")
    assert list(a.var_names) == ["G1", "G2"]
    np.testing.assert_array_equal(a.X, [[5, 0], [7, 3]])
    assert a.uns["omix"]["n_features_in_file"] == 5
    assert "rna: 3 feature(s) of htseq.tsv are a read counter's tallies, not genes " \
           "(__no_feature, __ambiguous, N_unmapped" in capfd.readouterr().err
    # the same labels in a table of another kind are data, and stay
    b = ingest_omic(p, kind="continuous", sample_ids=SHEET)
    assert b.n_vars == 5


def test_ingest_errors_name_the_file_line_past_blank_rows(tmp_path):
    p = table(tmp_path, "f,P1,P2\ng1,1,2\n\ng2,1,2\n,,\ng1,3,4\n")
    with pytest.raises(InputDataError, match=r"feature 'g1' appears twice \(rows 2 and 6\)"):
        ingest_omic(p, kind="counts", sample_ids=SHEET)
    p = table(tmp_path, "s,g1\nP1,1\n\nP2,3\nP1,4\n", "s.csv")
    with pytest.raises(InputDataError, match=r"sample rows 2 and 5 have the same label"):
        ingest_omic(p, kind="counts", sample_ids=SHEET, layout="samples_x_features")
    p = table(tmp_path, "f,P1,P2\ng1,1,2\n\ng2,5,-1\n", "n.csv")
    with pytest.raises(InputDataError, match=r"negative count at row 4, column 3"):
        ingest_omic(p, kind="counts", sample_ids=SHEET)


def _matrix_csv(tmp_path, v, name):
    cols = [f"P{i + 1}" for i in range(v.shape[1])]
    return table(tmp_path, "f," + ",".join(cols) + "\n" + "".join(
        f"g{j}," + ",".join(repr(float(x)) for x in row) + "\n" for j, row in enumerate(v)),
        name)


def test_counts_and_intensities_exported_after_their_log_are_refused(tmp_path):
    """Counts and intensities are logged by the normaliser: a table exported after its log
    (log2 CPM, log2 LFQ) would be logged twice, silently.  Raw and normalised values pass:
    integer counts, RSEM-like fractions far above 50, small integer counts, intensities over
    orders of magnitude, ratios around 1."""
    rng = np.random.default_rng(0)
    counts = rng.negative_binomial(5, 0.01, size=(30, 4)).astype(float)     # up to ~1,000
    rsem = counts * 1.37 + 0.25
    log_cpm = np.log2(counts / counts.sum(0) * 1e6 + 1)                    # ~9-15
    raw_int = np.exp(rng.normal(16, 2, size=(30, 4)))                     # 1e4-1e9
    log_int = np.log2(raw_int)                                            # ~15-30
    ratios = np.exp(rng.normal(0, 1, size=(30, 4)))                       # 0.05-20
    sheet = ["P1", "P2", "P3", "P4"]
    for v, kind in ((log_cpm, "counts"), (log_int, "intensity")):
        with pytest.raises(InputDataError, match=f"the values look log-transformed already "
                                                 f".*kind {kind} takes them unlogged.*"
                                                 "Give log-scale data as kind: continuous") as e:
            ingest_omic(_matrix_csv(tmp_path, v, f"{kind}_log.csv"), kind=kind,
                        sample_ids=sheet)
        assert "\n" not in str(e.value)
        # the same table as continuous is read
        a = ingest_omic(_matrix_csv(tmp_path, v, f"{kind}_log.csv"), kind="continuous",
                        sample_ids=sheet)
        np.testing.assert_allclose(a.X, v.T)
    for v, kind in ((counts, "counts"), (rsem, "counts"), (counts % 10, "counts"),
                    (raw_int, "intensity"), (ratios, "intensity")):
        a = ingest_omic(_matrix_csv(tmp_path, v, "ok.csv"), kind=kind, sample_ids=sheet)
        np.testing.assert_allclose(a.X, v.T)


def test_raw_intensities_declared_continuous_are_warned_and_read_as_given(tmp_path, capfd):
    """The mirror case: kind continuous uses values as they are, so raw intensities or counts
    declared continuous (unlogged, right-skewed over orders of magnitude) get a terminal
    warning; log-scale, centred and copy-number data do not."""
    rng = np.random.default_rng(1)
    raw = np.exp(rng.normal(16, 2, size=(40, 4)))
    sheet = ["P1", "P2", "P3", "P4"]
    a = ingest_omic(_matrix_csv(tmp_path, raw, "raw.csv"), kind="continuous", sample_ids=sheet)
    np.testing.assert_allclose(a.X, raw.T)
    err = capfd.readouterr().err
    assert ("WARNING raw.csv: the values are all >= 0 and span more than three orders of "
            "magnitude") in err and "use kind: intensity or counts" in err
    log2_expr = np.log2(rng.negative_binomial(3, 0.002, size=(40, 4)) + 1.0)   # 0 to ~14
    centred = rng.normal(0, 1, size=(40, 4))
    calls = rng.integers(-2, 3, size=(40, 4)).astype(float)
    for v in (log2_expr, centred, calls, np.log2(raw)):
        ingest_omic(_matrix_csv(tmp_path, v, "ok.csv"), kind="continuous", sample_ids=sheet)
    assert "WARNING" not in capfd.readouterr().err


def test_reading_a_large_table_reports_how_far_and_how_long(tmp_path, monkeypatch, caplog):
    """A read of more than ~10 s says rows done, share and time left; a short one says
    nothing.  The clock is the test's: 4 s per part of the table."""
    import logging
    from types import SimpleNamespace

    import omix.errors as errors
    import omix.io as oio

    clock = iter(range(0, 10_000, 4))
    monkeypatch.setattr(errors, "time", SimpleNamespace(monotonic=lambda: next(clock)))
    monkeypatch.setattr(oio, "CHUNK_CELLS", 40)          # 10 rows of 4 columns a part
    rng = np.random.default_rng(0)
    table = tmp_path / "meth.csv"
    pd.DataFrame(rng.random((100, 3)), index=[f"cg{i}" for i in range(100)],
                 columns=["S1", "S2", "S3"]).to_csv(table)
    with caplog.at_level(logging.INFO, logger="omix"):
        df = oio.read_numeric_table(table)
    assert df.shape == (100, 3)
    lines = [r.getMessage() for r in caplog.records if "reading meth.csv" in r.getMessage()]
    # parts end at 4, 8, 12, ... s: a line when 10 s have passed since the last one
    assert lines == ["reading meth.csv: 30/100 rows (30 %), ~28 s left",
                     "reading meth.csv: 60/100 rows (60 %), ~16 s left",
                     "reading meth.csv: 90/100 rows (90 %), ~4 s left"]


FEATURECOUNTS = (
    '# Program:featureCounts v2.0.6; Command:"featureCounts" "-T" "2" "-a" "genes.gtf" "-o" '
    '"counts.txt" "run1/P1.bam" "/data/P2Aligned.sortedByCoord.out.bam" "P3.sorted.bam"\n'
    "Geneid\tChr\tStart\tEnd\tStrand\tLength\trun1/P1.bam\t"
    "/data/P2Aligned.sortedByCoord.out.bam\tP3.sorted.bam\n"
    "G1\tchr1;chr1\t100;300\t200;400\t+;+\t202\t5\t0\t7\n"
    "G2\tchr2\t50\t90\t-\t41\t11\t12\t13\n")


def test_featurecounts_output_is_read_without_its_annotation(tmp_path, caplog):
    """featureCounts' own output, as written: a program line (with a ';'), five annotation
    columns (multi-exon genes hold ';'-joined coordinates) and BAM paths as sample labels."""
    p = table(tmp_path, FEATURECOUNTS, "counts.txt")
    with caplog.at_level("INFO", logger="omix"):
        a = ingest_omic(p, kind="counts", sample_ids=SHEET)
    assert list(a.obs_names) == ["P1", "P2", "P3"] and list(a.var_names) == ["G1", "G2"]
    np.testing.assert_array_equal(a.X, [[5, 11], [0, 12], [7, 13]])
    assert "counts.txt: a featureCounts table: its program line and annotation columns " \
           "(Chr, Start, End, Strand, Length) are left out" in caplog.text
    # without the program line (often cut with tail -n +2): the same matrix
    b = ingest_omic(table(tmp_path, FEATURECOUNTS.split("\n", 1)[1], "cut.txt"), kind="counts",
                    sample_ids=SHEET)
    np.testing.assert_array_equal(b.X, a.X)
    # errors name the cell's column in the file, the annotation columns counted
    p = table(tmp_path, FEATURECOUNTS.replace("\t41\t11\t", "\t41\t-11\t"), "neg.txt")
    with pytest.raises(InputDataError, match=r"negative count at row 4, column 7"):
        ingest_omic(p, kind="counts", sample_ids=SHEET)
    p = table(tmp_path, FEATURECOUNTS.replace("\t41\t11\t", "\t41\tx\t"), "text.txt")
    with pytest.raises(InputDataError, match=r"non-numeric cell at row 4, column 7 "):
        ingest_omic(p, kind="counts", sample_ids=SHEET)


def test_comment_line_above_a_header_is_named_not_taken_for_a_delimiter(tmp_path):
    p = table(tmp_path, "# exported by tool X; version 3\nf\tP1\tP2\ng1\t1\t2\n", "c.tsv")
    with pytest.raises(InputDataError, match=r"line 1 starts with '#' and has 1 field\(s\) but "
                                             r"line 2 has 3: a comment or format line"):
        ingest_omic(p, kind="counts", sample_ids=SHEET)


PROTEIN_GROUPS = (
    "Protein IDs\tMajority protein IDs\tGene names\tPeptides\tIntensity P1\tIntensity P2\t"
    "LFQ intensity P1\tLFQ intensity P2\tLFQ intensity P3\tReverse\tPotential contaminant\t"
    "Only identified by site\tid\n"
    "Q1;Q1-2\tQ1\tTP53\t7\t1500\t0\t1200.5\t0\t800\t\t\t\t0\n"
    "REV__Q9\tREV__Q9\t\t1\t90\t80\t70\t60\t50\t+\t\t\t1\n"
    "CON__P2\tCON__P2\tKRT1\t3\t900\t800\t700\t600\t500\t\t+\t\t2\n"
    "Q3\tQ3\tEGFR\t12\t3000\t2500\t2900\t2400\t2600\t\t\t\t3\n"
    "Q4\tQ4\t\t2\t40\t30\t20\t10\t15\t\t\t+\t4\n")


@pytest.mark.parametrize("suffix", ["txt", "parquet"])
def test_maxquant_protein_groups_read_by_label_column_and_columns(tmp_path, caplog, suffix):
    """MaxQuant's proteinGroups.txt: the LFQ columns only, labelled by the sample's part of
    their header, proteins by 'Majority protein IDs'; decoys, contaminants and proteins
    identified by a site only (their '+') left out; MaxQuant's 0 stays 0 (below detection for
    the normaliser)."""
    p = table(tmp_path, PROTEIN_GROUPS, "proteinGroups.txt")
    if suffix == "parquet":
        p = as_parquet(p, dtype={"Reverse": str, "Potential contaminant": str,
                                 "Only identified by site": str})
    from omix.io import Columns

    with caplog.at_level("INFO", logger="omix"):
        a = ingest_omic(p, kind="intensity", sample_ids=SHEET,
                        columns=Columns("Majority protein IDs", r"^LFQ intensity (.+)$"))
    assert list(a.obs_names) == ["P1", "P2", "P3"] and list(a.var_names) == ["Q1", "Q3"]
    np.testing.assert_array_equal(a.X, [[1200.5, 2900], [0, 2400], [800, 2600]])
    assert "3 row(s) marked '+' (MaxQuant) or True (Proteome Discoverer)" in caplog.text
    assert "3 data column(s) read, row labels from column 2; 9 other column(s) left out" \
        in caplog.text


def test_columns_errors_name_the_file_and_the_option(tmp_path):
    from omix.io import Columns

    p = table(tmp_path, PROTEIN_GROUPS.replace("\t1200.5\t", "\tn.d.\t"), "pg.txt")
    with pytest.raises(InputDataError, match=r"pg.txt: non-numeric cell at row 2, column 7 "
                                             r"\(feature 'Q1'\)"):
        ingest_omic(p, kind="intensity", sample_ids=SHEET,
                    columns=Columns("Majority protein IDs", r"^LFQ intensity (.+)$"))
    clean = table(tmp_path, PROTEIN_GROUPS, "clean.txt")
    for columns, message in (
            (Columns(None, r"^iBAQ (.+)$"), r"no column label matches columns: '\^iBAQ \(\.\+\)\$' "
                                            r"\(of 13 columns\)"),
            (Columns("Gene name", None), r"has no column 'Gene name' \(label_column\)"),
            (Columns(None, r"^LFQ (int"), r"the columns option is not a regular expression "
                                          r"that compiles"),
            # 'Intensity P1' and 'LFQ intensity P1' both give P1: named by their file columns
            (Columns("Majority protein IDs", r"ntensity (P\d)$"),
             r"sample columns 5 and 7 have the same label")):
        with pytest.raises(InputDataError, match=message):
            ingest_omic(clean, kind="intensity", sample_ids=SHEET, columns=columns)


def test_columns_select_features_of_a_samples_x_features_table(tmp_path):
    """MetaboAnalyst's layout: samples in rows, a class column beside the metabolites."""
    from omix.io import Columns

    p = table(tmp_path, "Sample,Label,m_100.1,m_200.2\nP1,case,5,6\nP2,control,7,8\n")
    a = ingest_omic(p, kind="intensity", sample_ids=SHEET, layout="samples_x_features",
                    columns=Columns(None, r"^m_(.+)$"))
    assert list(a.var_names) == ["100.1", "200.2"]
    np.testing.assert_array_equal(a.X, [[5, 6], [7, 8]])


SERIES_MATRIX = (
    '!Series_title\t"DNA methylation of a cohort"\n'
    '!Series_geo_accession\t"GSE0"\n'
    "\n"
    '!Sample_title\t"patient 1"\t"patient 2"\t"patient 3"\n'
    '!Sample_characteristics_ch1\t"age: 61"\t"age: 57"\t"age: 70"\n'
    "!series_matrix_table_begin\n"
    '"ID_REF"\t"P1"\t"P2"\t"P3"\n'
    '"cg01"\t0.12\t0.5\tnull\n'
    '"cg02"\t0.9\t0.81\t0.77\n'
    '"cg03"\t0.33\t0.4\t0.35\n'
    "!series_matrix_table_end\n")


@pytest.mark.parametrize("cells", [None, 4])
def test_geo_series_matrix_read_between_its_table_lines(tmp_path, monkeypatch, cells):
    """GEO's series matrix: metadata lines of any width above the table, an end line below
    it; read whole and in parts of one row (``cells``), errors naming the file's lines."""
    import omix.io

    if cells:
        monkeypatch.setattr(omix.io, "CHUNK_CELLS", cells)
    a = ingest_omic(table(tmp_path, SERIES_MATRIX, "GSE0_series_matrix.txt"), kind="beta",
                    sample_ids=SHEET)
    assert list(a.obs_names) == ["P1", "P2", "P3"]
    assert list(a.var_names) == ["cg01", "cg02", "cg03"]
    np.testing.assert_array_equal(a.X, [[0.12, 0.9, 0.33], [0.5, 0.81, 0.4],
                                        [np.nan, 0.77, 0.35]])
    p = table(tmp_path, SERIES_MATRIX.replace("0.81", "n.d."), "bad_series_matrix.txt")
    with pytest.raises(InputDataError, match=r"non-numeric cell at row 9, column 3 "
                                             r"\(feature 'cg02'\)"):
        ingest_omic(p, kind="beta", sample_ids=SHEET)
    p = table(tmp_path, SERIES_MATRIX.replace("!series_matrix_table_end\n", ""),
              "cut_series_matrix.txt")
    with pytest.raises(InputDataError, match=r"has no '!series_matrix_table_end' line after "
                                             r"its table: the file is cut short"):
        ingest_omic(p, kind="beta", sample_ids=SHEET)


def test_cbioportal_table_read_by_entrez_id_where_symbols_are_missing(tmp_path):
    """cBioPortal's data_mrna_seq_v2_rsem.txt: Hugo_Symbol (empty for some genes), then
    Entrez_Gene_Id (a number, not a sample), then the samples."""
    from omix.io import Columns

    text = ("Hugo_Symbol\tEntrez_Gene_Id\tP1\tP2\nTP53\t7157\t10.5\t3\n\t100130\t4\t5\n"
            "EGFR\t1956\t7\t8.25\n")
    p = table(tmp_path, text, "data_mrna_seq_v2_rsem.txt")
    with pytest.raises(InputDataError, match=r"row 3 has values but an empty label in column 1; "
                                             r"1 such row\(s\)\. .*label_column: in the config"):
        ingest_omic(p, kind="counts", sample_ids=SHEET)
    a = ingest_omic(p, kind="counts", sample_ids=SHEET,
                    columns=Columns("Entrez_Gene_Id", r"^P\d"))
    assert list(a.var_names) == ["7157", "100130", "1956"]
    np.testing.assert_array_equal(a.X, [[10.5, 4, 7], [3, 5, 8.25]])
    p = table(tmp_path, text.replace("\t1956\t", "\t\t"), "no_id.txt")
    with pytest.raises(InputDataError, match=r"row 4 has values but an empty label in column 2"):
        ingest_omic(p, kind="counts", sample_ids=SHEET, columns=Columns("Entrez_Gene_Id", "^P"))


MAF = ("#version 2.4\n"
       "Hugo_Symbol\tEntrez_Gene_Id\tCenter\tVariant_Classification\tTumor_Sample_Barcode\t"
       "HGVSp_Short\n"
       'TP53\t7157\tBI\tMissense_Mutation\tP1-01A\tp.R175H\n'
       'TP53\t7157\tBI\tNonsense_Mutation\tP2-01A\tp.R213*\n'
       'TP53\t7157\tBI\tMissense_Mutation\tP2-01A\tp.R248Q\n'
       'CTNNB1\t1499\tBI\tIn_Frame_Del\tP3-01A\tp.S45del\n'
       'TTN\t7273\tBI\tSilent\tP4-01A\tp.A1A\n'
       '\t0\tBI\tMissense_Mutation\tP4-01A\t"p.?"\n'
       "MEN1\t4221\tBI\t3'UTR\tP1-01A\t\n")


def test_maf_becomes_a_gene_by_sample_table_of_protein_changing_mutations(tmp_path, caplog):
    """A MAF (one row per variant, the format of TCGA's and cBioPortal's mutation files):
    1 where a tumour carries a protein-changing variant of the gene; a tumour with silent
    variants only is measured (all 0); silent and UTR variants, rows without a gene, do not
    count."""
    import gzip

    p = table(tmp_path, MAF, "mutations.maf")
    with caplog.at_level("INFO", logger="omix"):
        a = ingest_omic(p, kind="binary", sample_ids=SHEET, regex=r"^(P\d)")
    assert list(a.obs_names) == ["P1", "P2", "P3", "P4"]
    assert list(a.var_names) == ["CTNNB1", "TP53"]
    np.testing.assert_array_equal(a.X, [[0, 1], [0, 1], [1, 0], [0, 0]])
    assert "a MAF of 7 variants in 4 samples; 4 counted (protein-changing) in 2 genes; 1 " \
           "row(s) without gene or sample left out" in caplog.text
    gz = tmp_path / "mutations.maf.gz"
    gz.write_bytes(gzip.compress(MAF.encode()))
    np.testing.assert_array_equal(ingest_omic(gz, kind="binary", sample_ids=SHEET,
                                              regex=r"^(P\d)").X, a.X)
    # without Variant_Classification every variant counts
    bare = "\n".join("\t".join(c for k, c in enumerate(ln.split("\t")) if k != 3)
                     for ln in MAF.splitlines()[1:]) + "\n"
    b = ingest_omic(table(tmp_path, bare, "bare.maf"), kind="binary", sample_ids=SHEET,
                    regex=r"^(P\d)")
    assert list(b.var_names) == ["CTNNB1", "MEN1", "TP53", "TTN"]
    np.testing.assert_array_equal(b.X, [[0, 1, 1, 0], [0, 0, 1, 0], [1, 0, 0, 0],
                                        [0, 0, 0, 1]])
    with pytest.raises(InputDataError, match=r"mutations.maf: is a MAF \(one row per variant\) "
                                             r"but kind is counts\. Set kind: binary"):
        ingest_omic(p, kind="counts", sample_ids=SHEET, regex=r"^(P\d)")


OLINK = ("SampleID;Index;OlinkID;UniProt;Assay;Panel;PlateID;QC_Warning;LOD;NPX\n"
         "P1;1;OID20049;P05231;IL6;Inflammation;plate1;Pass;1.51;3.05\n"
         "P1;1;OID20050;P10145;CXCL8;Inflammation;plate1;Pass;0.9;7.5\n"
         "P2;2;OID20049;P05231;IL6;Inflammation;plate1;Pass;1.51;-0.25\n"
         "P2;2;OID20050;P10145;CXCL8;Inflammation;plate1;Pass;0.9;6.125\n"
         "P3;3;OID20049;P05231;IL6;Inflammation;plate1;Warning;1.51;2\n")


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_long_table_becomes_features_by_samples(tmp_path, caplog, suffix):
    """An Olink NPX export: one row per sample and assay, ';'-separated with '.' decimals
    (format: csv_semicolon); a pair without a row is missing."""
    from omix.io import Long

    p = table(tmp_path, OLINK, "npx.csv")
    fmt = "csv_semicolon"
    if suffix == "parquet":
        p, fmt = as_parquet(p, sep=";"), "auto"
    with caplog.at_level("INFO", logger="omix"):
        a = ingest_omic(p, kind="continuous", sample_ids=SHEET, fmt=fmt,
                        long=Long("SampleID", "OlinkID", "NPX"))
    assert list(a.obs_names) == ["P1", "P2", "P3"]
    assert list(a.var_names) == ["OID20049", "OID20050"]
    np.testing.assert_array_equal(a.X, [[3.05, 7.5], [-0.25, 6.125], [2, np.nan]])
    assert "a long table of 5 rows: 2 features x 3 samples (1 pairs without a row)" in caplog.text


@pytest.mark.parametrize("cells", [None, 7])
def test_long_table_errors_name_the_file_rows(tmp_path, monkeypatch, cells):
    """Read whole and in parts of about two rows (``cells``): the same rows named."""
    import omix.io
    from omix.io import Long

    if cells:
        monkeypatch.setattr(omix.io, "CHUNK_CELLS", cells)

    spec = Long("SampleID", "OlinkID", "NPX")
    cases = [
        (OLINK.replace(";6.125\n", ";6,125\n"), "continuous", spec,
         r"1 cell\(s\) hold numbers with a decimal comma \(first at row 5, column 10 "
         r"\(feature 'OID20050'\)\)"),
        (OLINK + "P3;3;OID20049;P05231;IL6;Inflammation;plate2;Pass;1.51;2.5\n", "continuous",
         spec, r"rows 6 and 7 hold the same sample and feature \('OID20049'\); 1 repeated"),
        (OLINK, "continuous", Long("SampleID", "Assay", "NPX_value"),
         r"has no column 'NPX_value' named in long\. Name columns of its header \(SampleID, "),
        (OLINK, "continuous", Long("OlinkID", "SampleID", "NPX"),
         r"the sample and feature columns are swapped\. Swap long.sample and long.feature"),
        (OLINK, "intensity", spec, r"negative intensity at row 4, column 10 \(feature "
                                   r"'OID20049'\)"),
        (OLINK.replace("P2;2;OID20050", ";2;OID20050"), "continuous", spec,
         r"row 5 has an empty SampleID; 1 such row"),
        (OLINK.replace(";-0.25\n", ";1\n").replace(";2\n", ";2\nP3;3;OID20050;P;C;I;p;P;1;4\n")
         .replace("P1;1;OID20050", "Q1;1;OID20050"), "counts", spec,
         r"1 of 4 sample rows match no sample_id of the sample sheet \(first: row 3\)"),
    ]
    for k, (text, kind, long, message) in enumerate(cases):
        p = table(tmp_path, text, f"npx{k}.csv")
        with pytest.raises(InputDataError, match=message):
            ingest_omic(p, kind=kind, sample_ids=SHEET, fmt="csv_semicolon", long=long)
    # a count pair without a row: counts must be complete
    counts = OLINK.replace(";-0.25\n", ";1\n").replace(";3.05\n", ";3\n")
    with pytest.raises(InputDataError, match=r"1 pair\(s\) of a sample and a feature have no "
                                             r"row\. Count tables must be complete"):
        ingest_omic(table(tmp_path, counts, "c.csv"), kind="counts", sample_ids=SHEET,
                    fmt="csv_semicolon", long=spec)


def test_a_placeholder_sample_and_a_copied_sample_are_refused_by_place(tmp_path, capfd):
    """A sample whose measured values are all one number (an export's placeholder) and two
    samples with the same values in every feature (a copied column, one sample under two IDs)
    are refused naming their file columns (rows in a samples-in-rows table); the values and
    IDs are not printed.  Binary tables are not checked, nor discrete copy-number calls; a
    repeated continuous profile of fractions is warned about."""
    rng = np.random.default_rng(3)
    sheet = ["Q11", "Q12", "Q13", "Q14"]

    def csv(v, name):
        return table(tmp_path, "f," + ",".join(sheet) + "\n" + "".join(
            f"g{j}," + ",".join(repr(float(x)) for x in row) + "\n" for j, row in enumerate(v)),
            name)

    counts = rng.poisson(40, size=(30, 4)).astype(float)
    cases = [(np.column_stack([counts[:, :2], np.full(30, 17.0), counts[:, 3]]), "counts",
              r"sample column 4 has one and the same value in all 30 of its measured features"
              r"\. That is a placeholder"),
             (np.column_stack([counts[:, :3], counts[:, 1]]), "counts",
              r"sample columns 3 and 5 hold the same values in all 30 of their measured "
              r"features\. Two patients cannot have identical profiles"),
             (np.column_stack([counts[:, :3] / 100, counts[:, 0] / 100]), "beta",
              r"sample columns 2 and 5 hold the same values")]
    for k, (v, kind, message) in enumerate(cases):
        p = csv(v, f"t{k}.csv")
        with pytest.raises(InputDataError, match=message) as e:
            ingest_omic(p, kind=kind, sample_ids=sheet)
        assert "17" not in str(e.value) and "Q1" not in str(e.value)
    # samples in rows: named by row; a copy with the same cells missing is still a copy
    v = counts.T.copy()
    v[:, 5] = np.nan
    v[2] = v[0]
    p = tmp_path / "rows.tsv"
    pd.DataFrame(v, index=sheet, columns=[f"g{i}" for i in range(30)]).to_csv(p, sep="\t")
    with pytest.raises(InputDataError, match="sample rows 2 and 4 hold the same values in all "
                                             "29 of their measured"):
        ingest_omic(p, kind="intensity", sample_ids=sheet, layout="samples_x_features")
    # what real data does hold: tumours alike in a mutation panel, diploid copy-number calls,
    # two samples whose profiles differ in one cell, profiles of fewer than 20 values
    calls = rng.integers(-1, 2, size=(30, 4)).astype(float)
    calls[:, 1] = 0
    calls[:, 3] = calls[:, 2]
    near = counts.copy()
    near[:, 3] = near[:, 2]
    near[7, 3] += 1
    fine = [(np.column_stack([np.zeros(30), np.zeros(30), counts[:, :2] > 40]), "binary"),
            (calls, "continuous"), (near, "counts"), (np.full((19, 4), 5.0), "intensity")]
    for k, (v, kind) in enumerate(fine):
        a = ingest_omic(csv(v.astype(float), f"ok{k}.csv"), kind=kind,
                        sample_ids=sheet)
        np.testing.assert_array_equal(a.X, v.T)
    assert "WARNING" not in capfd.readouterr().err
    frac = rng.normal(size=(30, 4))
    frac[:, 3] = frac[:, 0]
    a = ingest_omic(csv(frac, "frac.csv"), kind="continuous", sample_ids=sheet)
    assert a.n_obs == 4
    assert ("WARNING frac.csv: sample columns 2 and 5 hold the same values in all 30 of their "
            "measured features. If the values are not discrete calls, two patients cannot"
            ) in capfd.readouterr().err


def test_spectronaut_pivot_report_read_by_label_column_and_columns(tmp_path):
    """A Spectronaut protein pivot report: runs named '[k] <run>.raw.PG.Quantity' (or
    .htrms), annotation and iBAQ columns beside them; 'Filtered' (not passing its q-value
    filter) and 'NaN' cells are missing, on the fast path and the careful one."""
    from omix.io import Columns

    head = ("PG.ProteinGroups\tPG.Genes\t[1] 2024_R7_P1.raw.PG.Quantity\t"
            "[1] 2024_R7_P1.raw.PG.IBAQ\t[2] 2024_R8_P2.htrms.PG.Quantity\n")
    body = ("P04049;P15056\tRAF1;BRAF\t1532.5\t12.5\tFiltered\n"
            "Q01968\tOCRL\tNaN\t3.25\t88.125\n"
            "P43320\tCRYBB2\t407.75\t1.5\t6075.5\n")
    cols = Columns("PG.ProteinGroups",
                   r"^\[\d+\] (.+?)(?:\.raw|\.htrms|\.d|\.wiff)?\.PG\.Quantity$")
    for k, text in enumerate([body, body.replace("Filtered", " filtered")]):
        p = table(tmp_path, head + text, f"sn{k}.tsv")
        a = ingest_omic(p, kind="intensity", sample_ids=SHEET, regex=r"_(P\d)$",
                        columns=cols)
        assert list(a.obs_names) == ["P1", "P2"]
        assert list(a.var_names)[:3] == ["P04049;P15056", "Q01968", "P43320"]
        np.testing.assert_array_equal(a.X[:, :3], [[1532.5, np.nan, 407.75],
                                                   [np.nan, 88.125, 6075.5]])
    bad = table(tmp_path, head + body.replace("Filtered", "Filtred"), "typo.tsv")
    with pytest.raises(InputDataError, match=r"row 2, column 5 \(feature 'P04049;P15056'\)"):
        ingest_omic(bad, kind="intensity", sample_ids=SHEET, regex=r"_(P\d)$", columns=cols)


PD_PROTEINS = (
    "Checked\tProtein FDR Confidence: Combined\tMaster\tAccession\tDescription\tContaminant\t"
    "Abundance: F1: Sample, tumour\tAbundance: F2: Sample, tumour\tAbundance: F3: Sample, tumour\t"
    "Abundances (Normalized): F1: Sample, tumour\tAbundances (Normalized): F2: Sample, tumour\t"
    "Abundances (Normalized): F3: Sample, tumour\n"
    "False\tHigh\tIsMasterProtein\tP04049\tRAF1\tFalse\t1532.5\t\t407.75\t1.1\t\t1.2\n"
    "False\tHigh\tIsMasterProtein\tP00761\tTrypsin\tTrue\t99000\t98000\t97000\t1\t1\t1\n"
    "False\tHigh\tIsMasterProtein\tP43320\tCRYBB2\tFalse\t88.125\t6075.5\t12\t1\t2\t3\n")


@pytest.mark.parametrize("suffix", ["txt", "parquet"])
def test_proteome_discoverer_proteins_read_by_file_id_with_contaminants_left_out(
        tmp_path, caplog, suffix):
    """Proteome Discoverer's proteins export: the raw 'Abundance: F<n>:' columns only (not the
    normalised ones), each named by PD's file ID and mapped to the sheet by sample_id.map;
    rows True in Contaminant (here trypsin) left out; an empty cell is missing."""
    from omix.io import Columns

    p = table(tmp_path, PD_PROTEINS, "study_Proteins.txt")
    if suffix == "parquet":
        p = as_parquet(p)
        assert pd.read_parquet(p)["Contaminant"].dtype == bool
    m = tmp_path / "files.tsv"
    m.write_text("name\tsample_id\nF1\tP3\nF2\tP1\nF3\tP4\n")
    with caplog.at_level("INFO", logger="omix"):
        a = ingest_omic(p, kind="intensity", sample_ids=SHEET, map_file=m,
                        columns=Columns("Accession", r"^Abundance: (F\d+): "))
    assert list(a.obs_names) == ["P1", "P3", "P4"] and list(a.var_names) == ["P04049", "P43320"]
    np.testing.assert_array_equal(a.X, [[np.nan, 6075.5], [1532.5, 88.125], [407.75, 12]])
    assert "1 row(s) marked '+' (MaxQuant) or True (Proteome Discoverer) in" in caplog.text


FRAGPIPE = (
    "Protein\tProtein ID\tEntry Name\tGene\tCombined Total Peptides\tP1 Intensity\t"
    "P1 MaxLFQ Intensity\tP2 Intensity\tP2 MaxLFQ Intensity\tP3 Intensity\tP3 MaxLFQ Intensity\n"
    "sp|P04049|RAF1_HUMAN\tP04049\tRAF1_HUMAN\tRAF1\t12\t9\t1532.5\t9\t0\t9\t407.75\n"
    "contam_sp|P00761|TRYP_PIG\tP00761\tTRYP_PIG\t\t30\t9\t99000\t9\t98000\t9\t97000\n"
    "sp|P43320|CRBB2_HUMAN\tP43320\tCRBB2_HUMAN\tCRYBB2\t4\t9\t88.125\t9\t6075.5\t9\t12\n")


@pytest.mark.parametrize("suffix", ["tsv", "parquet"])
def test_fragpipe_combined_protein_read_with_contaminants_left_out(tmp_path, caplog, suffix):
    """FragPipe's combined_protein.tsv: the '<sample> MaxLFQ Intensity' columns (not the
    plain Intensity ones), proteins by 'Protein ID'; the proteins FragPipe names 'contam_'
    (its database's contaminants: here trypsin) are left out; its 0 stays 0 (below
    detection for the normaliser)."""
    from omix.io import Columns

    p = table(tmp_path, FRAGPIPE, "combined_protein.tsv")
    if suffix == "parquet":
        p = as_parquet(p)
    with caplog.at_level("INFO", logger="omix"):
        a = ingest_omic(p, kind="intensity", sample_ids=SHEET,
                        columns=Columns("Protein ID", r"^(.+) MaxLFQ Intensity$"))
    assert list(a.obs_names) == ["P1", "P2", "P3"] and list(a.var_names) == ["P04049", "P43320"]
    np.testing.assert_array_equal(a.X, [[1532.5, 88.125], [0, 6075.5], [407.75, 12]])
    assert "1 row(s) marked '+' (MaxQuant) or True (Proteome Discoverer) in" in caplog.text
    assert "or a 'contam_' Protein (FragPipe)" in caplog.text
