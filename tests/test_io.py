import gzip

import numpy as np
import pandas as pd
import pytest
from omix import io
from omix.errors import ConfigError, InputDataError


def write(path, text):
    path.write_text(text)
    return path


def test_read_table_csv_tsv_parquet_gzip_agree(tmp_path):
    df = pd.DataFrame({"s1": [1.0, 2.5], "s2": [3.0, np.nan]}, index=["f1", "f2"])
    df.to_csv(tmp_path / "a.csv")
    df.to_csv(tmp_path / "a.tsv", sep="\t")
    df.to_csv(tmp_path / "a.tsv.gz", sep="\t")
    df.reset_index().to_parquet(tmp_path / "a.parquet")
    for name in ("a.csv", "a.tsv", "a.tsv.gz", "a.parquet"):
        got = io.to_numeric_frame(io.read_table(tmp_path / name), name)
        assert list(got.index) == ["f1", "f2"]
        assert list(got.columns) == ["s1", "s2"]
        assert got.loc["f1", "s2"] == 3.0 and np.isnan(got.loc["f2", "s2"])


@pytest.mark.parametrize("name,content,message", [
    ("e.csv", "", "file is empty"),
    ("h.csv", "feature,s1,s2\n", "has a header but no data rows"),
    ("x.xlsx", "a,b\n1,2\n", "unknown table format"),
    ("one.csv", "a\n1\n", r"has 1 column\(s\)"),
])
def test_read_table_rejects(tmp_path, name, content, message):
    p = write(tmp_path / name, content)
    with pytest.raises(InputDataError, match=message) as e:
        io.read_table(p)
    assert str(p) in str(e.value)


def test_truncated_gzip_is_named(tmp_path):
    data = gzip.compress(b"f,s1\n" + b"g,1\n" * 5000)
    p = tmp_path / "t.csv.gz"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputDataError, match="gzip stream is truncated"):
        io.read_table(p)


def test_parquet_suffix_but_csv_content(tmp_path):
    p = write(tmp_path / "t.parquet", "a,b\n1,2\n")
    with pytest.raises(InputDataError, match="not a parquet file"):
        io.read_table(p)


def test_non_numeric_cell_named_by_row_and_column(tmp_path):
    p = write(tmp_path / "t.csv", "feature,s1,s2\ng1,1,2\ng2,3,abc\ng3,NA,\n")
    with pytest.raises(InputDataError) as e:
        io.to_numeric_frame(io.read_table(p), p)
    msg = str(e.value)
    assert "row 3, column 3 (feature 'g2')" in msg and "s2" not in msg
    assert "\n" not in msg


def test_na_markers_are_missing_not_errors(tmp_path):
    p = write(tmp_path / "t.csv", "feature,s1,s2,s3\ng1,NA,nan,\ng2,1e3,-2,#N/A\n")
    got = io.to_numeric_frame(io.read_table(p), p)
    assert got.isna().sum().sum() == 4 and got.loc["g2", "s1"] == 1000.0


def test_inf_rejected(tmp_path):
    p = write(tmp_path / "t.csv", "feature,s1\ng1,1\ng2,inf\n")
    with pytest.raises(InputDataError, match=r"infinite value at row 3, column 2 \(feature 'g2'\)"):
        io.to_numeric_frame(io.read_table(p), p)


def test_map_sample_ids_mapping_then_regex_then_name():
    names = ["TCGA-OR-A5J1-01A-11R", "special", "plain"]
    got = io.map_sample_ids(names, regex=r"^(TCGA-[A-Z0-9]{2}-[A-Z0-9]{4})",
                            mapping={"special": "P9"})
    assert got == ["TCGA-OR-A5J1", "P9", "plain"]


def test_read_sample_map_accepts_mae_sample_map(tmp_path):
    p = write(tmp_path / "m.csv", '"","assay","primary","colname"\n"1","x","P1","c1"\n')
    assert io.read_sample_map(p) == {"c1": "P1"}
    with pytest.raises(ConfigError, match="needs columns 'name' and 'sample_id'"):
        io.read_sample_map(write(tmp_path / "bad.csv", "a,b\n1,2\n"))


