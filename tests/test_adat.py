"""SomaLogic ADAT files (SomaScan proteomics) read by ingest: the study samples' RFU table."""

import gzip

import numpy as np
import pandas as pd
import pytest
from omix.errors import InputDataError
from omix.exporter_bench import adat_text
from omix.ingest import ingest_omic

SHEET = ["Z101", "Z102", "Z103", "Z104", "Z105"]


@pytest.fixture
def rfu() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    return pd.DataFrame(np.round(np.exp(rng.normal(7, 1.2, size=(5, 30))), 1),
                        index=["Z103", "Z101", "Z105", "Z102", "Z104"],
                        columns=[f"GENE{j}" for j in range(30)])


def test_adat_gives_the_study_samples_human_proteins_in_sheet_order(tmp_path, rfu, caplog,
                                                                      capfd):
    """Calibrator and QC wells, a study sample flagged in RowCheck (with a warning), the
    spuriomer, the hybridisation control and the mouse protein are left out (SomaLogic's
    advice), the rest is read exactly, in the sample sheet's order, each analyte named by its
    gene and SeqId; gzip-compressed the same."""
    p = tmp_path / "study.adat"
    p.write_text(adat_text(rfu, flagged=["Z105"]))
    with caplog.at_level("INFO", logger="omix"):
        a = ingest_omic(p, kind="intensity", sample_ids=SHEET)
    kept = ["Z101", "Z102", "Z103", "Z104"]
    assert list(a.obs_names) == kept
    assert list(a.var_names) == [f"GENE{j}_{10000 + j}-{j + 1}" for j in range(30)]
    np.testing.assert_array_equal(a.X, rfu.loc[kept].to_numpy())
    assert ("study.adat: an ADAT of 4 study samples x 30 human protein analytes (3 calibrator, "
            "QC or buffer rows and 3 control or non-human analytes left out)") in caplog.text
    assert ("WARNING study.adat: 1 study sample(s) SomaLogic flagged in RowCheck (their "
            "normalisation scale factors outside 0.4-2.5) are left out") in capfd.readouterr().err
    p.write_text(adat_text(rfu))
    a = ingest_omic(p, kind="intensity", sample_ids=SHEET)
    assert list(a.obs_names) == SHEET
    np.testing.assert_array_equal(a.X, rfu.loc[SHEET].to_numpy())
    z = tmp_path / "study.adat.gz"
    z.write_bytes(gzip.compress(p.read_bytes()))
    b = ingest_omic(z, kind="intensity", sample_ids=SHEET)
    np.testing.assert_array_equal(b.X, a.X)
    assert list(b.var_names) == list(a.var_names)


def test_adat_label_column_names_the_sample_field(tmp_path, rfu):
    """label_column picks another ^ROW_DATA field for the sample IDs (here PlateId, which
    the test fills with the IDs); a field the ADAT lacks is refused naming its fields."""
    text = adat_text(rfu.set_axis([f"X{k}" for k in range(5)]))
    for k, sid in enumerate(rfu.index):
        text = text.replace(f"Plate1\tX{k}\t", f"{sid}\tX{k}\t")
    p = tmp_path / "s.adat"
    p.write_text(text.replace("Plate1\t", "calib\t"))
    a = ingest_omic(p, kind="intensity", sample_ids=SHEET, columns=_cols("PlateId"))
    np.testing.assert_array_equal(a.X, rfu.loc[SHEET].to_numpy())
    with pytest.raises(InputDataError, match="has no sample field 'Barcode' \\(label_column\\); "
                                             "its fields: PlateId, SampleId, SampleType, "
                                             "RowCheck. Set label_column"):
        ingest_omic(p, kind="intensity", sample_ids=SHEET, columns=_cols("Barcode"))


def _cols(label=None, data=None):
    from omix.io import Columns

    return Columns(label, data)


def test_adat_errors_name_the_line_and_column_without_values(tmp_path, rfu):
    text = adat_text(rfu)
    lines = text.split("\n")
    first = next(k for k, ln in enumerate(lines) if "\tSample\t" in ln)   # 0-based
    cells = lines[first].split("\t")
    cells[5 + 3] = "12O.5"                    # a letter O for a zero, analyte 4
    bad = "\n".join(lines[:first] + ["\t".join(cells)] + lines[first + 1:])
    cut = "\n".join(lines[:first] + ["\t".join(lines[first].split("\t")[:20])]
                    + lines[first + 1:])
    only_qc = "\n".join(ln for ln in lines if "\tSample\t" not in ln)
    cases = [(bad, "intensity", None,
              rf"line {first + 1}, column 9 \(analyte '10003-4'\) is not a finite number; 1 "
              r"such cell\(s\) on that line\. RFU values are numbers"),
             (cut, "intensity", None,
              rf"line {first + 1} has 15 RFU values after its annotation, the SeqId line 33"),
             (only_qc, "intensity", None,
              r"has no row whose SampleType is 'Sample' \(only calibrators, QC or buffer"),
             (adat_text(rfu, flagged=list(rfu.index)), "intensity", None,
              r"every study sample \(5\) is flagged in RowCheck"),
             (text, "counts", None,
              r"is a SomaLogic ADAT \(RFU values\) but kind is counts\. Set kind: intensity"),
             (text, "intensity", _cols(None, "^x"),
              r"columns does not apply\. Remove columns from this omic")]
    for k, (t, kind, cols, message) in enumerate(cases):
        p = tmp_path / f"e{k}.adat"
        p.write_text(t)
        with pytest.raises(InputDataError, match=message) as e:
            ingest_omic(p, kind=kind, sample_ids=SHEET, columns=cols)
        assert str(p) in str(e.value) and "12O" not in str(e.value)
        assert "Z10" not in str(e.value)
