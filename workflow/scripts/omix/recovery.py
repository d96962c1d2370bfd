"""Recovery after a killed run: remove Snakemake locks that no live process holds.

``kill -9`` (or a power loss) leaves ``.snakemake/locks/`` behind and the next run refuses to
start until ``snakemake --unlock``.  For local runs this module removes such locks when no other
Snakemake main process runs in the same directory, so repeating the same command recovers.
Incomplete outputs are then redone thanks to ``rerun-incomplete`` in ``profiles/default``; our
outputs are written atomically, so no half-written file is ever mistaken for a result.
Cluster runs are left alone (another login node's processes are invisible here).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger("omix.recovery")


def _is_snakemake_main(argv: list[str]) -> bool:
    """True for ``snakemake ...`` and ``python -m snakemake ...``; not for job scripts."""
    if not argv:
        return False
    names = [os.path.basename(a) for a in argv[:3]]
    if names[0] == "snakemake":
        return True
    if names[0].startswith("python") and len(argv) > 1:
        return names[1] == "snakemake" or argv[1:3] == ["-m", "snakemake"]
    return False


def live_snakemake_pids(workdir: Path, exclude: Iterable[int] = ()) -> list[int]:
    """PIDs of Snakemake main processes whose working directory is ``workdir``."""
    skip = set(exclude)
    target = workdir.resolve()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in skip:
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
            if _is_snakemake_main([a for a in argv if a]) and \
                    Path(os.readlink(entry / "cwd")).resolve() == target:
                found.append(int(entry.name))
        except (OSError, ValueError):
            continue
    return found


def _ancestors() -> set[int]:
    pids, pid = set(), os.getpid()
    while pid > 1:
        pids.add(pid)
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            pid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return pids


def clear_stale_locks(workdir: str | os.PathLike[str] = ".") -> bool:
    """Remove ``.snakemake/locks/*`` if no other Snakemake runs in ``workdir``; say so."""
    wd = Path(workdir)
    locks = wd / ".snakemake" / "locks"
    if not locks.is_dir() or not any(locks.iterdir()) or not Path("/proc/self").exists():
        return False
    if live_snakemake_pids(wd, exclude=_ancestors()):
        return False
    for f in locks.iterdir():
        f.unlink(missing_ok=True)
    log.warning("removed a stale Snakemake lock left by an interrupted run "
                "(no other Snakemake process runs in this directory)")
    return True
