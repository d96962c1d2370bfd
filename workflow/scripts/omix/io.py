"""Reading, validating and writing tables, sample sheets and AnnData/MuData files.

Everything a user hands the workflow passes through here first; every rejection is an
:class:`~omix.errors.OmixError` naming the file, the row or column and what to do.  Sample IDs
and data values never appear in messages or logs: rows and columns are named by position (and
features by name, which are not patient data).
"""

from __future__ import annotations

import bz2
import contextlib
import csv
import functools
import gzip
import hashlib
import logging
import lzma
import os
import re
import tempfile
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import ConfigError, InputDataError, OmixError, Ticker

log = logging.getLogger("omix.io")

LAYOUTS = ("features_x_samples", "samples_x_features")


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


# columns of the workflow's own tables that hold identifiers: always read as text (an ID
# '007' or a gene '1' is not a number)
ID_COLUMNS = ("sample_id", "feature", "variable", "omic", "cluster", "predicted", "observed",
              "class", "factor", "model", "name")


def read_tsv(path: str | os.PathLike[str]) -> pd.DataFrame:
    """A table the workflow wrote (:func:`write_tsv`), read the one way every step reads it:
    tab-separated, identifier columns (:data:`ID_COLUMNS`) as text."""
    head = pd.read_csv(path, sep="\t", nrows=0).columns
    return pd.read_csv(path, sep="\t", dtype={c: str for c in head if c in ID_COLUMNS})


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


# compression is recognised by its magic bytes, never by the file name alone
_MAGIC = ((b"\x1f\x8b", "gzip"), (b"BZh", "bz2"), (b"\xfd7zXZ\x00", "xz"),
          (b"\x28\xb5\x2f\xfd", "zstd"), (b"PK\x03\x04", "zip"))
_SUFFIX_COMPRESSION = {".gz": "gzip", ".bz2": "bz2", ".xz": "xz", ".zst": "zstd", ".zip": "zip"}
_SEP_NAME = {",": "comma", "\t": "tab", ";": "semicolon"}


def _compression(path: Path, head: bytes, err: type[OmixError]) -> str | None:
    """The file's compression from its first bytes; the name must not say otherwise."""
    by_magic = next((c for m, c in _MAGIC if head.startswith(m)), None)
    by_name = _SUFFIX_COMPRESSION.get(path.suffix.lower())
    if by_name is not None and by_magic != by_name:
        raise err(f"is named {path.suffix} but its content is "
                  f"{'not compressed' if by_magic is None else by_magic + '-compressed'}",
                  file=path, hint=f"rename it to match its content or compress it with {by_name}")
    if by_magic == "zip" and by_name != "zip":
        raise err("is a ZIP archive (an Excel .xlsx workbook?), not a text table", file=path,
                  hint="export the sheet as CSV or TSV (UTF-8)")
    if by_magic == "zstd":
        raise err("is zstd-compressed, which this workflow does not read", file=path,
                  hint="decompress it or compress it with gzip (.gz)")
    if by_magic is not None and by_name is None:
        log.info("%s: %s-compressed although the name does not say so; read as such",
                 path.name, by_magic)
    return by_magic


def _open_text(path: Path, compression: str | None, encoding: str) -> Any:
    opener: Any = {None: open, "gzip": gzip.open, "bz2": bz2.open, "xz": lzma.open}.get(
        compression)
    if opener is None:  # zip: a single member, as pandas reads it
        import io as _io
        import zipfile

        zf = zipfile.ZipFile(path)
        names = zf.namelist()
        if len(names) != 1:
            raise InputDataError(f"ZIP archive holds {len(names)} files", file=path,
                                 hint="put exactly one table in the archive, or use .gz")
        return _io.TextIOWrapper(zf.open(names[0]), encoding=encoding, newline="")
    return opener(path, "rt", encoding=encoding, newline="")


def _raw_head(path: Path, compression: str | None, n: int = 1 << 16) -> bytes:
    opener: Any = {None: open, "gzip": gzip.open, "bz2": bz2.open, "xz": lzma.open}.get(
        compression)
    if opener is None:
        import zipfile

        with zipfile.ZipFile(path) as zf:
            return zf.open(zf.namelist()[0]).read(n)
    with opener(path, "rb") as fh:
        return bytes(fh.read(n))


def _encoding(path: Path, head: bytes, err: type[OmixError]) -> str:
    """UTF-8 (with or without a byte-order mark) or UTF-16 with one; anything else is refused
    with the cause, since a wrongly decoded name silently fails to match."""
    if head.startswith(b"\xef\xbb\xbf"):
        return "utf-8-sig"
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"
    if b"\x00" in head:
        raise err("holds NUL bytes: UTF-16 text without a byte-order mark, or not a text "
                  "table at all", file=path, hint="save it as UTF-8 CSV or TSV")
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a character cut at the end of the sample
            raise err(_not_utf8(head, exc.start), file=path,
                      hint="save it as UTF-8 (e.g. Excel: CSV UTF-8; iconv -f latin1 -t utf-8)"
                      ) from None
    return "utf-8"


def _not_utf8(data: bytes, pos: int) -> str:
    line = data[:pos].count(b"\n") + 1
    return (f"is not UTF-8 text: byte 0x{data[pos]:02x} on line {line} cannot be decoded "
            "(a Latin-1 or Windows-1252 export?)")


def _check_delimiter(path: Path, first_line: str, sep: str, fmt: str,
                     err: type[OmixError]) -> None:
    """The header line must contain the expected delimiter; if it holds another one instead,
    say which, so the user fixes the cause (and not a symptom three steps later)."""
    counts = {d: first_line.count(d) for d in _SEP_NAME}
    if counts[sep] > 0:
        return
    other = max(counts, key=lambda d: counts[d])
    if counts[other] == 0:
        return  # a single column: reported below with the column count
    if other == ";":
        raise err(f"is read as {fmt} but its header line is separated by semicolons (a "
                  "European-locale export, often with decimal commas)", file=path,
                  hint="re-export it with comma or tab separators and '.' as the decimal mark, "
                       "or, if its numbers already use '.' (as Olink's NPX files do), set "
                       "format: csv_semicolon for it in the config")
    want = {"\t": "tsv", ",": "csv"}[other]
    raise err(f"is read as {fmt} ({_SEP_NAME[sep]}-separated) but its header line is "
              f"{_SEP_NAME[other]}-separated", file=path,
              hint=f"name it .{want} or set format: {want} for this table in the config")