def test_sample_sheet_types_and_errors(tmp_path):
    p = write(tmp_path / "s.tsv", "sample_id\tage\tgroup\nA\t50\tx\nB\t\ty\n")
    sheet = io.read_sample_sheet(p)
    assert list(sheet.index) == ["A", "B"]
    assert sheet["age"].dtype == float and np.isnan(sheet.loc["B", "age"])
    assert sheet.loc["A", "group"] == "x"
    with pytest.raises(ConfigError, match="sample_id at row 3 repeats the one at row 2"):
        io.read_sample_sheet(write(tmp_path / "d.tsv", "sample_id\tx\nA\t1\nA\t2\n"))
    with pytest.raises(ConfigError, match="has no 'sample_id' column. Name the column"):
        io.read_sample_sheet(write(tmp_path / "n.tsv", "id\tx\nA\t1\n"))
    trailing = io.read_sample_sheet(write(tmp_path / "t.csv", "sample_id,age\nA,50\nB,\n,\n,\n"))
    assert list(trailing.index) == ["A", "B"] and np.isnan(trailing.loc["B", "age"])
    with pytest.raises(ConfigError, match="empty sample_id at row 3"):
        io.read_sample_sheet(write(tmp_path / "e.csv", "sample_id,age\nA,50\n,60\n"))
    with pytest.raises(ConfigError, match="sample_id at row 5 repeats the one at row 2"):
        io.read_sample_sheet(write(tmp_path / "r.csv", "sample_id,age\nA,50\n,\nB,1\nA,2\n"))
    with pytest.raises(ConfigError, match="sample_id at row 6 repeats the one at row 2"):
        io.read_sample_sheet(write(tmp_path / "b.csv", "sample_id,age\nA,50\n\n,\nB,1\nA,2\n"))
    for header in ("Sample_ID", "sample.id", "SampleID"):
        with pytest.raises(ConfigError, match=f"has no 'sample_id' column \\(column "
                                              f"'{header}' differs only in case or punctuation"):
            io.read_sample_sheet(write(tmp_path / "c.tsv", f"{header}\tx\nA\t1\n"))
    with pytest.raises(ConfigError, match="has a header but no samples"):
        io.read_sample_sheet(write(tmp_path / "e.tsv", "sample_id\tx\n"))


def test_sample_sheet_reads_clinical_export_missing_codes_as_missing(tmp_path, caplog):
    """TCGA's bracketed codes and GDC's '--' / 'not reported' are missing values, not a class
    of the outcome or text in a column of numbers; the log says how many, with the codes."""
    p = write(tmp_path / "tcga.tsv",
              "sample_id\tresponse\tos_time\tstage\n"
              "A\tCR\t120\tStage II\nB\t[Not Available]\t[Not Available]\tStage I\n"
              "C\tPD\t'--\t[Unknown]\nD\tnot reported\t88.5\t--\n")
    with caplog.at_level("INFO", logger="omix.io"):
        sheet = io.read_sample_sheet(p)
    assert sheet["response"].isna().tolist() == [False, True, False, True]
    assert sheet["os_time"].dtype == float and sheet["os_time"].isna().sum() == 2
    assert sheet.loc["D", "os_time"] == 88.5
    assert sheet["stage"].tolist()[:2] == ["Stage II", "Stage I"]
    assert sheet["stage"].isna().tolist() == [False, False, True, True]
    assert ("sample sheet column 'response': 2 cell(s) read as missing ('[Not Available]', "
            "'not reported')") in caplog.text
    # the patients' other values never reach the log
    assert "CR" not in caplog.text and "88.5" not in caplog.text


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.tsv"
    with pytest.raises(RuntimeError), io.atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []
    io.write_tsv(pd.DataFrame({"a": [1.0]}), target)
    assert target.read_text() == "a\n1\n"


# --- exporters' variants: read exactly, or refuse with the cause (issue: no silent misread) ---
GOOD = "feature,s1,s2,s3\ng1,1,2,3\ng2,4,5,6\n"


def exact(p):
    got = io.to_numeric_frame(io.read_table(p), p)
    assert list(got.index) == ["g1", "g2"] and list(got.columns) == ["s1", "s2", "s3"]
    np.testing.assert_array_equal(got.to_numpy(), [[1, 2, 3], [4, 5, 6]])


