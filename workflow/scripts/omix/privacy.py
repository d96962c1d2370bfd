"""Pseudonymisation of sample IDs with a keyed hash (HMAC-SHA256).

The same key gives the same pseudonym for a sample in every run and cohort, so results stay
linkable by whoever holds the key, and by nobody else.  The key comes from an environment
variable or a file and is never written anywhere by the workflow; the ID -> pseudonym table is
written only to the file the user names in ``privacy.mapping_file``.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from .errors import ConfigError

PREFIX = "PS"
DIGITS = 12  # hex digits kept: 48 bits, collisions are checked anyway


def load_key(key_env: str | None, key_file: str | os.PathLike[str] | None) -> bytes:
    """The secret key: from ``key_file`` if given, else from the environment variable."""
    if key_file:
        p = Path(key_file)
        if not p.is_file():
            raise ConfigError(f"key file '{key_file}' does not exist", where="privacy.key_file",
                              hint="create it (e.g. `openssl rand -hex 32 > FILE`) or unset it")
        key = p.read_bytes().strip()
    else:
        key = os.environ.get(key_env or "", "").encode()
    if len(key) < 16:
        raise ConfigError(
            "privacy.pseudonymize is true but no key of at least 16 characters was found",
            where="privacy", hint=f"export {key_env or 'a variable'}=<secret> (e.g. `openssl "
                                  "rand -hex 32`) or set privacy.key_file")
    return key


def pseudonym(sample_id: str, key: bytes) -> str:
    digest = hmac.new(key, sample_id.encode(), hashlib.sha256).hexdigest()
    return PREFIX + digest[:DIGITS].upper()


def pseudonymize_ids(ids: Iterable[str], key: bytes) -> dict[str, str]:
    """Map each ID to its pseudonym; raises if two IDs collide (astronomically unlikely)."""
    mapping = {i: pseudonym(i, key) for i in ids}
    if len(set(mapping.values())) != len(mapping):
        raise ConfigError("two sample IDs got the same pseudonym",
                          hint="use another key (privacy.key_env / privacy.key_file)")
    return mapping


def mapping_table(mapping: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame({"sample_id": list(mapping), "pseudonym": list(mapping.values())})