def _field_counts(path: Path, compression: str | None, encoding: str, sep: str,
                  err: type[OmixError], skip: int = 0, stop: str | None = None
                  ) -> tuple[int, list[int], list[str]]:
    """Check that every row has as many fields as the header, with the csv module (quotes
    respected); returns that number.  Anything that does not line up stops with the line and
    the cause: pandas would otherwise make the first column the index and shift every value by
    one column, silently.  Data rows that all carry one more, always empty, field are refused
    too: a stray trailing delimiter and a header lacking its first cell (over an all-missing
    last column) look the same, and guessing wrong shifts every value.  Also returns the file
    line of each non-blank row (the header's first), for errors that name a row, and the
    header's cells.  The first ``skip`` lines are not read (a featureCounts program line, a
    GEO series matrix's metadata); a row whose first cell is ``stop`` ends the table (a GEO
    series matrix's end line; without it the table is refused as cut short)."""
    n_header, first_bad, extra_rows, extra_nonempty, data_rows = -1, None, 0, False, 0
    header_start, header_line = "", 0
    lines: list[int] = []
    header: list[str] = []
    stopped = False
    fh = _open_text(path, compression, encoding)
    try:
        reader = csv.reader(fh, delimiter=sep, quotechar='"', doublequote=True, strict=False)
        for row in reader:
            if not row or reader.line_num <= skip:
                continue  # blank line, or a line above the header
            if stop is not None and row[0].strip() == stop:
                stopped = True
                break
            n = len(row)
            lines.append(reader.line_num)
            if n_header < 0:
                n_header, header_start, header_line = n, row[0].strip(), reader.line_num
                header = [c.strip() for c in row]
                continue
            data_rows += 1
            if n == n_header + 1:
                extra_rows += 1
                extra_nonempty = extra_nonempty or bool(row[-1].strip())
            if n != n_header and first_bad is None:
                first_bad = (reader.line_num, n)
    except UnicodeDecodeError as exc:
        raise err(f"is not {encoding.upper()} text: a byte after the first part of the file "
                  f"cannot be decoded (at byte {exc.start} of a read block; a Latin-1 or "
                  "Windows-1252 export?)", file=path, hint="save it as UTF-8") from None
    except csv.Error as exc:
        raise err(f"cannot be parsed as delimited text ({exc})", file=path,
                  hint="check quoting: a quote character opens a cell that never closes"
                  ) from None
    finally:
        fh.close()
    if stop is not None and not stopped:
        raise err(f"has no '{stop}' line after its table: the file is cut short", file=path,
                  hint="download or copy it again")
    if first_bad is None:
        return n_header, lines, header
    if extra_rows == data_rows:
        if not extra_nonempty:
            # a stray delimiter at the end of each data row, or a header without its first
            # cell over a last column with no value at all: the file cannot tell which
            raise err(f"the header has {n_header} fields but every data row has "
                      f"{n_header + 1}, the last one always empty: either each data row ends "
                      "with a delimiter or the header lacks the cell above the row labels",
                      file=path, hint="remove the delimiter at the end of the data rows, or "
                                      "add a label such as 'feature' at the start of the header")
        raise err(f"the header has {n_header} fields but every data row has {n_header + 1}: "
                  "the header lacks the cell above the row labels (as R's write.table writes "
                  "it)", file=path, hint="add a label such as 'feature' at the start of the "
                                         "header line")
    line, n = first_bad
    # lines some tools write above the header: say so rather than count fields
    if header_start.lower().startswith("sep=") and n_header <= 2:
        raise err(f"line {header_line} is a spreadsheet's 'sep=' line, not the header line",
                  file=path, hint="delete that line so the file starts with its header line")
    if header_start.startswith("#") and line == header_line + 1:
        raise err(f"line {header_line} starts with '#' and has {n_header} field(s) but line "
                  f"{line} has {n}: a comment or format line (such as a GCT file's '#1.2') "
                  "above the header", file=path,
                  hint="delete the lines above the header line (in a GCT file also the "
                       "Description column)")
    raise err(f"line {line} has {n} fields but the header has {n_header}", file=path,
              hint=f"a cell holding the delimiter ({_SEP_NAME[sep]}) must be quoted; fix or "
                   "remove the cells too many or too few on that line")


def _require_file(path: Path, err: type[OmixError]) -> None:
    """The path is a non-empty file, or one error saying what it is instead."""
    if not path.exists():
        raise err("file does not exist", file=path,
                  hint="check the path in the config (relative paths resolve against the "
                       "working directory)")
    if path.is_dir():
        raise err("is a directory, not a table", file=path, hint="name the table file itself")
    if path.stat().st_size == 0:
        raise err("file is empty", file=path,
                  hint="export the table again; it needs a header row and data rows")


def _read_delimited(path: Path, fmt: str, err: type[OmixError]) -> pd.DataFrame:
    """Header and cells exactly as written (strings), or one error naming the cause."""
    lines, chunks, _, plan = _delimited_chunks(path, fmt, err)
    df = next(chunks)
    header = [str(c).strip() for c in df.iloc[0]]
    header = header[:1] + plan.relabel(header[1:])
    df = df.iloc[1:].reset_index(drop=True)
    if len(header) > 1 and header[-1] == "" and (df.iloc[:, -1].str.strip() == "").all():
        # every line, the header included, ends with a delimiter: an empty last column
        df, header = df.iloc[:, :-1], header[:-1]
    unnamed = [j for j, h in enumerate(header) if h == "" and j > 0]
    if unnamed:
        raise _empty_header(err, path, unnamed[0] + 1)
    df.columns = pd.Index(header)
    if len(lines) == len(df) + 1:   # pandas skips the same blank lines as the csv module
        df.attrs[FILE_ROWS] = np.asarray(lines[1:])
    return df


def _corrupt(err: type[OmixError], path: Path, compression: str | None,
             exc: BaseException) -> OmixError:
    return err(f"{compression} stream is truncated or corrupt ({type(exc).__name__})",
               file=path, hint="copy or compress the file again")


def _unparsable(err: type[OmixError], path: Path, fmt: str, exc: BaseException) -> OmixError:
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return err(f"cannot be parsed as {fmt}: {first}", file=path,
               hint="check the delimiter and quoting, or set format: in the config")


def _delimited_chunks(path: Path, fmt: str, err: type[OmixError], cells: int | None = None,
                      columns: Columns | None = None
                      ) -> tuple[list[int], Iterator[pd.DataFrame], dict[str, Any], _Plan]:
    """The checks of a delimited file (compression, encoding, delimiter, every row's field
    count), then its rows as strings exactly as written: in one frame, or in frames of about
    ``cells`` cells (the header is the first row of the first frame).  Returns the file line
    of each non-blank row (see :func:`_field_counts`), the frames (read when iterated; only
    the columns ``columns`` or the exporter asks for, the row labels' first), the options of
    ``pandas.read_csv`` that read them and the plan of columns and rows (:func:`_plan`)."""
    _require_file(path, err)
    with open(path, "rb") as fh:
        magic = fh.read(8)
    if magic.startswith(b"PAR1"):
        raise err(f"file is parquet but is read as {fmt}", file=path,
                  hint="name it .parquet or set format: parquet")
    compression = _compression(path, magic, err)
    try:
        head = _raw_head(path, compression)
    except (EOFError, OSError, zlib.error, lzma.LZMAError) as exc:
        raise _corrupt(err, path, compression, exc) from None
    encoding = _encoding(path, head, err)
    text = head.decode(encoding, errors="ignore")
    sep = {"csv": ",", "csv_semicolon": ";"}.get(fmt, "\t")
    head_lines = text.lstrip("\ufeff").split("\n", 8)[:8]
    skip = 1 if head_lines[0].startswith(FC_PROGRAM) else _cbioportal_lines(head_lines, sep)
    if skip > 1:
        log.info("%s: cBioPortal's %d metadata lines (names, descriptions, types, priorities) "
                 "above the header are skipped", path.name, skip)
    geo = head_lines[0].startswith(("!Series_", GEO_BEGIN))
    # a comment line above the header ('#' with any punctuation) is reported by the field
    # counts; the delimiter is the header's
    header_line = next((ln for ln in head_lines[skip:] if not ln.startswith("#")),
                       head_lines[skip] if len(head_lines) > skip else "")
    if not geo:   # (a GEO series matrix is tab-separated: its metadata lines are too)
        _check_delimiter(path, header_line.rstrip("\r"), sep, fmt, err)
    try:
        if geo:
            skip = _geo_begin(path, compression, encoding, err)
        n_fields, lines, fields = _field_counts(path, compression, encoding, sep, err, skip,
                                                GEO_END if geo else None)
    except (EOFError, OSError, zlib.error, lzma.LZMAError) as exc:
        raise _corrupt(err, path, compression, exc) from None
    except ValueError as exc:
        raise _unparsable(err, path, fmt, exc) from None
    kw: dict[str, Any] = dict(sep=sep, header=None, dtype=str, keep_default_na=False,
                              na_filter=False, compression=compression, encoding=encoding,
                              names=list(range(n_fields)), quotechar='"', skiprows=skip)
    if geo:
        kw["nrows"] = len(lines)   # the header and the rows above the end line
        log.info("%s: a GEO series matrix: its table (lines %d-%d) is read, its metadata "
                 "lines are not", path.name, lines[0], lines[-1])
    plan = _plan(path, fields, columns, err)
    order = plan.order
    if order is not None:
        kw["usecols"] = order
    flagged = [j for j, f in enumerate(fields) if f in (*MAXQUANT_FLAGS, FRAGPIPE_PROTEIN)]
    if flagged and len(fields) == n_fields:
        flags = pd.read_csv(path, **{**kw, "usecols": flagged}).iloc[1:]
        flags.columns = [fields[j] for j in flagged]
        marked = _flagged_rows(flags)
        if len(marked) != len(lines) - 1:
            raise err("an exporter's table with flagged rows and blank lines between its "
                      "rows", file=path, hint="delete the blank lines")
        plan.drop_lines = np.asarray(lines[1:])[marked]

    def frames() -> Iterator[pd.DataFrame]:
        try:
            if cells is None:
                whole = pd.read_csv(path, **kw)
                yield whole if order is None else whole[order]
                return
            with pd.read_csv(path, chunksize=max(1, cells // n_fields), **kw) as reader:
                for part in reader:
                    yield part if order is None else part[order]
        except (EOFError, OSError, zlib.error, lzma.LZMAError) as exc:
            raise _corrupt(err, path, compression, exc) from None
        except (ValueError, pd.errors.ParserError) as exc:
            raise _unparsable(err, path, fmt, exc) from None

    return lines, frames(), kw, plan


@dataclass(frozen=True)
class Columns:
    """An omic's ``label_column`` and ``columns`` options: the column of row labels (None: the
    first) and a regular expression the data columns' labels must match (searched; its first
    group, if it has one, is the label kept; None: every other column).  The other columns are
    an exporter's annotation and are not read."""
    label: str | None = None
    data: str | None = None
    #: exactly these columns, in this order (a long table's sample, feature and value)
    exact: tuple[str, ...] = ()


@dataclass
class _Plan:
    """What of a table to read: ``order`` the file columns (0-based), the row labels' first
    (None: all, as they stand), ``relabel`` the data columns' labels as kept, ``drop_lines``
    the file lines of rows the exporter flags as not measurements (MaxQuant's '+')."""
    order: list[int] | None = None
    relabel: Callable[[list[str]], list[str]] = list
    drop_lines: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))

    def file_columns(self) -> np.ndarray | None:
        return None if self.order is None else np.asarray(self.order[1:]) + 1

    def label_column(self) -> int:
        """The file column (1-based) of the row labels."""
        return 1 if self.order is None else self.order[0] + 1