@pytest.mark.parametrize("name,data", [
    ("trailing_delimiter_everywhere.csv", b"feature,s1,s2,s3,\ng1,1,2,3,\ng2,4,5,6,\n"),
    ("utf8_bom.csv", b"\xef\xbb\xbf" + GOOD.encode()),
    ("crlf.csv", GOOD.replace("\n", "\r\n").encode()),
    ("quoted.csv", b'"feature","s1","s2","s3"\n"g1","1","2","3"\n"g2","4","5","6"\n'),
    ("utf16.csv", GOOD.encode("utf-16")),
    ("gzip_without_suffix.csv", gzip.compress(GOOD.encode(), mtime=0)),
    ("blank_line_at_end.csv", (GOOD + "\n\n").encode()),
    ("header_starting_with_hash.csv", ("#" + GOOD).encode()),
    ("spreadsheet_empty_rows_at_end.csv", (GOOD + ",,,\n,,,\n").encode()),
])
def test_exporter_variants_read_exactly(tmp_path, name, data):
    p = tmp_path / name
    p.write_bytes(data)
    exact(p)


@pytest.mark.parametrize("name,data,message", [
    ("header_lacks_first_cell.csv", b"s1,s2,s3\ng1,1,2,3\ng2,4,5,6\n",
     r"the header has 3 fields but every data row has 4: the header lacks the cell above the "
     r"row labels.*Add a label such as 'feature'"),
    ("trailing_delimiter_on_data_rows.csv", b"feature,s1,s2,s3\ng1,1,2,3,\ng2,4,5,6,\n",
     r"every data row has 5, the last one always empty: either each data row ends with a "
     r"delimiter or the header lacks the cell above the row labels"),
    ("one_row_too_long.csv", b"feature,s1,s2,s3\ng1,1,2,3\ng2,4,5,6,7\n",
     r"line 3 has 5 fields but the header has 4"),
    ("one_row_too_short.csv", b"feature,s1,s2,s3\ng1,1,2,3\ng2,4,5\n",
     r"line 3 has 3 fields but the header has 4"),
    ("latin1.csv", "feature,s1,s2,s3\ngène,1,2,3\ng2,4,5,6\n".encode("latin-1"),
     r"is not UTF-8 text: byte 0xe8 on line 2 .*Latin-1.*Save it as UTF-8"),
    ("tab_separated.csv", GOOD.replace(",", "\t").encode(),
     r"is read as csv \(comma-separated\) but its header line is tab-separated\. Name it "
     r"\.tsv or set format: tsv"),
    ("comma_separated.tsv", GOOD.encode(),
     r"is read as tsv \(tab-separated\) but its header line is comma-separated"),
    ("semicolons.csv", b"feature;s1;s2\ng1;1,5;2\n",
     r"separated by semicolons \(a European-locale export"),
    ("not_gzip.csv.gz", GOOD.encode(), r"is named \.gz but its content is not compressed"),
    ("workbook.csv", b"PK\x03\x04" + b"\x00" * 40, r"is a ZIP archive \(an Excel \.xlsx"),
    ("utf16_no_bom.csv", GOOD.encode("utf-16-le"), r"holds NUL bytes: UTF-16 text without"),
    ("unnamed_column.csv", b"feature,s1,,s3\ng1,1,2,3\ng2,4,5,6\n",
     r"column 3 has an empty header cell"),
    ("excel_sep_line.csv", b"sep=,\n" + GOOD.encode(),
     r"line 1 is a spreadsheet's 'sep=' line, not the header line\. Delete that line"),
    ("excel_sep_line.tsv", b"sep=\t\n" + GOOD.replace(",", "\t").encode(),
     r"line 1 is a spreadsheet's 'sep=' line"),
    ("comment_above_header.csv", b"# exported by tool X\n" + GOOD.encode(),
     r"line 1 starts with '#' and has 1 field\(s\) but line 2 has 4: a comment or format "
     r"line .* above the header\. Delete the lines above the header line"),
    ("maxquant.tsv", b"id\tGene names\ts1\ts2\nQ1\tTP53\t1\t2\nQ2\tEGFR\t3\t4\n",
     r"column 2 holds text in every row: an annotation column .*1 such column\(s\)\. Keep "
     r"the one column of row labels first and delete the other text columns, or set columns: "),
    ("perseus.tsv", b"id\ts1\ts2\n#!{Type}E\tE\tE\nQ1\t1\t2\nQ2\t3\t4\n",
     r"row 2 holds text in every column: an annotation row .*Delete the annotation rows"),
    ("one_text_cell_in_a_text_free_column.csv", b"feature,s1,s2\ng1,1,x\ng2,3,4\n",
     r"non-numeric cell at row 2, column 3 \(feature 'g1'\); 1 such cell"),
    ("row_without_label.csv", b"feature,s1,s2,s3\ng1,1,2,3\n,4,5,6\n,,,\n",
     r"row 3 has values but an empty label in column 1; 1 such row\(s\)\. Give every row"),
    ("gct.tsv", b"#1.2\n2\t3\nName\tDescription\ts1\ts2\ts3\ng1\tna\t1\t2\t3\n",
     r"line 1 starts with '#' and has 1 field\(s\) but line 2 has 2"),
])
def test_exporter_damage_is_refused_with_its_cause(tmp_path, name, data, message):
    p = tmp_path / name
    p.write_bytes(data)
    with pytest.raises(InputDataError, match=message) as e:
        io.to_numeric_frame(io.read_table(p), p)
    assert str(p) in str(e.value) and "\n" not in str(e.value)


