"""report_pipeline.shards: which DAG a company is scheduled in when REPORTS_DAG_SHARDS splits them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from report_pipeline import shards
from report_pipeline.config import AdminRows, build_plan
from report_pipeline.errors import ConfigError
from report_pipeline.settings import Settings

ALIASES = [f"company{n:04d}" for n in range(1000)]


def _plan(aliases: list[str], broken_rows: int = 0):
    companies = [{"id": n, "company_id": n, "status": 1, "alias": a} for n, a in enumerate(aliases, start=1)]
    # An alias that cannot name a schema: a broken company row (its group is keyed company_<row id>).
    companies += [
        {"id": 5000 + n, "company_id": 5000 + n, "status": 1, "alias": f"bad alias {n}"} for n in range(broken_rows)
    ]
    tables = [
        {
            "id": 1,
            "name": "users",
            "status": 1,
            "query_select": "SELECT id FROM users WHERE company = %s",
            "params_select": "company[1]",
            "query_insert": "REPLACE INTO users(id) VALUES",
            "params_insert": "",
        }
    ]
    return build_plan(AdminRows(companies=companies, tables=tables), Settings())


def test_the_assignment_is_the_same_in_every_process_whatever_the_hash_seed():
    code = (
        "import json, sys\n"
        "from report_pipeline.shards import shard_of\n"
        "print(json.dumps([shard_of(a, n) for n in (2, 8, 13) for a in json.loads(sys.argv[1])]))\n"
    )
    here = [shards.shard_of(a, n) for n in (2, 8, 13) for a in ALIASES[:200]]
    for seed in ("1", "2", "random"):
        out = subprocess.run(
            [sys.executable, "-c", code, json.dumps(ALIASES[:200])],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        )
        assert json.loads(out.stdout) == here
    # Pinned: a change of the function would move every deployment's companies to other DAGs.
    assert [shards.shard_of(a, 8) for a in ALIASES[:8]] == PINNED_8


# shard_of(company0000..company0007, 8), recorded when the function was written.
PINNED_8 = [7, 3, 2, 7, 1, 4, 2, 5]


@pytest.mark.parametrize("count", [2, 3, 8, 16])
def test_every_company_lands_in_exactly_one_shard_and_the_shards_are_balanced(count):
    found = Counter(shards.shard_of(a, count) for a in ALIASES)
    assert set(found) == set(range(1, count + 1))
    mean = len(ALIASES) / count
    assert all(0.7 * mean <= n <= 1.3 * mean for n in found.values()), found
    assert shards.shard_of("acme", 1) == 1


def test_adding_a_company_moves_nobody_else():
    before = _plan(ALIASES[:300])
    after = _plan([*ALIASES[:150], "newcomer", *ALIASES[150:300]])
    for k in range(1, 9):
        old = [c.company.alias for c in shards.shard_plan(before, k, 8).companies]
        new = [c.company.alias for c in shards.shard_plan(after, k, 8).companies if c.company.alias != "newcomer"]
        assert old == new


def test_growing_the_count_moves_only_about_one_in_n_plus_1_companies_all_into_the_new_shard():
    for count in (2, 7, 8):
        moved = [a for a in ALIASES if shards.shard_of(a, count) != shards.shard_of(a, count + 1)]
        assert all(shards.shard_of(a, count + 1) == count + 1 for a in moved)
        assert 0.6 / (count + 1) <= len(moved) / len(ALIASES) <= 1.4 / (count + 1)
        # Shrinking back moves exactly the last shard's companies, and nobody else.
        assert moved == [a for a in ALIASES if shards.shard_of(a, count + 1) == count + 1]


def test_shard_plans_partition_the_plan_broken_company_rows_included():
    plan = _plan(ALIASES[:100], broken_rows=5)
    assert len(plan.broken_companies) == 5
    parts = [shards.shard_plan(plan, k, 4) for k in range(1, 5)]
    aliases = [c.company.alias for p in parts for c in p.companies]
    assert sorted(aliases) == sorted(ALIASES[:100])
    assert len(aliases) == len(set(aliases))
    broken = [b.key for p in parts for b in p.broken_companies]
    assert sorted(broken) == sorted(b.key for b in plan.broken_companies)
    for k, part in enumerate(parts, start=1):
        assert all(shards.shard_of(c.company.alias, 4) == k for c in part.companies)
        assert all(shards.dag_id_of(b.key, 4) == shards.shard_dag_id(k) for b in part.broken_companies)
    assert shards.shard_plan(plan, 1, 1) is plan


def test_dag_ids():
    assert shards.dag_ids(1) == ["populate_report_databases"]
    assert shards.dag_ids(3) == [f"populate_report_databases_shard_0{k}" for k in (1, 2, 3)]
    assert shards.dag_id_of("acme", 1) == "populate_report_databases"
    assert shards.dag_id_of("acme", 8) == shards.shard_dag_id(shards.shard_of("acme", 8))


def test_a_shard_file_of_another_count_is_refused_naming_the_setting():
    shards.check_shard(3, 8, 8)
    with pytest.raises(ConfigError, match=r"shard 3 of 8, but REPORTS_DAG_SHARDS=4.*write-dag-shards"):
        shards.check_shard(3, 8, 4)
    with pytest.raises(ConfigError, match=r"REPORTS_DAG_SHARDS is off"):
        shards.check_shard(3, 8, 1)
    with pytest.raises(ConfigError, match="does not exist"):
        shards.check_shard(9, 8, 8)


def test_write_shard_files_writes_one_small_file_per_shard_and_removes_stale_ones(tmp_path: Path):
    keep = tmp_path / "populate_report_databases.py"
    keep.write_text("# the plain file stays\n")
    written, removed = shards.write_shard_files(tmp_path, 4)
    assert [p.name for p in written] == [f"populate_report_databases_shard_0{k}.py" for k in range(1, 5)]
    assert removed == []
    text = written[2].read_text()
    assert "dag = dag_from_admin(shard=3, shards=4)" in text
    code = [line for line in text.splitlines() if line.strip() and not line.startswith(('"""', "Written"))]
    assert len(code) <= 5
    written, removed = shards.write_shard_files(tmp_path, 2)
    assert [p.name for p in removed] == [
        "populate_report_databases_shard_03.py",
        "populate_report_databases_shard_04.py",
    ]
    assert "dag_from_admin(shard=2, shards=2)" in written[1].read_text()
    _, removed = shards.write_shard_files(tmp_path, 1)
    assert len(removed) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["populate_report_databases.py"]
    with pytest.raises(ConfigError):
        shards.write_shard_files(tmp_path, 0)


