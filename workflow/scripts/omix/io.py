"""Reading, validating and writing tables, sample sheets and AnnData/MuData files.

Everything a user hands the workflow passes through here first; every rejection is an
:class:`~omix.errors.OmixError` naming the file, the row or column and what to do.  Sample IDs
and data values never appear in messages or logs: rows and columns are named by position (and
features by name, which are not patient data).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import logging
import os
import re
import tempfile
import zlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import ConfigError, InputDataError

log = logging.getLogger("omix.io")

LAYOUTS = ("features_x_samples", "samples_x_features")
FORMATS = ("auto", "csv", "tsv", "parquet")


# --------------------------------------------------------------------------------------------
# atomic output
# --------------------------------------------------------------------------------------------
@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success.

    A failed or killed writer leaves no file at ``path`` that a rerun could trust.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    for stale in final.parent.glob(f".{final.name}.*.part*"):  # left by a killed earlier run
        stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".part" + "".join(final.suffixes),
                               dir=final.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; results should be readable as usual
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, final)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_tsv(df: pd.DataFrame, path: str | os.PathLike[str], *, index: bool = False,
              float_format: str | None = "%.6g") -> None:
    """Write a TSV atomically, with a fixed float format so reruns are byte-identical."""
    with atomic_path(path) as tmp:
        df.to_csv(tmp, sep="\t", index=index, float_format=float_format, lineterminator="\n")


def sha256(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------------------------
# reading tables
# --------------------------------------------------------------------------------------------
def detect_format(path: Path, fmt: str = "auto") -> str:
    """Return ``csv``, ``tsv`` or ``parquet`` for ``path`` (suffix first, then content)."""
    if fmt != "auto":
        return fmt
    name = path.name.lower()
    for suffix in (".gz", ".bz2", ".xz", ".zst"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    if name.endswith(".parquet") or name.endswith(".pq"):
        return "parquet"
    if name.endswith(".tsv") or name.endswith(".tab") or name.endswith(".txt"):
        return "tsv"
    if name.endswith(".csv"):
        return "csv"
    raise InputDataError(
        "unknown table format", file=path,
        hint="use a .csv, .tsv or .parquet file (optionally .gz), or set format: csv|tsv|parquet "
             "for this omic in the config")


def _check_readable(path: Path, fmt: str) -> None:
    if not path.exists():
        raise InputDataError("file does not exist", file=path,
                             hint="check the path in the config (relative paths resolve "
                                  "against the working directory)")
    if path.stat().st_size == 0:
        raise InputDataError("file is empty", file=path,
                             hint="export the table again; it needs a header row and data rows")
    with open(path, "rb") as fh:
        head = fh.read(4)
    if head[:2] == b"\x1f\x8b":
        try:
            with gzip.open(path, "rb") as fh:
                while fh.read(1 << 20):
                    pass
        except (EOFError, OSError, zlib.error) as exc:
            raise InputDataError(f"gzip stream is truncated or corrupt ({type(exc).__name__})",
                                 file=path, hint="copy or compress the file again") from None
    if fmt == "parquet" and head != b"PAR1":
        raise InputDataError("not a parquet file (no PAR1 magic bytes)", file=path,
                             hint="write it with pandas.DataFrame.to_parquet or use CSV/TSV")
    if fmt in ("csv", "tsv") and head == b"PAR1":
        raise InputDataError(f"file is parquet but is read as {fmt}", file=path,
                             hint="name it .parquet or set format: parquet")


def read_table(path: str | os.PathLike[str], fmt: str = "auto") -> pd.DataFrame:
    """Read a table whose first column holds row labels; all other cells stay strings.

    Cells are parsed to numbers later by :func:`to_numeric_frame`, so a bad cell can be reported
    by row and column rather than silently becoming NaN.
    """
    p = Path(path)
    fmt = detect_format(p, fmt)
    _check_readable(p, fmt)
    try:
        if fmt == "parquet":
            df = pd.read_parquet(p)
            if not isinstance(df.index, pd.RangeIndex) or df.index.name is not None:
                df = df.reset_index()
            df = df.astype(object)
        else:
            sep = "," if fmt == "csv" else "\t"
            df = pd.read_csv(p, sep=sep, dtype=str, keep_default_na=False, na_filter=False,
                             compression="infer")
            # pandas renames repeated headers (x, x.1): take the header as written instead
            header = pd.read_csv(p, sep=sep, dtype=str, header=None, nrows=1,
                                 keep_default_na=False, compression="infer").iloc[0]
            if len(header) == df.shape[1]:
                df.columns = pd.Index(header.astype(str).tolist())
    except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputDataError(f"cannot be parsed as {fmt}: {first}", file=p,
                             hint="check the delimiter and quoting, or set format: in the config"
                             ) from None
    if df.shape[1] < 2:
        raise InputDataError(
            f"has {df.shape[1]} column(s) after parsing as {fmt}", file=p,
            hint="the table needs a first column of row labels and at least one data column; "
                 "check the delimiter (format:)")
    if df.shape[0] == 0:
        raise InputDataError("has a header but no data rows", file=p,
                             hint="export the table again with its data")
    labels = df.iloc[:, 0].astype(str).str.strip()
    df = df.iloc[:, 1:]
    df.index = pd.Index(labels, name=None)
    df.columns = pd.Index([str(c).strip() for c in df.columns])
    return df


_NA_STRINGS = frozenset({"", "na", "nan", "null", "none", "#n/a", "n/a", "-"})


def cell_name(df: pd.DataFrame, r: int, c: int, samples_in_rows: bool) -> str:
    """'row R, column C (feature 'X')': file position plus the feature, never the sample ID."""
    feature = df.columns[c] if samples_in_rows else df.index[r]
    return f"row {r + 2}, column {c + 2} (feature '{_short(feature)}')"


def to_numeric_frame(df: pd.DataFrame, file: str | os.PathLike[str],
                     samples_in_rows: bool = False) -> pd.DataFrame:
    """Parse every cell to float; NA markers become NaN; anything else non-numeric is an error.

    The error names the first bad cell by its 1-based file row and column (header = row 1) and
    its feature; neither the cell's value nor the sample's ID is printed.
    """
    if all(pd.api.types.is_numeric_dtype(t) for t in df.dtypes):
        out = df.astype(float)
    else:
        raw = df.astype(str)
        lowered = raw.apply(lambda s: s.str.strip().str.lower())
        is_na = lowered.isin(_NA_STRINGS) | df.isna()
        out = raw.apply(lambda s: pd.to_numeric(s.str.strip(), errors="coerce"))
        bad = out.isna() & ~is_na
        if bad.to_numpy().any():
            r, c = np.argwhere(bad.to_numpy())[0]
            n_bad = int(bad.to_numpy().sum())
            raise InputDataError(
                f"non-numeric cell at {cell_name(df, r, c, samples_in_rows)}; "
                f"{n_bad} such cell(s) in all",
                file=file, hint="fix or blank those cells (empty, NA and NaN mean missing)")
        out = out.astype(float)
    values = out.to_numpy()
    if np.isinf(values).any():
        r, c = np.argwhere(np.isinf(values))[0]
        raise InputDataError(
            f"infinite value at {cell_name(df, r, c, samples_in_rows)}",
            file=file, hint="replace inf/-inf by a finite value or leave the cell empty (missing)")
    return out


def _short(x: object, n: int = 40) -> str:
    s = str(x)
    return s if len(s) <= n else s[: n - 3] + "..."


# --------------------------------------------------------------------------------------------
# sample IDs
# --------------------------------------------------------------------------------------------
def read_sample_map(path: str | os.PathLike[str]) -> dict[str, str]:
    """Read a name -> sample_id mapping file (CSV/TSV with columns ``name`` and ``sample_id``).

    A MultiAssayExperiment ``sampleMap`` (columns ``colname`` and ``primary``) is accepted too.
    """
    df = read_table(path)
    df = df.reset_index(drop=False)
    cols = {c.lower(): c for c in df.columns}
    for src, dst in (("name", "sample_id"), ("colname", "primary")):
        if src in cols and dst in cols:
            names = df[cols[src]].astype(str).str.strip()
            ids = df[cols[dst]].astype(str).str.strip()
            dup = names.duplicated()
            if dup.any():
                raise ConfigError(f"name at row {int(np.argmax(dup.to_numpy())) + 2} appears "
                                  "twice", file=path, hint="each name may map to one sample_id")
            return dict(zip(names, ids, strict=True))
    raise ConfigError("needs columns 'name' and 'sample_id' (or 'colname' and 'primary')",
                      file=path, hint="add a header row with those column names")


def map_sample_ids(names: Sequence[str], *, regex: str | None = None,
                   mapping: Mapping[str, str] | None = None) -> list[str | None]:
    """Map table labels to sample IDs: the mapping file first, then the regex's first group.

    Labels neither maps keep their own name.  Returns one ID per label.
    """
    pattern = re.compile(regex) if regex else None
    out: list[str | None] = []
    for name in names:
        if mapping is not None and name in mapping:
            out.append(mapping[name])
            continue
        if pattern is not None:
            m = pattern.search(name)
            if m is None:
                out.append(name)
                continue
            out.append(m.group(1) if m.groups() else m.group(0))
            continue
        out.append(name)
    return out


# --------------------------------------------------------------------------------------------
# sample sheet
# --------------------------------------------------------------------------------------------
def read_sample_sheet(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read the sample sheet (TSV or CSV): ``sample_id`` plus any clinical columns.

    Returns a frame indexed by ``sample_id`` with numeric-looking columns converted to numbers.
    """
    p = Path(path)
    fmt = detect_format(p)
    _check_readable(p, fmt)
    sep = "," if fmt == "csv" else "\t"
    try:
        if fmt == "parquet":
            df = pd.read_parquet(p)
        else:
            df = pd.read_csv(p, sep=sep, dtype=str, keep_default_na=False, na_filter=False)
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise ConfigError(f"cannot be parsed: {str(exc).splitlines()[0]}", file=p,
                          hint="the sample sheet is a tab-separated table with a header row"
                          ) from None
    if "sample_id" not in df.columns:
        raise ConfigError("has no 'sample_id' column", file=p,
                          hint="name the column that holds sample IDs 'sample_id'")
    if len(df) == 0:
        raise ConfigError("has a header but no samples", file=p, hint="add one row per sample")
    ids = df["sample_id"].astype(str).str.strip()
    if (ids == "").any():
        row = int(np.argmax((ids == "").to_numpy())) + 2
        raise ConfigError(f"empty sample_id at row {row}", file=p,
                          hint="every row needs a sample_id")
    dup = ids.duplicated(keep="first")
    if dup.any():
        row = int(np.argmax(dup.to_numpy())) + 2
        first = int(np.argmax((ids == ids[dup].iloc[0]).to_numpy())) + 2
        raise ConfigError(f"sample_id at row {row} repeats the one at row {first}", file=p,
                          hint="sample IDs must be unique; merge or rename the duplicated rows")
    df = df.drop(columns="sample_id")
    df.index = pd.Index(ids, name="sample_id")
    for col in df.columns:
        s = df[col]
        if s.dtype == object:
            stripped = s.astype(str).str.strip()
            missing = stripped.str.lower().isin(_NA_STRINGS)
            num = pd.to_numeric(stripped.where(~missing), errors="coerce")
            if (num.notna() | missing).all() and num.notna().any():
                df[col] = num.astype(float)
            else:
                df[col] = stripped.where(~missing, other=None).astype(object)
    return df


# --------------------------------------------------------------------------------------------
# AnnData helpers
# --------------------------------------------------------------------------------------------
def write_h5ad(adata: Any, path: str | os.PathLike[str]) -> None:
    with atomic_path(path) as tmp:
        adata.write_h5ad(tmp)


def write_h5mu(mdata: Any, path: str | os.PathLike[str]) -> None:
    with atomic_path(path) as tmp:
        mdata.write(tmp)


def read_h5ad(path: str | os.PathLike[str]) -> Any:
    import anndata as ad

    return ad.read_h5ad(path)


def read_h5mu(path: str | os.PathLike[str]) -> Any:
    import mudata as md

    return md.read_h5mu(path)