def test_decimal_commas_are_named(tmp_path):
    p = write(tmp_path / "t.tsv", "feature\ts1\ts2\ng1\t1,5\t2,25\ng2\t3,0\t4,75\n")
    with pytest.raises(InputDataError, match=r"4 cell\(s\) hold numbers with a decimal comma "
                                             r"\(first at row 2, column 2.*'\.' as the decimal"):
        io.to_numeric_frame(io.read_table(p), p)


def test_sample_sheet_with_semicolons_says_so(tmp_path):
    p = write(tmp_path / "samples.tsv", "sample_id;response\nA;yes\nB;no\n")
    with pytest.raises(ConfigError, match="separated by semicolons"):
        io.read_sample_sheet(p)


def test_sample_sheet_with_trailing_tabs_names_the_cause_not_duplicate_ids(tmp_path):
    p = write(tmp_path / "samples.tsv", "sample_id\tresponse\nA\tyes\t\nB\tno\t\n")
    with pytest.raises(ConfigError, match="either each data row ends with a delimiter"):
        io.read_sample_sheet(p)
    p = write(tmp_path / "samples.tsv", "sample_id\tresponse\t\nA\tyes\t\nB\tno\t\n")
    got = io.read_sample_sheet(p)  # every line ends with a tab: an empty, unnamed last column
    assert list(got.index) == ["A", "B"] and list(got.columns) == ["response"]


@pytest.mark.parametrize("text,message", [
    ("feature,s1,s2\ng1,1,2\n\n\ng2,x,4\n", r"non-numeric cell at row 5, column 2"),
    ("feature,s1,s2\ng1,1,2\n,,\ng2,inf,4\n", r"infinite value at row 4, column 2"),
    ("feature,s1,s2\n\ng1,1,2\n,,\n,5,6\n", r"row 5 has values but an empty label"),
    ("feature,s1,s2\ng1,1,2\n\n#!{Type}E,E,E\n", r"row 4 holds text in every column"),
])
def test_errors_name_the_file_line_past_blank_and_empty_rows(tmp_path, text, message):
    p = write(tmp_path / "t.csv", text)
    with pytest.raises(InputDataError, match=message):
        io.to_numeric_frame(io.read_table(p), p)


TABLES_IN_PARTS = [
    # blank lines, trailing ',,,' rows, a trailing delimiter on every line, NA markers
    "f,P1,P2,P3\ng1,1,2,3\n\ng2,4,NA,6\n,,,\ng3,7,8,9\n\ng4,1.5,,2\n,,,\n",
    "f,P1,P2,P3,\ng1,1,2,3,\ng2,4,5,6,\ng3,7,8,9,\ng4,1,2,3,\ng5,4,5,6,\n",
    # errors: the line of a bad cell after blank lines, counts over the whole file
    "f,P1,P2,P3\ng1,1,2,3\n\ng2,4,x,6\ng3,7,8,9\ng4,y,2,3\n\ng5,4,z,6\n",
    "f,P1,P2,P3\ng1,1,2,3\ng2,4,5,6\n,7,8,9\ng4,1,2,3\n,1,1,1\n",
    "f,P1,P2,P3\ng1,1,2,3\ng2,4,5,6\n#!{Type},T,T,T\ng4,1,2,3\n#!{C},a,b,c\n",
    "f,P1,P2,\ng1,1,2,3\ng2,4,5,6\n",
]