def _cbioportal_lines(head_lines: list[str], sep: str) -> int:
    """How many of cBioPortal's '#' metadata lines stand above a clinical file's header (its
    display names, descriptions, datatypes and priorities, as wide as the header), or 0."""
    n = 0
    while n < len(head_lines) - 1 and head_lines[n].startswith("#"):
        n += 1
    if n < 3:
        return 0
    rows = list(csv.reader([ln.rstrip("\r") for ln in head_lines[:n + 1]], delimiter=sep,
                           quotechar='"'))
    types = {c.lstrip("#").strip().upper() for c in rows[2]}
    if types <= {"STRING", "NUMBER", "BOOLEAN"} and all(len(r) == len(rows[n]) for r in rows):
        return n
    return 0


#: a GEO series matrix's table lies between these lines, below the series' metadata
GEO_BEGIN, GEO_END = "!series_matrix_table_begin", "!series_matrix_table_end"


def _geo_begin(path: Path, compression: str | None, encoding: str,
               err: type[OmixError]) -> int:
    """The line number of a GEO series matrix's table begin line."""
    with _open_text(path, compression, encoding) as fh:
        for number, line in enumerate(fh, start=1):
            if line.strip().strip('"') == GEO_BEGIN:
                return number
    raise err(f"starts like a GEO series matrix ('!Series_' lines) but has no '{GEO_BEGIN}' "
              "line", file=path, hint="download the series matrix again")


#: featureCounts (Subread) output: a program line, then these columns before the samples'
FC_PROGRAM = "# Program:featureCounts"
FC_COLUMNS = ["Geneid", "Chr", "Start", "End", "Strand", "Length"]
#: MaxQuant's columns whose '+' marks a row that is not a measured protein (a decoy, a
#: contaminant, a protein identified by a modification site only); Proteome Discoverer writes
#: True in its Contaminant column
MAXQUANT_FLAGS = ("Reverse", "Potential contaminant", "Contaminant", "Only identified by site")
FLAG_MARKS = frozenset({"+", "true"})
#: FragPipe names a contaminant protein (from its database's contaminant entries) 'contam_...'
#: in its Protein column; it has no flag column
FRAGPIPE_PROTEIN, FRAGPIPE_CONTAMINANT = "Protein", "contam_"


def _flagged_rows(flags: pd.DataFrame) -> np.ndarray:
    """Which rows of an exporter's flag columns (as text) mark a row that is not a measured
    protein: '+' (MaxQuant) or True (Proteome Discoverer) in a flag column, a 'contam_'
    protein (FragPipe)."""
    marked = np.zeros(len(flags), dtype=bool)
    for name, col in flags.items():
        text = col.astype(str).str.strip()
        marked |= (text.str.startswith(FRAGPIPE_CONTAMINANT) if name == FRAGPIPE_PROTEIN
                   else text.str.lower().isin(FLAG_MARKS)).to_numpy()
    return marked


def _plan(path: Path, fields: list[str], columns: Columns | None,
          err: type[OmixError]) -> _Plan:
    """The columns to read from a header's labels: those the options name, or for a
    featureCounts table its samples'."""
    if columns is not None and columns.exact:
        missing = [c for c in columns.exact if c not in fields]
        if missing:
            raise _long_missing(path, missing, fields)
        return _Plan([fields.index(c) for c in columns.exact])
    if columns is not None and (columns.label or columns.data):
        label = 0
        if columns.label:
            if columns.label not in fields:
                raise err(f"has no column '{_short(columns.label)}' (label_column)", file=path,
                          hint="name a column of the header line exactly, or leave "
                               "label_column out to take the first column")
            label = fields.index(columns.label)
        data = [j for j in range(len(fields)) if j != label]
        relabel: Callable[[list[str]], list[str]] = list
        if columns.data:
            try:
                pattern = re.compile(columns.data)
            except re.error as exc:
                raise err(f"the columns option is not a regular expression that compiles "
                          f"({exc})", file=path, hint="fix the pattern in the config") from None
            data = [j for j in data if pattern.search(fields[j])]
            if not data:
                raise err(f"no column label matches columns: '{_short(columns.data)}' (of "
                          f"{len(fields)} columns)", file=path,
                          hint="write a regular expression that the data columns' labels "
                               "match (searched, case-sensitive)")
            relabel = functools.partial(_kept_labels, pattern)
        log.info("%s: %d data column(s) read, row labels from column %d; %d other column(s) "
                 "left out (label_column, columns)", path.name, len(data), label + 1,
                 len(fields) - len(data) - 1)
        return _Plan([label, *data], relabel)
    if fields[:len(FC_COLUMNS)] == FC_COLUMNS:
        log.info("%s: a featureCounts table: its program line and annotation columns (%s) are "
                 "left out; sample labels are the BAM file names without directory and "
                 "extension", path.name, ", ".join(FC_COLUMNS[1:]))
        return _Plan([0, *range(len(FC_COLUMNS), len(fields))], bam_sample_names)
    return _Plan()


def _kept_labels(pattern: re.Pattern[str], labels: list[str]) -> list[str]:
    """Each label's part the ``columns`` expression's first group matched (the label itself
    without a group)."""
    found = [pattern.search(s) for s in labels]
    return [m.group(1).strip() if m is not None and pattern.groups else s
            for m, s in zip(found, labels, strict=True)]
_ALIGNER_SUFFIX = re.compile(r"(?:[._]?Aligned\.(?:sortedByCoord\.)?out|\.sorted)?"
                             r"\.(?:bam|sam|cram)$", re.IGNORECASE)


