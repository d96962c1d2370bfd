"""Property-based test: exporters' variants of a valid table are read exactly or refused.

Hypothesis writes a small omic table the way various exporters do (delimiter and extension,
quoting, trailing delimiters, byte-order mark, line endings, text encoding, compression, header
shape, orientation) and ingests it.  The property: the result is exactly the intended matrix, or
one :class:`OmixError` whose message is a single line naming the file; never a different matrix.
Fixed seed (derandomize) and a bounded number of examples, so CI is deterministic and quick.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from omix.errors import OmixError
from omix.ingest import ingest_omic

NAME = st.text(alphabet="abcxyzAB019-_. é,", min_size=1, max_size=6).map(str.strip).filter(
    lambda s: s != "" and s.lower() not in ("na", "nan", "null", "none", "n/a", "-"))


@st.composite
def tables(draw):
    n_f = draw(st.integers(1, 5))
    n_s = draw(st.integers(1, 4))
    features = draw(st.lists(NAME, min_size=n_f, max_size=n_f, unique=True))
    samples = draw(st.lists(NAME, min_size=n_s, max_size=n_s, unique=True))
    values = draw(st.lists(st.one_of(st.none(), st.floats(-1e6, 1e6, allow_nan=False)),
                           min_size=n_f * n_s, max_size=n_f * n_s))
    x = np.array([np.nan if v is None else v for v in values], dtype=float).reshape(n_f, n_s)
    x[0, :] = np.where(np.isnan(x[0, :]), 1.0, x[0, :])  # every sample measured once at least
    return pd.DataFrame(x, index=features, columns=samples)


EXPORT = {
    "delimiter": st.sampled_from([(",", ".csv"), ("\t", ".tsv"), ("\t", ".txt"), (",", ".tsv"),
                                  ("\t", ".csv"), (";", ".csv")]),
    "quote": st.sampled_from(["minimal", "all", "none"]),
    "trailing": st.sampled_from(["no", "data_rows", "all_rows"]),
    "bom": st.booleans(),
    "newline": st.sampled_from(["\n", "\r\n"]),
    "encoding": st.sampled_from(["utf-8", "utf-16", "latin-1"]),
    "compression": st.sampled_from(["none", "gzip", "gzip_unnamed", "named_gz_only", "bz2"]),
    "header": st.sampled_from(["full", "empty_corner", "no_corner"]),
    "layout": st.sampled_from(["features_x_samples", "samples_x_features"]),
    "na": st.sampled_from(["", "NA", "nan"]),
}


def cell(s: str, sep: str, quote: str) -> str:
    if quote == "all" or (quote == "minimal" and (sep in s or '"' in s)):
        return '"' + s.replace('"', '""') + '"'
    return s


def render(df: pd.DataFrame, o: dict) -> tuple[bytes, str]:
    sep, ext = o["delimiter"]
    table = df if o["layout"] == "features_x_samples" else df.T
    corner = {"full": "id", "empty_corner": "", "no_corner": None}[o["header"]]
    head = ([] if corner is None else [corner]) + list(map(str, table.columns))
    lines = [sep.join(cell(h, sep, o["quote"]) for h in head)
             + (sep if o["trailing"] == "all_rows" else "")]
    for label, row in table.iterrows():
        vals = [o["na"] if np.isnan(v) else repr(float(v)) for v in row]
        lines.append(sep.join(cell(c, sep, o["quote"]) for c in [str(label), *vals])
                     + (sep if o["trailing"] != "no" else ""))
    text = o["newline"].join(lines) + o["newline"]
    data = (("\ufeff" if o["bom"] and o["encoding"] != "utf-16" else "") + text).encode(
        o["encoding"], errors="replace")
    name = "table" + ext
    if o["compression"] == "gzip":
        data, name = gzip.compress(data, mtime=0), name + ".gz"
    elif o["compression"] == "gzip_unnamed":
        data = gzip.compress(data, mtime=0)
    elif o["compression"] == "named_gz_only":
        name += ".gz"
    elif o["compression"] == "bz2":
        data, name = bz2.compress(data), name + ".bz2"
    return data, name


def ingest_bytes(data: bytes, name: str, samples: list[str], layout: str
                 ) -> tuple[Any, OmixError | None, str]:
    """Write ``data`` as ``name`` in a fresh directory and ingest it as a continuous table:
    (the AnnData or None, the error or None, the file's path)."""
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / name
        p.write_bytes(data)
        try:
            return ingest_omic(p, kind="continuous", sample_ids=samples, layout=layout,
                               name="omic"), None, str(p)
        except OmixError as err:
            return None, err, str(p)


@settings(max_examples=300, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(df=tables(), o=st.fixed_dictionaries(EXPORT))
def test_a_table_is_read_exactly_or_refused_in_one_line(df: pd.DataFrame, o: dict) -> None:
    data, name = render(df, o)
    a, err, p = ingest_bytes(data, name, list(df.columns), o["layout"])
    if err is not None:
        msg = err.one_line()
        assert "\n" not in msg and p in msg
        event("refused: " + err.what.split(":")[0][:40])
        return
    event("read exactly")
    # read: it must be exactly the intended matrix (samples x features, sheet order)
    assert list(a.obs_names) == list(df.columns), o
    assert list(a.var_names) == list(df.index), o
    np.testing.assert_array_equal(a.X, df.T.to_numpy(), err_msg=str(o))


@settings(max_examples=150, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(df=tables(), o=st.fixed_dictionaries(EXPORT), cells=st.integers(1, 12))
def test_a_table_read_in_parts_is_the_table_read_whole(df: pd.DataFrame, o: dict,
                                                       cells: int) -> None:
    """Large tables are read and parsed a few thousand rows at a time (io.CHUNK_CELLS), so a
    450,000-probe methylation table never sits in memory as text; here parts of one to a few
    rows, by pandas' float parser and by the careful text path: the same matrix, or the same
    one-line error (row numbers and counts included), as reading the file whole."""
    from unittest import mock

    from omix import io

    data, name = render(df, o)

    def read(chunk: int, careful: bool = False) -> tuple[str, object]:
        # careful: without the fast path (pandas' float parser), the text path in parts
        no_fast = mock.patch.object(io, "_fast_numeric", lambda *a: None) if careful else \
            contextlib.nullcontext()
        with mock.patch.object(io, "CHUNK_CELLS", chunk), no_fast:
            a, err, p = ingest_bytes(data, name, list(df.columns), o["layout"])
        if err is not None:
            return "error", err.one_line().replace(p, "FILE")
        return "read", (list(a.obs_names), list(a.var_names), a.X.copy())

    whole = read(10**9)
    for parts in (read(cells), read(cells, careful=True), read(10**9, careful=True)):
        assert whole[0] == parts[0], (whole, parts)
        if whole[0] == "error":
            assert whole[1] == parts[1]
            continue
        assert whole[1][0] == parts[1][0] and whole[1][1] == parts[1][1]
        np.testing.assert_array_equal(whole[1][2], parts[1][2])