@pytest.mark.parametrize("text", TABLES_IN_PARTS)
def test_a_table_read_in_parts_reads_or_refuses_as_read_whole(tmp_path, text):
    """io.read_numeric_table parses a large table a few thousand rows at a time; with parts of
    one or two rows every result and error (file line, counts) is the whole read's."""
    from unittest import mock

    from omix.errors import InputDataError

    p = write(tmp_path / "t.csv", text)

    def read(cells, careful=False):
        no_fast = mock.patch.object(io, "_fast_numeric", lambda *a: None) if careful else \
            mock.patch.object(io, "CHUNK_CELLS", cells)
        with mock.patch.object(io, "CHUNK_CELLS", cells), no_fast:
            try:
                d = io.read_numeric_table(p)
            except InputDataError as e:
                return e.one_line()
            return d, d.attrs.get(io.FILE_ROWS)

    whole = read(10**9)
    for parts in [read(c, careful) for c in (1, 4, 8, 10**9) for careful in (False, True)]:
        if isinstance(whole, str):
            assert parts == whole
            continue
        pd.testing.assert_frame_equal(parts[0], whole[0])
        np.testing.assert_array_equal(parts[1], whole[1])
    expected = {2: "non-numeric cell at row 4, column 3 (feature 'g2'); 3 such cell(s) in all",
                3: "row 4 has values but an empty label in column 1; 2 such row(s)",
                4: "row 4 holds text in every column: an annotation row",
                5: "column 4 has an empty header cell"}
    case = TABLES_IN_PARTS.index(text)
    if case in expected:
        assert isinstance(whole, str) and expected[case] in whole
        assert case != 4 or "not measurements; 2 such row(s)" in whole
    else:
        assert not isinstance(whole, str) and whole[0].shape[1] == 3


def _parquet_variants():
    rng = np.random.default_rng(3)
    base = pd.DataFrame(rng.normal(size=(5, 3)).round(3), columns=["P1", "P2", "P3"])
    base.insert(0, "feature", [f"g{i}" for i in range(5)])
    f32 = base.astype({c: "float32" for c in ("P1", "P2", "P3")})
    ints = base.assign(**{c: rng.integers(0, 9, 5) for c in ("P1", "P2", "P3")})
    nullable = ints.astype({"P2": "Int64"})
    nullable.loc[2, "P2"] = pd.NA
    gap = base.copy()
    gap.loc[1, "P3"] = np.nan
    flags = base.assign(P1=[True, False, True, True, False])
    indexed = base.set_index("feature")                     # index stored, named
    inf = base.copy()
    inf.loc[3, "P2"] = np.inf
    text = base.assign(P2=["1", "2", "x", "4", "5"])
    cat = base.assign(P3=pd.Categorical(["1", "2", "3", "1", "2"]))
    return {"float64": base, "float32": f32, "int": ints, "nullable": nullable, "gap": gap,
            "bool": flags, "indexed": indexed, "inf": inf, "text": text, "categorical": cat}


@pytest.mark.parametrize("name", list(_parquet_variants()))
def test_parquet_numbers_read_without_text_are_the_text_path(tmp_path, name):
    """Numeric parquet columns go straight to floats (as Python objects a large table would
    take gigabytes); every kind of column gives what the object path (read_table, then
    to_numeric_frame) gives, numbers or the same error."""
    from omix.errors import InputDataError

    df = _parquet_variants()[name]
    p = tmp_path / f"{name}.parquet"
    df.to_parquet(p)

    def via(fn):
        try:
            return fn()
        except InputDataError as e:
            return e.one_line()

    new = via(lambda: io.read_numeric_table(p))
    old = via(lambda: io.to_numeric_frame(io.read_table(p), p))
    if isinstance(old, str):
        assert new == old and name in ("inf", "text")
        return
    pd.testing.assert_frame_equal(new, old)
    assert list(new.index) == [f"g{i}" for i in range(5)] and new.dtypes.eq(float).all()