def bam_sample_names(labels: Sequence[str]) -> list[str]:
    """featureCounts labels each sample by the path of its alignment file: the sample's name
    is the file name without directory, extension and STAR's 'Aligned.sortedByCoord.out'
    ('run1/P001Aligned.sortedByCoord.out.bam' -> 'P001'); other labels stay as written."""
    return [_ALIGNER_SUFFIX.sub("", re.split(r"[/\\]", str(s))[-1])
            if _ALIGNER_SUFFIX.search(str(s)) else str(s) for s in labels]


FILE_ROWS = "file_rows"   # DataFrame.attrs key: the file line of each row, where known
#: DataFrame.attrs key: the file column (1-based) of each data column, where not the
#: position (columns left out by label_column / columns or a featureCounts table's reader)
FILE_COLUMNS = "file_columns"


def file_column(df: pd.DataFrame, c: int) -> int:
    """The file column (1-based, row labels = 1) of data column ``c`` of a table read here."""
    cols = df.attrs.get(FILE_COLUMNS)
    return int(cols[c]) if cols is not None else c + 2


def file_row(df: pd.DataFrame, r: int) -> int:
    """The file line of row ``r`` of a table read here (blank lines and skipped rows counted),
    or its position plus the header where unknown (parquet)."""
    rows = df.attrs.get(FILE_ROWS)
    return int(rows[r]) if rows is not None and len(rows) == len(df) else r + 2


def read_table(path: str | os.PathLike[str], fmt: str = "auto") -> pd.DataFrame:
    """Read a table whose first column holds row labels; all other cells stay strings.

    Delimited text is read exactly as written or refused with the cause (compression by
    magic bytes, encoding, delimiter, rows whose field count differs from the header's).
    Cells are parsed to numbers later by :func:`to_numeric_frame`, so a bad cell can be reported
    by row and column rather than silently becoming NaN.
    """
    p = Path(path)
    fmt = detect_format(p, fmt)
    if fmt == "parquet":
        df = _read_parquet(p).astype(object)
    else:
        df = _read_delimited(p, fmt, InputDataError)
    return _labelled(df, p, fmt)


