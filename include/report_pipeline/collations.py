"""Key collations: a target key must never take two distinct source keys for one.

A load that replaces rows by key (``upsert``, ``incremental``) merges two source rows into one target
row when the target key's collation calls their keys equal: 'abc' and 'ABC' from a ``utf8mb4_bin``
source under a ``utf8mb4_general_ci`` key, or 'a' and 'a ' under any PAD SPACE collation. The load
would count both rows and keep one. So before loading, every character column of every PRIMARY or
UNIQUE key of the target is compared with the collation of the source column loaded into it.

Safe pairs: the same collation on both sides (the source holds no two keys that collation calls
equal... unless its query returns duplicates, which the duplicate rule of ``query_insert`` governs),
the ``binary`` collation, a NO PAD ``_bin`` collation of the source's character set, or a PAD SPACE
``_bin`` collation of its character set under a PAD SPACE source (both already ignore trailing spaces).
"""

from __future__ import annotations

from collections.abc import Mapping


def no_pad(collation: str) -> bool:
    """Whether a collation compares trailing spaces (NO PAD): MariaDB ``*_nopad_*``, MySQL 8 ``*_0900_*``, binary."""
    name = collation.lower()
    return name == "binary" or "nopad" in name or "_0900_" in name


def _charset(collation: str) -> str:
    return collation.lower().split("_", 1)[0]


def _safe(source: str, target: str) -> bool:
    """Whether ``target`` tells apart every two values ``source`` tells apart."""
    s, t = source.lower(), target.lower()
    if s == t or t == "binary":
        return True
    if _charset(s) != _charset(t) or not t.endswith("_bin"):
        return False
    return no_pad(t) or not no_pad(s)


def merge_problem(target_keys: Mapping[str, str], source: Mapping[str, str | None]) -> str | None:
    """Why a target key could merge distinct source keys, or None.

    ``target_keys``: the collation of each character column of a PRIMARY or UNIQUE key (lower-case
    name); ``source``: the collation of each loaded source column (lower-case name; None when the
    source column is not text or its collation is unknown).
    """
    unsafe = [
        (column, collation, source[column])
        for column, collation in target_keys.items()
        if source.get(column) is not None and not _safe(str(source[column]), collation)
    ]
    if not unsafe:
        return None
    pairs = ", ".join(f"{c} ({s} in the source, {t} in the target)" for c, t, s in unsafe)
    return (
        f"key column(s) {pairs} could make two distinct source keys equal (case, accents or trailing spaces), so "
        "the load would merge rows and count rows that never arrived; refusing before loading, the target was not "
        "changed. Give the target key column the source's collation (ALTER TABLE ... MODIFY ... COLLATE "
        f"{unsafe[0][2]}) or a binary one"
    )