def test_the_setting():
    assert Settings.from_env({}).dag_shards == 1
    assert Settings.from_env({"REPORTS_DAG_SHARDS": "8"}).dag_shards == 8
    with pytest.raises(ConfigError, match="REPORTS_DAG_SHARDS=0 must be at least 1"):
        Settings.from_env({"REPORTS_DAG_SHARDS": "0"})


def test_shard_files_that_find_the_snapshot_expired_at_once_read_the_admin_db_once(tmp_path: Path):
    """The snapshot is shared by every shard file: one admin read per TTL, not one per shard parsed."""
    import threading
    import time

    from report_pipeline.snapshot import expire_snapshot, load_plan, write_snapshot

    settings = Settings(snapshot_path=tmp_path / "admin_snapshot.json")
    rows = AdminRows(
        companies=[{"id": n, "company_id": n, "status": 1, "alias": a} for n, a in enumerate(ALIASES[:40], 1)],
        tables=[],
    )
    write_snapshot(settings.snapshot_path, settings, build_plan(rows, settings))
    expire_snapshot(settings.snapshot_path)
    fetches: list[int] = []
    found: dict[int, list[str]] = {}
    ready = threading.Barrier(4)

    def fetch() -> AdminRows:
        fetches.append(1)
        time.sleep(0.3)  # a slow admin DB: the other parses arrive while this one reads
        return rows

    def parse(k: int) -> None:
        ready.wait()
        plan, _ = load_plan(settings, fetch, keep=lambda key: shards.shard_of(key, 4) == k)
        found[k] = [c.company.alias for c in shards.shard_plan(plan, k, 4).companies]

    threads = [threading.Thread(target=parse, args=(k,)) for k in range(1, 5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(fetches) == 1
    assert sorted(a for part in found.values() for a in part) == sorted(ALIASES[:40])