def test_plain_numbers_take_pandas_parser_and_odd_spellings_the_careful_path(tmp_path):
    """A table of plain decimals and NA markers is parsed by pandas (round-trip precision: the
    value of Python's float() for each cell); a spelling pandas does not read ('1_000', ' NA')
    sends the whole table down the careful path, which reads it as before."""
    from unittest import mock

    digits = ["0.1", "0.30000000000000004", "1e-320", "-2.5E+3", "+47", ".5", "NA", "",
              "123456789012345678", "5."]
    text = "f,P1,P2\n" + "".join(f"g{i},{v},{w}\n" for i, (v, w) in
                                 enumerate(zip(digits, reversed(digits), strict=True)))
    p = write(tmp_path / "plain.csv", text)
    taken = []
    real = io._fast_numeric

    def spy(*a):
        taken.append(real(*a) is not None)
        return real(*a)

    with mock.patch.object(io, "_fast_numeric", spy):
        d = io.read_numeric_table(p)
    expect = [np.nan if v in ("NA", "") else float(v) for v in digits]
    np.testing.assert_array_equal(d["P1"].to_numpy(), expect)
    np.testing.assert_array_equal(d["P2"].to_numpy(), expect[::-1])
    assert taken == [True]
    for i, (cell, value) in enumerate((("1_000", 1000.0), (" NA", np.nan))):
        odd = write(tmp_path / f"odd{i}.csv", f"f,P1,P2\ng1,{cell},2\ng2,4,3\n")
        with mock.patch.object(io, "_fast_numeric", spy):
            d = io.read_numeric_table(odd)
        assert taken[-1] is False
        np.testing.assert_array_equal(d.to_numpy(), [[value, 2.0], [4.0, 3.0]])


CBIOPORTAL_CLINICAL = (
    "#Patient Identifier\tOverall Survival Status\tOverall Survival (Months)\tAge\n"
    "#Identifier to uniquely specify a patient.\tOverall patient survival status.\t"
    "Overall survival in months since initial diagonosis.\tAge at diagnosis.\n"
    "#STRING\tSTRING\tNUMBER\tNUMBER\n"
    "#1\t1\t1\t1\n"
    "sample_id\tOS_STATUS\tOS_MONTHS\tAGE\n"
    "A\t1:DECEASED\t10.5\t61\n"
    "B\t0:LIVING\t40\t\n"
    "C\t\t12\t55\n"
    "D\t1:DECEASED\t-3\t70\n")


def test_cbioportal_clinical_file_metadata_lines_are_skipped(tmp_path, caplog):
    """cBioPortal's data_clinical_*.txt: four '#' lines as wide as the header above it.  Read
    as rows they would be three more samples and make every number column text."""
    p = write(tmp_path / "data_clinical_patient.txt", CBIOPORTAL_CLINICAL)
    with caplog.at_level("INFO", logger="omix"):
        sheet = io.read_sample_sheet(p)
    assert "cBioPortal's 4 metadata lines" in caplog.text
    assert list(sheet.index) == ["A", "B", "C", "D"]
    assert sheet["OS_MONTHS"].dtype == float and sheet["AGE"].dtype == float
    assert list(sheet["OS_STATUS"].iloc[:2]) == ["1:DECEASED", "0:LIVING"]
    # errors name the file's lines, the metadata counted
    with pytest.raises(ConfigError, match="sample_id at row 8 repeats the one at row 6"):
        io.read_sample_sheet(write(tmp_path / "d.txt", CBIOPORTAL_CLINICAL.replace("C\t", "A\t")))
    # two '#' lines are not cBioPortal's: the comment error as before
    two = "".join(CBIOPORTAL_CLINICAL.splitlines(keepends=True)[i] for i in (0, 1, 4, 5))
    with pytest.raises(ConfigError, match="has no 'sample_id' column"):
        io.read_sample_sheet(write(tmp_path / "two.txt", two))
