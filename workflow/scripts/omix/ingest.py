"""Ingest one omic table: parse, orient, map sample IDs, validate values by kind -> AnnData.

The result holds the raw values (samples x features, float64, NaN = missing) of the samples that
are in the sample sheet, in sample-sheet order, so every later step starts from a checked matrix.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .adat import is_adat, read_adat
from .errors import InputDataError, warn_user
from .io import (
    SAMPLE_WORD,
    Columns,
    Long,
    cell_name,
    file_column,
    file_row,
    first_duplicate,
    is_maf,
    map_sample_ids,
    read_long,
    read_maf,
    read_numeric_table,
    read_sample_map,
)

log = logging.getLogger("omix.ingest")

KINDS = ("counts", "intensity", "binary", "beta", "continuous")


# Rows that read counters write next to the genes: HTSeq-count's and STAR's
# ReadsPerGene.out.tab's tallies of reads assigned to no gene (not features: a library-size
# normalisation that counted them would be off)
COUNTER_ROWS = frozenset({"__no_feature", "__ambiguous", "__too_low_aQual", "__not_aligned",
                          "__alignment_not_unique", "N_unmapped", "N_multimapping",
                          "N_noFeature", "N_ambiguous"})


_MONTH = "(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)"
# What a spreadsheet shows for gene and probe names it took for dates or numbers (Ziemann et
# al., Genome Biol 2016): SEPT2 -> 2-Sep, MARCH1 -> 1-Mar (or a full date), 2310009E13 -> 2.31E+13
_MANGLED = re.compile(rf"\d{{1,2}}-{_MONTH}(-\d{{2,4}})?|{_MONTH}-\d{{1,2}}|"
                      r"\d{4}-\d{2}-\d{2}( 00:00(:00)?)?|\d{1,2}/\d{1,2}/\d{2,4}|"
                      r"\d(\.\d+)?e\+\d+", re.IGNORECASE)


def spreadsheet_mangled(labels: Sequence[str]) -> list[int]:
    """Positions of feature names that look like what a spreadsheet makes of gene or probe
    names it reads as dates or numbers ('2-Sep', '1-Mar', '2006-03-01', '2.31E+13')."""
    return [i for i, s in enumerate(labels) if _MANGLED.fullmatch(str(s).strip())]


def _near_miss(labels: Sequence[Any], known: set[str]) -> str | None:
    """Why sample labels that match no sample_id would match after an exporter's usual change
    (said without printing any label: sample IDs stay out of errors and logs), or None."""
    labels = [str(s) for s in labels if s is not None and str(s) not in known]
    folded = {k.casefold() for k in known}

    def unpadded(s: str) -> str:  # every run of digits without its leading zeros
        return re.sub(r"\d+", lambda m: m.group().lstrip("0") or "0", s)

    unpadded_known = {unpadded(k) for k in known}
    checks = [
        (lambda s: s.replace(".", "-") in known,
         "they would match with '-' for '.' (R's make.names turns each '-' of a name into "
         "'.'; export with check.names = FALSE)"),
        (lambda s: s[:1] == "X" and s[1:2].isdigit() and s[1:] in known,
         "they would match without a leading 'X' (R's make.names puts one before names that "
         "start with a digit; export with check.names = FALSE)"),
        (lambda s: s.casefold() in folded,
         "they would match ignoring upper/lower case (sample IDs are case-sensitive)"),
        (lambda s: unpadded(s) in unpadded_known,
         "they would match if their numbers had the same leading zeros (a spreadsheet drops "
         "them from IDs it reads as numbers: write the IDs as they are in the sample sheet, "
         "or map them with sample_id.map)"),
    ]
    for test, why in checks:
        n = sum(1 for s in labels if test(s))
        if n:
            return f"{n} of them: {why}"
    return None


_TCGA_TYPES = {"01": "primary tumour", "02": "recurrent tumour", "03": "primary blood cancer",
               "05": "additional primary tumour", "06": "metastasis",
               "07": "additional metastasis", "10": "normal blood", "11": "normal tissue"}


def _tcga_types(a: str, b: str) -> str:
    """' (TCGA sample types 01 and 11: primary tumour and normal tissue)' when two TCGA
    barcodes of one patient differ in their sample type (characters 14-15), else ''."""
    codes = [m.group(1) for m in (re.match(r"TCGA-\w{2}-\w{4}-(\d{2})", x) for x in (a, b))
             if m is not None]
    if len(codes) < 2 or codes[0] == codes[1]:
        return ""
    names = [_TCGA_TYPES.get(c, "type " + c) for c in codes]
    return (f" (TCGA sample types {codes[0]} and {codes[1]}: {names[0]} and {names[1]}; keep the "
            "one the study is about)")


def orient_and_map(df: pd.DataFrame, *, layout: str, file: str | os.PathLike[str],
                   sample_ids: Sequence[str], regex: str | None = None,
                   mapping: Mapping[str, str] | None = None,
                   ignore_unlisted: bool = False) -> pd.DataFrame:
    """Return samples x features with index = sample_id, keeping only sample-sheet samples.

    Raises when labels repeat, when nothing matches the sheet (saying so if the other axis
    would have matched: a transposed table), or when labels match no sample of the sheet
    (unless ``ignore_unlisted``: then those samples are left out and counted in the log).
    """
    known = set(sample_ids)
    if layout == "features_x_samples":
        sample_labels, feature_labels = df.columns, df.index
        s_axis, f_axis = "column", "row"
        other = df.index
    else:
        sample_labels, feature_labels = df.index, df.columns
        s_axis, f_axis = "row", "column"
        other = df.columns
    # a table made from a long one (a MAF, long:) names a sample by the row it first appears in
    s_word = df.attrs.get(SAMPLE_WORD, s_axis)

    def pos(axis: str, k: int) -> int:
        """File row (blank lines counted) or column (1-based, the label column first)."""
        return file_row(df, k) if axis == "row" else file_column(df, k)

    if feature_labels.duplicated().any():
        j, i = first_duplicate(feature_labels)
        mangled = bool(spreadsheet_mangled([feature_labels[i]]))
        raise InputDataError(
            f"feature '{feature_labels[i]}' appears twice ({f_axis}s {pos(f_axis, j)} and "
            f"{pos(f_axis, i)})", file=file,
            hint="a spreadsheet turned gene names into dates (MARCH1 and MARC1 both become "
                 "1-Mar): export the table again without opening it in a spreadsheet"
            if mangled else "feature names must be unique: aggregate or rename duplicates")
    if sample_labels.duplicated().any():
        j, i = first_duplicate(sample_labels)
        raise InputDataError(f"sample {s_word}s {pos(s_axis, j)} and {pos(s_axis, i)} have the "
                             "same label", file=file, hint="each sample may appear once; drop one")
    ids = pd.Index(map_sample_ids(list(sample_labels), regex=regex, mapping=mapping))
    matched = ids.isin(known)
    if not matched.any():
        other_ids = map_sample_ids(list(other), regex=regex, mapping=mapping)
        if any(o in known for o in other_ids) and SAMPLE_WORD in df.attrs:
            raise InputDataError("no sample label matches a sample_id, but feature labels do: "
                                 "the sample and feature columns are swapped", file=file,
                                 hint="swap long.sample and long.feature")
        if any(o in known for o in other_ids):
            want = "samples_x_features" if layout == "features_x_samples" else \
                "features_x_samples"
            raise InputDataError(
                f"no {s_axis} label matches a sample_id, but {f_axis} labels do: the table is "
                f"oriented the other way", file=file, hint=f"set layout: {want} for this omic")
        near = _near_miss(list(ids), known)
        raise InputDataError(
            f"none of the {len(ids)} sample {s_word} labels matches a sample_id of the sample "
            f"sheet{f' ({near})' if near else ''}", file=file,
            hint="check the sample sheet, or map labels with sample_id.regex / sample_id.map")
    if not matched.all() and ignore_unlisted:
        log.info("%s: %d of %d samples are not in the sample sheet and are left out",
                 Path(file).name, int((~matched).sum()), len(ids))
    elif not matched.all():
        first = int(np.argmax(~matched))
        near = _near_miss(list(ids[~matched]), known)
        raise InputDataError(
            f"{int((~matched).sum())} of {len(ids)} sample {s_word}s match no sample_id of the "
            f"sample sheet (first: {s_word} {pos(s_axis, first)}{f'; {near}' if near else ''})",
            file=file,
            hint="add those samples to the sample sheet, fix sample_id.regex/map, or remove "
                 "them from the table")
    listed = pd.Index(np.where(matched, ids.astype(object), None))
    if listed[matched].duplicated().any():
        dup = listed[matched][listed[matched].duplicated()][0]
        j, i = np.nonzero(listed == dup)[0][:2]
        raise InputDataError(
            f"sample {s_word}s {pos(s_axis, j)} and {pos(s_axis, i)} map to the same sample_id"
            f"{_tcga_types(str(sample_labels[j]), str(sample_labels[i]))}",
            file=file, hint="keep one aliquot per sample, or list the one to use in a "
                            "sample_id.map file")
    # one copy of the matrix, in sheet order (a 200,000 x 500 table is 800 MB per copy)
    where = {sid: k for k, sid in zip(np.flatnonzero(matched), ids[matched], strict=True)}
    take = [where[s] for s in sample_ids if s in where]
    if layout == "features_x_samples":
        out = pd.DataFrame(df.to_numpy().T[take], index=pd.Index([ids[k] for k in take]),
                           columns=df.index)
    else:
        out = pd.DataFrame(df.to_numpy()[take], index=pd.Index([ids[k] for k in take]),
                           columns=df.columns)
    # where each kept sample stands in the file, for errors about whole samples
    out.attrs[SAMPLE_PLACES] = (s_word, [pos(s_axis, k) for k in take])
    return out


#: DataFrame.attrs key of :func:`orient_and_map`'s result: (what a sample is in the file,
#: each sample's place): ('column', [2, 3, ...]), or ('row', ...) for a long table's rows
#: where each sample first appears
SAMPLE_PLACES = "sample_places"
#: fewer measured (or non-zero) values than this and a constant or repeated profile can be
#: chance (a sparse count profile, a small panel), so it is not called a defect
MIN_PROFILE = 20


def check_samples(x: pd.DataFrame, kind: str, file: str | os.PathLike[str]) -> None:
    """Refuse whole-sample defects that no value check sees: a sample whose measured values
    are all one number (a placeholder an export wrote: a counts sample of only 0, an
    intensity sample filled with the detection limit), and two samples with the same values
    in every feature (a column copied in the export, or one sample listed under two IDs: a
    duplicated patient that would sit in a training and a test fold at once).

    ``x``: :func:`orient_and_map`'s samples x features table.  Only profiles of at least
    ``MIN_PROFILE`` measured and non-zero values count.  Binary tables are not checked (a
    tumour with no mutation in the panel is real, and so are two alike).  For ``continuous``
    data a constant sample can be real (a diploid tumour's copy-number calls are all 0) and
    so can two samples alike if the values are discrete calls, so only a repeated profile
    holding fractions is reported there, as a warning.
    """
    if kind == "binary" or x.shape[1] < MIN_PROFILE:
        return
    v = x.to_numpy()
    word, places = x.attrs.get(SAMPLE_PLACES, ("number", list(range(1, len(x) + 1))))
    seen: dict[bytes, int] = {}
    for i, row in enumerate(v):   # one sample's values are contiguous (samples x features)
        measured = row[~np.isnan(row)]
        if len(measured) < MIN_PROFILE:
            continue
        if kind != "continuous" and measured.min() == measured.max():
            raise InputDataError(
                f"sample {word} {places[i]} has one and the same value in all {len(measured):,} of "
                "its measured features", file=file,
                hint="that is a placeholder an export wrote, not a measurement: fix the "
                     "export, or leave the sample out of this table (it then counts as not "
                     "measured)")
        if np.count_nonzero(measured) < MIN_PROFILE or \
                (kind == "continuous" and np.array_equal(measured, np.round(measured))):
            continue
        # NaN written as one bit pattern, so equal profiles have equal bytes
        key = hashlib.blake2b(np.where(np.isnan(row), np.nan, row).tobytes(),
                              digest_size=16).digest()
        j = seen.setdefault(key, i)
        if j == i or not np.array_equal(v[j], row, equal_nan=True):
            continue
        what = f"sample {word}s {places[j]} and {places[i]} hold the same values in all " \
               f"{len(measured):,} of their measured features"
        hint = "two patients cannot have identical profiles: a column copied in the " \
               "export, or one sample listed under two IDs; fix the export or remove the " \
               "wrong sample from this table"
        if kind == "continuous":
            warn_user(f"{Path(file).name}: {what}. If the values are not discrete calls, "
                      f"{hint}")
            return
        raise InputDataError(what, file=file, hint=hint)


# kind -> (which finite values are impossible, what to call them, what to do)
RANGE_RULES: dict[str, tuple[Any, str, str]] = {
    "counts": (lambda v: v < 0, "negative count",
               "counts must be >= 0; if the data are already log-transformed or centred use "
               "kind: continuous"),
    "beta": (lambda v: (v < 0) | (v > 1), "beta value outside [0, 1]",
             "beta values are methylated fractions; M-values or other scales go in as "
             "kind: continuous"),
    "binary": (lambda v: (v != 0) & (v != 1), "value other than 0/1",
               "binary tables hold 0 (absent) or 1 (present); counts of mutations go in as "
               "kind: counts"),
    "intensity": (lambda v: v < 0, "negative intensity",
                  "intensities must be >= 0; if already log-scaled use kind: continuous"),
}


def looks_logged(v: np.ndarray, kind: str) -> str | None:
    """Why the finite values ``v`` of a ``counts`` or ``intensity`` table look log-scaled, or
    None.  Both kinds are logged by the normaliser, so a table exported after its log (log2
    CPM, log2 LFQ intensities; a common export) would be logged twice, compressing it without
    an error.  Counts, raw or normalised (RSEM, TPM), reach far above 50 or are whole
    numbers; log2 counts stay below about 25 and are fractions.  Intensities span orders of
    magnitude (or, as ratios, both sides of 1); log2 intensities sit between about 10 and 40,
    a range of less than 10-fold."""
    if kind == "counts" and v.size:
        pos = v[v > 0]
        if len(pos) and v.max() < 50 and np.mean(pos != np.round(pos)) > 0.5:
            return "every value is below 50 and most are not whole numbers"
    if kind == "intensity" and v.size:
        pos = v[v > 0]
        if len(pos) and pos.min() >= 1 and v.max() < 50 and v.max() / pos.min() < 10 and \
                np.mean(pos != np.round(pos)) > 0.5:
            return "every value lies between 1 and 50, within a 10-fold range"
    return None


def looks_unlogged(v: np.ndarray) -> bool:
    """Whether finite values ``v`` declared ``continuous`` look like raw (unlogged) intensities
    or counts: none negative, some above 100, and the positive ones spanning more than three
    orders of magnitude between their 1st and 99th percentiles.  Log-scale data (log2
    expression up to ~20, centred log RPPA, copy-number calls) meet none or only some of
    these."""
    if not v.size or v.min() < 0 or v.max() <= 100:
        return False
    lo, hi = np.quantile(v[v > 0], [0.01, 0.99])
    return bool(hi > 1000 * lo)


def check_values(x: pd.DataFrame, kind: str, file: str | os.PathLike[str],
                 samples_in_rows: bool = False) -> None:
    """Kind-specific value checks on the table as laid out in the file (floats, NaN = missing).

    The first offending cell is named by its file row and column (header = row 1), as for
    non-numeric cells.  Samples with no value at all are skipped (they count as not measured).
    """
    v = x.to_numpy()
    finite = ~np.isnan(v)
    if not finite.any():
        raise InputDataError("every value is missing", file=file,
                             hint="check the export; the table holds no numbers")

    def where(mask: np.ndarray) -> str:
        r, c = np.argwhere(mask)[0]
        return cell_name(x, int(r), int(c), samples_in_rows)

    rule = RANGE_RULES.get(kind)
    if rule is not None:
        outside, what, hint = rule
        with np.errstate(invalid="ignore"):   # NaN compares False, or is masked by finite
            bad = outside(v) & finite
        if bad.any():
            raise InputDataError(f"{what} at {where(bad)}", file=file, hint=hint)
    # the scale checks look at up to a million cells (every k-th) and the exact extremes,
    # not at a copy of every finite cell (1.8 GB for a 450,000 x 500 methylation table)
    step = max(1, v.size // 1_000_000)
    some = v.ravel()[::step]
    some = np.concatenate([some[~np.isnan(some)], [np.nanmin(v), np.nanmax(v)]])
    if kind == "continuous" and looks_unlogged(some):
        warn_user(f"{Path(file).name}: the values are all >= 0 and span more than three orders "
                  "of magnitude, as raw intensities or counts do; kind continuous uses them "
                  "as they are (no log). If they are, use kind: intensity or counts")
    logged = looks_logged(some, kind)
    if logged:
        raise InputDataError(f"the values look log-transformed already ({logged}), but kind "
                             f"{kind} takes them unlogged and would log them again", file=file,
                             hint="give log-scale data as kind: continuous, or supply the "
                                  f"values before the log (kind: {kind})")
    if kind == "counts":
        measured = finite.any(axis=1, keepdims=True) if samples_in_rows else \
            finite.any(axis=0, keepdims=True)
        missing = ~finite & measured
        if missing.any():
            raise InputDataError(f"missing count at {where(missing)}", file=file,
                                 hint="count tables must be complete (0 for not detected); "
                                      "fill with 0 or use kind: continuous")


def ingest_omic(path: str | os.PathLike[str], *, kind: str, sample_ids: Sequence[str],
                layout: str = "features_x_samples", fmt: str = "auto",
                regex: str | None = None, map_file: str | os.PathLike[str] | None = None,
                name: str = "omic", ignore_unlisted: bool = False,
                columns: Columns | None = None, long: Long | None = None) -> Any:
    """Read, validate and orient one omic table; return an AnnData of raw values.  ``columns``:
    the omic's ``label_column`` / ``columns`` options (which columns are read); ``long``:
    its ``long`` option (a long table's sample, feature and value columns)."""
    import anndata as ad

    if kind not in KINDS:
        raise InputDataError(f"unknown kind '{kind}'", file=path,
                             hint=f"use one of {', '.join(KINDS)}")
    mapping = read_sample_map(map_file) if map_file else None
    checked = None
    if long is not None:
        layout = "features_x_samples"
        numeric, checked = read_long(path, long, fmt)
    elif fmt in ("auto", "tsv") and is_adat(path):
        if kind not in ("intensity", "continuous"):
            raise InputDataError(f"is a SomaLogic ADAT (RFU values) but kind is {kind}",
                                 file=path, hint="set kind: intensity for this omic")
        if columns is not None and columns.data is not None:
            raise InputDataError("is a SomaLogic ADAT, whose analytes are chosen by their "
                                 "annotation: columns does not apply", file=path,
                                 hint="remove columns from this omic (label_column names the "
                                      "ADAT's sample field, SampleId by default)")
        layout = "samples_x_features"
        numeric = read_adat(path, columns.label if columns is not None else None)
    elif fmt in ("auto", "tsv") and is_maf(path):
        if kind != "binary":
            raise InputDataError(f"is a MAF (one row per variant) but kind is {kind}",
                                 file=path, hint="set kind: binary: the MAF becomes a gene x "
                                                 "sample table of protein-changing mutations")
        layout = "features_x_samples"
        numeric = read_maf(path)
    else:
        numeric = read_numeric_table(path, fmt, samples_in_rows=layout == "samples_x_features",
                                     columns=columns)
    x = orient_and_map(numeric, layout=layout, file=path, sample_ids=sample_ids, regex=regex,
                       mapping=mapping, ignore_unlisted=ignore_unlisted)
    if checked is None:
        check_values(numeric, kind, path, samples_in_rows=layout == "samples_x_features")
    else:   # a long table: its values where they stand in the file
        check_values(checked, kind, path)
        absent = int(np.isnan(x.to_numpy()).sum())
        if kind == "counts" and absent:
            raise InputDataError(f"{absent} pair(s) of a sample and a feature have no row",
                                 file=path, hint="count tables must be complete (a row with 0 "
                                                 "for not detected); or use kind: continuous")
    check_samples(x, kind, path)
    del numeric   # x holds the sheet's samples; the file's matrix is not needed any more
    n_in_file = x.shape[1]
    counters = [c for c in x.columns if str(c) in COUNTER_ROWS]
    if kind == "counts" and counters:
        warn_user(f"{name}: {len(counters)} feature(s) of {Path(path).name} are a read counter's "
                  f"tallies, not genes ({', '.join(map(str, counters))}: HTSeq-count / STAR); "
                  "they are left out")
        x = x.drop(columns=counters)
    mangled = spreadsheet_mangled(list(x.columns))
    if mangled:
        warn_user(f"{name}: {len(mangled)} feature name(s) of {Path(path).name} look like dates "
                  f"or numbers a spreadsheet made of gene or probe names (first: "
                  f"'{x.columns[mangled[0]]}'; SEPT2 becomes 2-Sep, MARCH1 1-Mar); they are kept "
                  "as written: export the table again without opening it in a spreadsheet to "
                  "get the real names")
    empty = x.isna().all(axis=1)
    if empty.any():
        log.info("%s: %d sample(s) have no measured value and are treated as not measured",
                 name, int(empty.sum()))
        x = x.loc[~empty]
    adata = ad.AnnData(X=x.to_numpy(dtype=np.float64))
    adata.obs_names = pd.Index(x.index.astype(str).tolist())  # plain names, no index name
    adata.var_names = pd.Index(x.columns.astype(str).tolist())
    adata.obs["n_measured"] = np.sum(~np.isnan(adata.X), axis=1).astype(np.int64)
    adata.var["n_measured"] = np.sum(~np.isnan(adata.X), axis=0).astype(np.int64)
    adata.uns["omix"] = {"omic": name, "kind": kind, "source": str(Path(path)),
                         "n_features_in_file": int(n_in_file)}
    log.info("%s: %d samples x %d features ingested (%s, %s)", name, adata.n_obs, adata.n_vars,
             kind, layout)
    return adata