def _read_parquet(p: Path) -> pd.DataFrame:
    """A parquet table with its stored index as a column, column names as strings."""
    _require_file(p, InputDataError)
    with open(p, "rb") as fh:
        head = fh.read(4)
    if head != b"PAR1":
        raise InputDataError("not a parquet file (no PAR1 magic bytes)", file=p,
                             hint="write it with pandas.DataFrame.to_parquet or use CSV/TSV")
    try:
        df = pd.read_parquet(p)
    except (ValueError, OSError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputDataError(f"cannot be parsed as parquet: {first}", file=p,
                             hint="write it again with pandas.DataFrame.to_parquet") from None
    if not isinstance(df.index, pd.RangeIndex) or df.index.name is not None:
        df = df.reset_index()
    df.columns = pd.Index([str(c).strip() for c in df.columns])
    return df


def _too_few_columns(p: Path, fmt: str, n: int) -> InputDataError:
    return InputDataError(f"has {n} column(s) after parsing as {fmt}", file=p,
                          hint="the table needs a first column of row labels and at least one "
                               "data column; check the delimiter (format:)")


def _empty_header(err: type[OmixError], p: Path, column: int) -> OmixError:
    return err(f"column {column} has an empty header cell", file=p,
               hint="give every data column a name in the header line")


def _no_rows(p: Path) -> InputDataError:
    return InputDataError("has a header but no data rows", file=p,
                          hint="export the table again with its data")


_LABEL_HINT = ("give every row its label (feature or sample name) or delete it, or take the "
               "labels from another column (label_column: in the config; e.g. cBioPortal's "
               "Entrez_Gene_Id where Hugo_Symbol is empty)")


def _labelled(df: pd.DataFrame, p: Path, fmt: str, label_column: int = 1) -> pd.DataFrame:
    """The table's first column as row labels: shape checks, rows without label or value
    dropped, a row with values but no label refused by its line."""
    if df.shape[1] < 2:
        raise _too_few_columns(p, fmt, df.shape[1])
    if df.shape[0] == 0:
        raise _no_rows(p)
    labels = df.iloc[:, 0].astype(str).str.strip()
    df = df.iloc[:, 1:]
    df.index = pd.Index(labels, name=None)
    unlabelled = (labels == "").to_numpy()
    if unlabelled.any():
        # rows with no label and no value (a spreadsheet's trailing ',,,' lines) carry nothing;
        # a row with values but no label cannot be placed
        empty = df.apply(lambda s: s.isna() | (s.astype(str).str.strip() == "")).all(axis=1)
        orphan = unlabelled & ~empty.to_numpy()
        if orphan.any():
            raise InputDataError(f"row {file_row(df, int(np.argmax(orphan)))} has values but an "
                                 f"empty label in column {label_column}; {int(orphan.sum())} "
                                 "such row(s)",
                                 file=p,
                                 hint=_LABEL_HINT)
        rows = df.attrs.get(FILE_ROWS)
        df = df.loc[~unlabelled]
        if rows is not None:
            df.attrs[FILE_ROWS] = rows[~unlabelled]
    return df


#: cells of text held at once by :func:`read_numeric_table` (about 100 bytes each)
CHUNK_CELLS = 2_000_000


def _fast_numeric(p: Path, lines: list[int], kw: dict[str, Any], samples_in_rows: bool,
                  plan: _Plan) -> pd.DataFrame | None:
    """The common case of :func:`read_numeric_table` without text: every data cell a number
    or an NA marker as exporters write it, every row labelled, every column named.  pandas
    parses the numbers (``float_precision='round_trip'``: Python's own correctly rounded
    conversion, the same value as ``float()``, checked on 390,000 random decimals) part by
    part into one array.  None for anything else (a cell pandas does not read as a number,
    an unlabelled row, an empty header cell, a blank-line count that differs from the csv
    module's): the caller then takes the careful path, which reads the same table the same
    way or names the cell that stops it.  Measured on 200,000 x 500 beta values: 22 s
    against 71 s for the careful path, peak 1.1 GB against 2.0 GB (see the README)."""
    used = plan.order if plan.order is not None else kw["names"]
    n = len(used)
    try:
        header = [str(c).strip() for c in pd.read_csv(p, **{**kw, "nrows": 1})[used].iloc[0]]
    except (ValueError, pd.errors.ParserError, IndexError):
        return None
    total = len(lines) - 1
    if n < 2 or total < 1 or any(h == "" for h in header[1:]):
        return None
    fast = {**kw, "header": 0, "dtype": {used[0]: str, **{j: "float64" for j in used[1:]}},
            "na_filter": True, "na_values": {j: sorted(_NA_EXACT) for j in used[1:]},
            "float_precision": "round_trip"}
    if "nrows" in kw:
        fast["nrows"] = kw["nrows"] - 1   # the header is not a row with header=0
    values = np.empty((total, n - 1))
    labels: list[pd.Series] = []
    seen = 0
    tick = Ticker(log, f"reading {p.name}", total, "rows")
    try:
        with pd.read_csv(p, chunksize=max(1, CHUNK_CELLS // n), **fast) as reader:
            for part in reader:
                k = len(part)
                if seen + k > total:
                    return None
                values[seen:seen + k] = part[used[1:]].to_numpy(dtype=np.float64)
                labels.append(part[used[0]])
                seen += k
                tick(seen)
    except (ValueError, TypeError, OverflowError, pd.errors.ParserError):
        return None
    if seen != total:
        return None
    names = pd.concat(labels).astype(str).str.strip()
    if (names == "").any():
        return None
    df = pd.DataFrame(values, index=pd.Index(names.to_numpy(), name=None),
                      columns=pd.Index(header[1:]))
    df.attrs[FILE_ROWS] = np.asarray(lines[1:])
    df.attrs[FILE_COLUMNS] = plan.file_columns()
    return to_numeric_frame(df, p, samples_in_rows)


def _blank_rows(df: pd.DataFrame) -> np.ndarray:
    """Rows of a frame of strings with no value in any cell."""
    return df.apply(lambda s: s.str.strip() == "").all(axis=1).to_numpy()


def _unlabelled(raw: pd.DataFrame) -> np.ndarray:
    """Rows of a raw part whose first cell (the row label) is empty."""
    return (raw.iloc[:, 0].astype(str).str.strip() == "").to_numpy()


#: the MAF (mutation annotation format) columns a gene x sample mutation table is made of
MAF_GENE, MAF_SAMPLE, MAF_CLASS = "Hugo_Symbol", "Tumor_Sample_Barcode", "Variant_Classification"
#: protein-changing variant classes (maftools' default, ``vc_nonSyn``): a gene is mutated in a
#: sample when it carries one of these; silent, UTR, intron, flank, RNA and IGR variants do not
#: count
MAF_PROTEIN_CHANGING = frozenset({
    "Frame_Shift_Del", "Frame_Shift_Ins", "Splice_Site", "Translation_Start_Site",
    "Nonsense_Mutation", "Nonstop_Mutation", "In_Frame_Del", "In_Frame_Ins",
    "Missense_Mutation"})


def sniff_text(path: Path, n: int = 1 << 16) -> tuple[str | None, str, str] | None:
    """(compression, encoding, its first ``n`` bytes decoded without a byte-order mark) of a
    text file, for telling a file's kind by its first lines; None for an empty, parquet or
    unreadable file (the table reader names the cause)."""
    if not path.is_file() or path.stat().st_size == 0:
        return None
    with open(path, "rb") as fh:
        magic = fh.read(8)
    if magic.startswith(b"PAR1"):
        return None
    try:
        compression = _compression(path, magic, InputDataError)
        head = _raw_head(path, compression, n)
        encoding = _encoding(path, head, InputDataError)
    except (OmixError, EOFError, OSError, zlib.error, lzma.LZMAError):
        return None
    return compression, encoding, head.decode(encoding, errors="ignore").lstrip("\ufeff")


def _maf_layout(path: Path) -> tuple[str | None, str, int] | None:
    """(compression, encoding, lines above the header) of a MAF file, or None for any other
    table: a tab-separated header (below '#' lines such as '#version 2.4') naming the
    gene and the tumour sample."""
    sniffed = sniff_text(path)
    if sniffed is None:
        return None
    compression, encoding, text = sniffed
    lines = text.split("\n", 64)
    skip = next((k for k, ln in enumerate(lines) if not ln.startswith("#")), len(lines))
    if skip >= len(lines):
        return None
    header = {c.strip() for c in lines[skip].rstrip("\r").split("\t")}
    return (compression, encoding, skip) if {MAF_GENE, MAF_SAMPLE} <= header else None


def is_maf(path: str | os.PathLike[str]) -> bool:
    return _maf_layout(Path(path)) is not None


def read_maf(path: str | os.PathLike[str]) -> pd.DataFrame:
    """The gene x sample 0/1 table of a MAF: 1 where the sample carries a protein-changing
    variant (:data:`MAF_PROTEIN_CHANGING`; every variant when the file has no
    Variant_Classification column) in the gene.  Every sample with a row in the file is
    measured (0 for genes without such a variant); samples absent from it are not (a MAF
    cannot tell a sequenced sample without variants from one not sequenced)."""
    p = Path(path)
    layout = _maf_layout(p)
    if layout is None:
        raise InputDataError(f"is not a MAF (no tab-separated header with {MAF_GENE} and "
                             f"{MAF_SAMPLE})", file=p, hint="give the MAF file itself")
    compression, encoding, skip = layout
    wanted = {MAF_GENE, MAF_SAMPLE, MAF_CLASS}
    try:
        maf = pd.read_csv(p, sep="\t", skiprows=skip, dtype=str, keep_default_na=False,
                          usecols=lambda c: str(c).strip() in wanted, quoting=csv.QUOTE_NONE,
                          compression=compression, encoding=encoding, low_memory=False)
    except (EOFError, OSError, zlib.error, lzma.LZMAError) as exc:
        raise _corrupt(InputDataError, p, compression, exc) from None
    except (ValueError, pd.errors.ParserError) as exc:
        raise _unparsable(InputDataError, p, "MAF", exc) from None
    maf.columns = [str(c).strip() for c in maf.columns]
    maf = maf.apply(lambda c: c.str.strip())
    if len(maf) == 0:
        raise _no_rows(p)
    unnamed = (maf[MAF_GENE] == "") | (maf[MAF_SAMPLE] == "")
    firsts = maf.loc[~unnamed, MAF_SAMPLE].drop_duplicates()   # each sample's first row
    samples = pd.Index(firsts.to_numpy())
    if MAF_CLASS in maf.columns:
        counted = maf[MAF_CLASS].isin(MAF_PROTEIN_CHANGING) & ~unnamed
        what = "protein-changing"
    else:
        counted = ~unnamed
        what = f"all: no {MAF_CLASS} column"
    hits = maf.loc[counted, [MAF_GENE, MAF_SAMPLE]].drop_duplicates()
    genes = pd.Index(sorted(pd.unique(hits[MAF_GENE])))
    x = np.zeros((len(genes), len(samples)))
    x[genes.get_indexer(hits[MAF_GENE]), samples.get_indexer(hits[MAF_SAMPLE])] = 1.0
    log.info("%s: a MAF of %d variants in %d samples; %d counted (%s) in %d genes%s; each "
             "sample in the file is measured, 0 where it has no such variant", p.name,
             len(maf), len(samples), int(counted.sum()), what, len(genes),
             f"; {int(unnamed.sum())} row(s) without gene or sample left out"
             if unnamed.any() else "")
    out = pd.DataFrame(x, index=genes, columns=samples)
    # errors about a sample name the file row where it first appears
    out.attrs.update({FILE_COLUMNS: firsts.index.to_numpy() + skip + 2, SAMPLE_WORD: "row"})
    return out


#: DataFrame.attrs key of a table made from a long one (a MAF, ``long:``): its samples'
#: positions (FILE_COLUMNS) are the file rows where each first appears
SAMPLE_WORD = "sample_word"


@dataclass(frozen=True)
class Long:
    """An omic's ``long`` option: a long ('tidy') table's columns of the sample, the feature
    and the value, one row per measurement."""
    sample: str
    feature: str
    value: str


def read_long(path: str | os.PathLike[str], spec: Long, fmt: str = "auto"
              ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A long table as (features x samples, NaN where a pair has no row; the values as a
    one-column frame indexed by feature, with their file rows, for value checks).  Values are
    parsed as a wide table's cells are (exactly, errors naming row, column and feature); a
    sample and feature given twice is refused naming both rows.  Only the three columns are
    read, part by part; labels are kept as codes (24 bytes a row, not three strings)."""
    p = Path(path)
    fmt = detect_format(p, fmt)
    wanted = (spec.sample, spec.feature, spec.value)
    if fmt == "parquet":
        whole = _read_parquet(p)
        order = _plan(p, list(whole.columns), Columns(exact=wanted), InputDataError).order
        assert order is not None
        text = whole.iloc[:, order].astype(object)
        text = text.where(text.notna(), "").astype(str)
        text.columns = list(range(3))
        parts: Iterator[pd.DataFrame] = iter([text])
        line_of: np.ndarray | None = None
    else:
        lines, chunks, _, plan = _delimited_chunks(p, fmt, InputDataError, CHUNK_CELLS,
                                                   Columns(exact=wanted))
        order = plan.order
        assert order is not None
        parts, line_of = chunks, np.asarray(lines)
    value_column = order[2] + 1
    codes: dict[str, dict[str, int]] = {"sample": {}, "feature": {}}
    s_codes, f_codes, values, rows, unlabelled = [], [], [], [], []
    seen = 0   # file rows before this part: header included, as pandas counts them
    for k, part in enumerate(parts):
        part = part.reset_index(drop=True)
        if k == 0:
            part = part.iloc[1:].reset_index(drop=True) if line_of is not None else part
            seen = 1
        n = len(part)
        if line_of is None:                        # parquet: its rows, after the header
            at = np.arange(n) + 2
        elif len(line_of) >= seen + n:
            at = line_of[seen:seen + n]
        else:   # pandas skipped other lines than the csv module: positions, header first
            at = np.arange(n) + seen + 1
        seen += n
        part = part.apply(lambda c: c.astype(str).str.strip())
        sample, feature, value = (part.iloc[:, j] for j in range(3))
        empty = ((sample == "") & (feature == "") & (value == "")).to_numpy()
        bad = ((sample == "") | (feature == "")).to_numpy() & ~empty
        unlabelled += [(int(r), spec.sample if sv == "" else spec.feature)
                       for r, sv in zip(at[bad], sample[bad], strict=True)]
        keep = ~empty & ~bad
        vals = pd.DataFrame({spec.value: value[keep].to_numpy()},
                            index=pd.Index(feature[keep].to_numpy()))
        vals.attrs.update({FILE_ROWS: at[keep], FILE_COLUMNS: np.array([value_column])})
        def rest() -> tuple[int, int]:   # bad values of the parts not read yet, for the count
            return sum(_bad_counts(c.iloc[:, [2]])[0] for c in parts), 0
        values.append(to_numeric_frame(vals, p, rest=rest).iloc[:, 0].to_numpy())
        rows.append(at[keep])
        for key, labels, out in (("sample", sample, s_codes), ("feature", feature, f_codes)):
            local, uniq = pd.factorize(labels[keep])
            table = codes[key]
            glob = np.array([table.setdefault(u, len(table)) for u in uniq], dtype=np.int64)
            out.append(glob[local] if len(local) else np.zeros(0, dtype=np.int64))
    if unlabelled:
        r, which = unlabelled[0]
        raise InputDataError(f"row {r} has an empty {_short(which)}; {len(unlabelled)} such "
                             "row(s)", file=p, hint=f"give every row its {spec.sample} and "
                                                     f"{spec.feature}, or delete it")
    file_rows = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
    if len(file_rows) == 0:
        raise _no_rows(p)
    s_code, f_code = np.concatenate(s_codes), np.concatenate(f_codes)
    samples, features = list(codes["sample"]), list(codes["feature"])
    pair = s_code * len(features) + f_code
    dup = pd.Index(pair).duplicated()
    if dup.any():
        i = int(np.argmax(dup))
        j = int(np.flatnonzero(pair == pair[i])[0])
        raise InputDataError(f"rows {int(file_rows[j])} and {int(file_rows[i])} hold the same "
                             f"sample and feature ('{_short(features[f_code[i]])}'); "
                             f"{int(dup.sum())} repeated pair(s)", file=p,
                             hint="keep one row per sample and feature, or name a more "
                                  "specific feature column in long.feature (Olink: OlinkID, "
                                  "unique per assay and panel)")
    value = np.concatenate(values)
    x = np.full((len(features), len(samples)), np.nan)
    x[f_code, s_code] = value
    out = pd.DataFrame(x, index=pd.Index(features), columns=pd.Index(samples))
    out.attrs.update({FILE_COLUMNS: file_rows[np.unique(s_code, return_index=True)[1]],
                      SAMPLE_WORD: "row"})
    checked = pd.DataFrame({spec.value: value},
                           index=pd.Index(np.asarray(features, dtype=object)[f_code]))
    checked.attrs.update({FILE_ROWS: file_rows, FILE_COLUMNS: np.array([value_column])})
    log.info("%s: a long table of %d rows: %d features x %d samples (%d pairs without a row)",
             p.name, len(value), len(features), len(samples), int(np.isnan(x).sum()))
    return out, checked


def _long_missing(p: Path, missing: list[str], header: list[str]) -> InputDataError:
    return InputDataError(f"has no column {', '.join(repr(_short(c)) for c in missing)} named "
                          "in long", file=p,
                          hint=f"name columns of its header ({', '.join(map(_short, header[:8]))}"
                               f"{', ...' if len(header) > 8 else ''}) in long.sample, "
                               "long.feature and long.value")


def read_numeric_table(path: str | os.PathLike[str], fmt: str = "auto",
                       samples_in_rows: bool = False, columns: Columns | None = None
                       ) -> pd.DataFrame:
    """:func:`read_table` then :func:`to_numeric_frame`, with the same checks, errors and
    result, but a delimited file is read and parsed in parts of about :data:`CHUNK_CELLS`
    cells, so only one part's text is in memory, never the whole table's.

    Text cells cost about 100 bytes each against a float's 8: a methylation array's 450,000
    probes x 500 samples held as text would take about 22 GB; measured on 50,000 x 500
    (beta values, 2 % missing): 2.48 GB peak and 22 s read whole, parts: see the README."""
    p = Path(path)
    fmt = detect_format(p, fmt)
    if fmt == "parquet":
        # numeric columns straight to floats: as Python objects (read_table's strings) a
        # 450,000 x 500 table of floats would take about 7 GB
        df = _read_parquet(p)
        plan = _plan(p, list(df.columns), columns, InputDataError)
        flagged = [c for c in df.columns if c in (*MAXQUANT_FLAGS, FRAGPIPE_PROTEIN)]
        drop = pd.Series(_flagged_rows(df[flagged]), index=df.index)
        if plan.order is not None:
            df = df.iloc[:, plan.order]
        df.attrs[FILE_ROWS] = np.arange(len(df)) + 2
        plan.drop_lines = df.attrs[FILE_ROWS][drop.to_numpy()]
        numeric = all(pd.api.types.is_numeric_dtype(t) for t in df.dtypes.iloc[1:])
        df = _labelled(df if numeric else df.astype(object), p, fmt, plan.label_column())
        df.attrs[FILE_COLUMNS] = plan.file_columns()
        return _planned(to_numeric_frame(df, p, samples_in_rows), plan, p)
    lines, chunks, kw, plan = _delimited_chunks(p, fmt, InputDataError, CHUNK_CELLS, columns)
    fast = _fast_numeric(p, lines, kw, samples_in_rows, plan)
    if fast is not None:
        return _planned(fast, plan, p)
    header: list[str] = []
    drop_last = False
    parts: list[pd.DataFrame] = []
    seen = 0                                   # data rows before this part
    tick = Ticker(log, f"reading {p.name} (cell by cell)", len(lines) - 1, "rows")
    for raw in chunks:
        if not header:
            header = [str(c).strip() for c in raw.iloc[0]]
            raw = raw.iloc[1:]
            if len(header) < 2:
                raise _too_few_columns(p, fmt, len(header))
            inner = [j for j, h in enumerate(header[:-1]) if h == "" and j > 0]
            if inner:
                raise _empty_header(InputDataError, p, inner[0] + 1)
            drop_last = header[-1] == ""
        raw = raw.reset_index(drop=True)
        n = len(raw)
        if drop_last:   # an empty last column under an empty header cell: trailing delimiters
            if not (raw.iloc[:, -1].str.strip() == "").all():
                raise _empty_header(InputDataError, p, len(header))
            raw = raw.iloc[:, :-1]
        known = seen + n + 1 <= len(lines)
        rows = np.asarray(lines[1 + seen:1 + seen + n]) if known else np.arange(n) + seen + 2
        labels = raw.iloc[:, 0].astype(str).str.strip()
        data = raw.iloc[:, 1:]
        data.columns = pd.Index(header[1:len(header) - drop_last])
        data.index = pd.Index(labels, name=None)
        data.attrs[FILE_ROWS] = rows
        data.attrs[FILE_COLUMNS] = plan.file_columns()
        width = len(header) - drop_last
        unlabelled = (labels == "").to_numpy()
        if unlabelled.any():
            orphan = unlabelled & ~_blank_rows(data)
            if orphan.any():
                more = sum(int((_unlabelled(c) & ~_blank_rows(c.iloc[:, 1:width])).sum())
                           for c in chunks)
                raise InputDataError(
                    f"row {int(rows[np.argmax(orphan)])} has values but an empty label in "
                    f"column {plan.label_column()}; {int(orphan.sum()) + more} such row(s)",
                    file=p,
                    hint=_LABEL_HINT)
            data = data.loc[~unlabelled]
            data.attrs[FILE_ROWS] = rows[~unlabelled]

        def rest(width: int = width) -> tuple[int, int]:
            counts = [_bad_counts(c.iloc[:, 1:width]) for c in chunks]
            return sum(c[0] for c in counts), sum(c[1] for c in counts)

        parts.append(to_numeric_frame(data, p, samples_in_rows, rest=rest))
        seen += n
        tick(seen)
    if not header:
        raise _no_rows(p)
    if len(header) - drop_last < 2:
        raise _too_few_columns(p, fmt, len(header) - drop_last)
    if seen == 0:
        raise _no_rows(p)
    rows_of = [q.attrs.pop(FILE_ROWS) for q in parts]   # (concat cannot compare arrays)
    out = parts[0] if len(parts) == 1 else pd.concat(parts, axis=0)
    if len(lines) == seen + 1:   # pandas skipped the same blank lines as the csv module
        out.attrs[FILE_ROWS] = np.concatenate(rows_of)
    out.attrs[FILE_COLUMNS] = plan.file_columns()
    return _planned(out, plan, p)


def _planned(df: pd.DataFrame, plan: _Plan, p: Path) -> pd.DataFrame:
    """A table read by ``plan``: its data columns relabelled, the rows it flags left out."""
    df.columns = pd.Index(plan.relabel([str(c) for c in df.columns]))
    if len(plan.drop_lines):
        rows = df.attrs.get(FILE_ROWS)
        if rows is None or len(rows) != len(df):
            raise InputDataError("an exporter's table with flagged rows and blank lines "
                                 "between its rows", file=p, hint="delete the blank lines")
        keep = ~np.isin(rows, plan.drop_lines)
        attrs = {**df.attrs, FILE_ROWS: rows[keep]}
        df = df.loc[keep]
        df.attrs = attrs
        log.info("%s: %d row(s) marked '+' (MaxQuant) or True (Proteome Discoverer) in %s, "
                 "or a 'contam_' Protein (FragPipe): decoys, contaminants, proteins "
                 "identified by a modification site only, are left out", p.name,
                 int((~keep).sum()), "/".join(MAXQUANT_FLAGS))
    return df


_NA_STRINGS = frozenset({"", "na", "nan", "null", "none", "#n/a", "n/a", "-"})
# an omics exporter's own marker of a missing value: Spectronaut writes 'Filtered' where a
# protein or precursor did not pass its q-value filter in a run
_OMIC_NA_STRINGS = _NA_STRINGS | {"filtered"}
# what clinical exports write for a missing value, read as missing in the sample sheet (only
# there: in an omics table they stay refused as text): TCGA's bracketed codes, GDC's '--'
# and 'not reported'.  As values they would become a class of the outcome ('[Not Available]'
# as a response) or text in a column of numbers
_SHEET_NA_CODES = frozenset({"[not available]", "[not applicable]", "[unknown]",
                             "[not evaluated]", "[discrepancy]", "[not requested]",
                             "[pending]", "not reported", "not available", "--", "'--"})


def cell_name(df: pd.DataFrame, r: int, c: int, samples_in_rows: bool) -> str:
    """'row R, column C (feature 'X')': file position plus the feature, never the sample ID."""
    feature = df.columns[c] if samples_in_rows else df.index[r]
    return f"row {file_row(df, r)}, column {file_column(df, c)} (feature '{_short(feature)}')"


def _parsed(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The careful path of :func:`to_numeric_frame`: (cells as text, NA markers, pandas'
    numbers, bad cells: neither a number nor an NA marker)."""
    raw = df.astype(str)
    lowered = raw.apply(lambda s: s.str.strip().str.lower())
    is_na = lowered.isin(_OMIC_NA_STRINGS) | df.isna()
    out = raw.apply(lambda s: pd.to_numeric(s.str.strip(), errors="coerce"))
    return raw, is_na, out, out.isna() & ~is_na


def _bad_counts(df: pd.DataFrame) -> tuple[int, int]:
    """(bad cells, rows of text only) of a frame of strings, for an error's counts."""
    if _exact_floats(df) is not None:
        return 0, 0
    bad = _parsed(df)[3].to_numpy()
    return int(bad.sum()), int(bad.all(axis=1).sum()) if bad.shape[1] > 1 else 0


def to_numeric_frame(df: pd.DataFrame, file: str | os.PathLike[str],
                     samples_in_rows: bool = False,
                     rest: Callable[[], tuple[int, int]] | None = None) -> pd.DataFrame:
    """Parse every cell to float; NA markers become NaN; anything else non-numeric is an error.

    The error names the first bad cell by its 1-based file row and column (header = row 1) and
    its feature; neither the cell's value nor the sample's ID is printed.  ``rest``: where
    ``df`` is one part of a table (:func:`read_numeric_table`), counts the bad cells and text
    rows of the parts after it, so an error's counts are the whole table's.
    """
    numeric = all(pd.api.types.is_numeric_dtype(t) for t in df.dtypes)
    fast = None if numeric else _exact_floats(df)
    if numeric:
        out = df if (df.dtypes == np.float64).all() else df.astype(float)
    elif fast is not None:
        out = pd.DataFrame(fast, index=df.index, columns=df.columns)
    else:
        raw, is_na, out, bad = _parsed(df)
        if bad.to_numpy().any():
            more_cells, more_rows = rest() if rest is not None else (0, 0)
            r, c = np.argwhere(bad.to_numpy())[0]
            n_bad = int(bad.to_numpy().sum()) + more_cells
            comma = raw.where(bad).stack().str.strip().str.fullmatch(r"[-+]?\d*,\d+")
            if comma.mean() > 0.5:
                raise InputDataError(
                    f"{n_bad} cell(s) hold numbers with a decimal comma (first at "
                    f"{cell_name(df, r, c, samples_in_rows)})", file=file,
                    hint="re-export the table with '.' as the decimal mark")
            # a column or row of text beside the numbers: an exporter's annotation
            # (MaxQuant's 'Gene names', Perseus's '#!{Type}' rows), not a damaged cell
            text_col, text_row = bad.to_numpy().all(axis=0), bad.to_numpy().all(axis=1)
            if len(df) > 1 and text_col.any():
                c = int(np.argmax(text_col))
                raise InputDataError(
                    f"column {file_column(df, c)} holds text in every row: an annotation "
                    f"column (gene names, descriptions), not measurements; "
                    f"{int(text_col.sum())} such column(s)", file=file,
                    hint="keep the one column of row labels first and delete the other text "
                         "columns, or set columns: (a pattern of the data columns' labels) "
                         "and label_column: for this omic in the config")
            if df.shape[1] > 1 and text_row.any():
                r = int(np.argmax(text_row))
                raise InputDataError(
                    f"row {file_row(df, r)} holds text in every column: an annotation row (such as "
                    f"Perseus's '#!{{Type}}' rows), not measurements; "
                    f"{int(text_row.sum()) + more_rows} such row(s)", file=file,
                    hint="delete the annotation rows below the header line")
            raise InputDataError(
                f"non-numeric cell at {cell_name(df, r, c, samples_in_rows)}; "
                f"{n_bad} such cell(s) in all",
                file=file, hint="fix or blank those cells (empty, NA and NaN mean missing)")
        # pandas' fast parser can be one ulp off; Python's float() reads the decimal text
        # exactly (correctly rounded), so the matrix is what the file says to the last bit
        text = raw.to_numpy(dtype=object)
        exact = np.full(text.shape, np.nan)
        cells = ~is_na.to_numpy()
        exact[cells] = [float(v) for v in np.char.strip(text[cells].astype(str))]
        out = pd.DataFrame(exact, index=df.index, columns=df.columns)
    values = out.to_numpy()
    if np.isinf(values).any():
        r, c = np.argwhere(np.isinf(values))[0]
        raise InputDataError(
            f"infinite value at {cell_name(df, r, c, samples_in_rows)}",
            file=file, hint="replace inf/-inf by a finite value or leave the cell empty (missing)")
    out.attrs.update(df.attrs)   # the file lines, for later checks that name a row
    return out


# the NA markers as exporters write them, for the fast path (others go the careful way)
_NA_EXACT = frozenset({"", "NA", "na", "NaN", "nan", "NAN", "N/A", "n/a", "#N/A", "NULL",
                       "null", "None", "none", "-", "Filtered"})


def _exact_floats(df: pd.DataFrame) -> np.ndarray | None:
    """All cells parsed with Python's float() (correctly rounded) in one C loop, NA markers as
    NaN; None when any cell needs the careful path (odd NA spellings, bad cells)."""
    flat = pd.Series(df.to_numpy(dtype=object).ravel())
    na = flat.isin(_NA_EXACT) | flat.isna()
    try:
        values = flat.where(~na, "nan").to_numpy(dtype=object).astype(np.float64)
    except (ValueError, TypeError):
        return None
    return values.reshape(df.shape)


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
                row = file_row(df, int(np.argmax(dup.to_numpy())))
                raise ConfigError(f"name at row {row} appears twice", file=path,
                                  hint="each name may map to one sample_id")
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
def first_duplicate(labels: pd.Index) -> tuple[int, int]:
    """Positions (first, second) of the first label that repeats an earlier one."""
    dup = labels.duplicated(keep="first")
    i = int(np.argmax(dup))
    j = int(np.argmax(labels == labels[i]))
    return j, i


def read_sample_sheet(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read the sample sheet (TSV or CSV): ``sample_id`` plus any clinical columns.

    Returns a frame indexed by ``sample_id`` with numeric-looking columns converted to numbers.
    """
    p = Path(path)
    fmt = detect_format(p)
    if fmt == "parquet":
        try:
            df = pd.read_parquet(p).astype(object)
        except (ValueError, OSError) as exc:
            raise ConfigError(f"cannot be parsed: {str(exc).splitlines()[0]}", file=p,
                              hint="the sample sheet is a tab-separated table with a header "
                                   "row") from None
    else:
        df = _read_delimited(p, fmt, ConfigError)
    df.columns = pd.Index([str(c).strip() for c in df.columns])
    if df.columns.duplicated().any():  # a column chosen by name would be ambiguous
        j, i = first_duplicate(df.columns)
        raise ConfigError(f"columns {j + 1} and {i + 1} have the same name '{df.columns[i]}'",
                          file=p, hint="rename or remove one of them")
    if "sample_id" not in df.columns:
        near = [c for c in df.columns
                if re.sub(r"[^a-z]", "", c.lower()) in ("sampleid", "sample")]
        raise ConfigError("has no 'sample_id' column"
                          + (f" (column '{near[0]}' differs only in case or punctuation)"
                             if near else ""), file=p,
                          hint="name the column that holds sample IDs 'sample_id'")
    # rows with no value at all (a spreadsheet's trailing ',,,' lines) carry nothing
    kept = ~df.apply(lambda s: s.isna() | (s.astype(str).str.strip() == "")).all(axis=1)
    row_of = np.array([file_row(df, k) for k in range(len(df))])[kept.to_numpy()]
    df = df.loc[kept.to_numpy()]
    if len(df) == 0:
        raise ConfigError("has a header but no samples", file=p, hint="add one row per sample")
    ids = df["sample_id"].astype(str).str.strip()
    if (ids == "").any():
        row = int(row_of[np.argmax((ids == "").to_numpy())])
        raise ConfigError(f"empty sample_id at row {row}", file=p,
                          hint="every row needs a sample_id")
    dup = ids.duplicated(keep="first")
    if dup.any():
        row = int(row_of[np.argmax(dup.to_numpy())])
        first = int(row_of[np.argmax((ids == ids[dup].iloc[0]).to_numpy())])
        raise ConfigError(f"sample_id at row {row} repeats the one at row {first}", file=p,
                          hint="sample IDs must be unique; merge or rename the duplicated rows")
    df = df.drop(columns="sample_id")
    df.index = pd.Index(ids, name="sample_id")
    df.attrs[FILE_ROWS] = np.asarray(row_of)   # errors name sheet lines, never sample IDs
    for col in df.columns:
        s = df[col]
        if s.dtype == object:
            stripped = s.astype(str).str.strip()
            coded = stripped.str.lower().isin(_SHEET_NA_CODES)
            if coded.any():
                codes = sorted(set(stripped[coded]))
                log.info("sample sheet column '%s': %d cell(s) read as missing (%s)", col,
                         int(coded.sum()), ", ".join(f"'{c}'" for c in codes))
            missing = stripped.str.lower().isin(_NA_STRINGS) | coded
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


def mudata() -> Any:
    """The mudata module, set to its coming default (``update()`` does not copy each
    modality's obs/var columns into the global ones; silences its FutureWarning)."""
    import mudata as md

    md.set_options(pull_on_update=False)
    return md


def var_key(omic: str, feature: object) -> str:
    """A feature's one name across the workflow: ``<omic>:<feature>``.  The cohort MuData's
    var_names, the MOFA+ model file's features, the prediction's variables and every table's
    ``var_name`` column use it; ``feature`` columns keep the name of the omic's input table."""
    return f"{omic}:{feature}"


def omic_features(mdata: Any, omic: str) -> pd.Index:
    """An omic's feature names as in its input table: its var_names without ``<omic>:``."""
    names = pd.Index(mdata.mod[omic].var_names.astype(str))
    prefix = f"{omic}:"
    if not names.str.startswith(prefix).all():
        raise ConfigError(f"the cohort MuData's {omic} features are not named '{prefix}<feature>'"
                          ": it was written by an older version of this workflow",
                          hint="re-run from the MuData step: snakemake --forcerun mudata")
    return pd.Index(names.str.slice(len(prefix)))


def write_h5mu(mdata: Any, path: str | os.PathLike[str]) -> None:
    with atomic_path(path) as tmp:
        mdata.write(tmp)


def read_h5ad(path: str | os.PathLike[str]) -> Any:
    import anndata as ad

    return ad.read_h5ad(path)


def read_h5mu(path: str | os.PathLike[str]) -> Any:
    return mudata().read_h5mu(path)


def json_floats(a: Any) -> list[float | None]:
    """A float array as a JSON list (NaN -> null; Python's repr round-trips exactly)."""
    return [None if not np.isfinite(v) else float(v) for v in np.asarray(a, dtype=float).ravel()]


def floats_from_json(v: Any) -> np.ndarray:
    """The inverse of :func:`json_floats`."""
    return np.array([np.nan if x is None else x for x in v], dtype=float)


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages whose behaviour the results depend on."""
    from importlib import metadata

    pkgs: dict[str, str | None] = {}
    for name in ("snakemake", "mofapy2", "scanpy", "anndata", "mudata", "numpy", "pandas",
                 "scikit-learn", "scipy", "statsmodels", "leidenalg", "igraph", "umap-learn",
                 "matplotlib", "lifelines"):
        try:
            pkgs[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pkgs[name] = None
    return pkgs


POOLED = "all"   # the group column of a metrics.tsv's rows over all outer folds


def pooled(metrics: pd.DataFrame) -> pd.DataFrame:
    """The rows of a metrics.tsv over all outer folds, without leave_group_out's per-group
    rows (a table written before the group column has only those)."""
    if "group" not in metrics:
        return metrics
    return metrics[metrics["group"].astype(str) == POOLED]
