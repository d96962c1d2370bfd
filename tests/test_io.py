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
    with pytest.raises(ConfigError, match="has no 'sample_id' column"):
        io.read_sample_sheet(write(tmp_path / "n.tsv", "id\tx\nA\t1\n"))
    with pytest.raises(ConfigError, match="has a header but no samples"):
        io.read_sample_sheet(write(tmp_path / "e.tsv", "sample_id\tx\n"))


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.tsv"
    with pytest.raises(RuntimeError), io.atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []
    io.write_tsv(pd.DataFrame({"a": [1.0]}), target)
    assert target.read_text() == "a\n1\n"
