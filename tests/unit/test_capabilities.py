"""A target engine that lacks an ability a mode needs is refused before the target is touched, by name.

The in-memory target answers ``capabilities()`` from its server, so each test takes one ability away and
runs the load path as a DAG task would: the refusal names the company, table and admin row, what the
engine lacks and what to change, and the target, the ledger and S3's ``_SUCCESS`` stay as they were.
"""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest
from tests.unit.memstorage import MemoryS3
from tests.unit.memtarget import MemoryServer
from tests.unit.test_load_in_memory import NEW, OLD, SCHEMA, TABLE, WHERE, cursor_at, extract, run, text

from report_pipeline.errors import RefusedError
from report_pipeline.guards import SwapGuard
from report_pipeline.intake import capability_problem
from report_pipeline.target import Capabilities
from report_pipeline.vocabulary import LEDGER_TABLE


def _world(*rows: tuple[int, str], **lacking: bool) -> SimpleNamespace:
    server = MemoryServer()
    server.create_table(SCHEMA, TABLE, {"id": "int(11)", "name": "varchar(50)"}, keys=[("id",)])
    server.insert(SCHEMA, TABLE, list(rows))
    server.capabilities = dataclasses.replace(server.capabilities, **lacking)
    s3 = MemoryS3()
    return SimpleNamespace(server=server, s3=s3, bucket=s3.bucket("reports-acme"))


def _untouched(world: SimpleNamespace) -> None:
    assert world.server.rows(SCHEMA, TABLE) == text(OLD)
    assert LEDGER_TABLE not in world.server.schemas[SCHEMA]
    assert not [k for k in world.s3.buckets["reports-acme"] if k.endswith("_SUCCESS")]
    # Nothing but the catalogue reads before the refusal: no lock, no DDL, no write.
    assert {op for _, op, _ in world.server.statements} <= {"schema_exists", "tables"}


def test_swap_on_an_engine_without_shadow_swaps_is_refused_naming_the_row_and_the_fix():
    world = _world(*OLD, shadow_swap=False)
    with pytest.raises(RefusedError) as refused:
        run(world, extract(world, NEW), "swap")
    assert str(refused.value) == (
        f"{WHERE}: refusing to load: load_mode 'swap' needs a target that swaps a loaded shadow table in for the "
        "live one atomically (shadow_swap), and this target (engine 'memory') cannot; the target was not changed. "
        "Either set load_mode to 'upsert' in the admin tables row, or load this company into a target engine "
        "that can"
    )
    _untouched(world)


def test_publishing_together_on_an_engine_without_multi_table_renames_is_refused():
    world = _world(*OLD, atomic_multi_table_rename=False)
    with pytest.raises(RefusedError) as refused:
        run(world, extract(world, NEW), "swap", hold=True)
    message = str(refused.value)
    assert message.startswith(f"{WHERE}: refusing to load: publishing the company's tables together needs a target")
    assert "(atomic_multi_table_rename)" in message
    assert "set publish_together to 0 in the admin companies row" in message
    _untouched(world)
    # The same engine still swaps one table at a time.
    assert run(world, extract(world, NEW, run_id="run-2"), "swap", run_id="run-2").rows == len(NEW)


def test_delete_detection_on_an_engine_without_key_checksums_is_refused():
    world = _world(*OLD, key_checksums=False)
    refs = extract(world, NEW, cursor=cursor_at("5", "2026-11-26T06:00:00"), key_columns=["id"])
    with pytest.raises(RefusedError) as refused:
        run(world, refs, "incremental", guard=SwapGuard(max_shrink_percent=60))
    assert "delete_detection 'keys' needs a target that counts and checksums a table's keys" in str(refused.value)
    assert "set delete_detection to 'none' in the admin tables row" in str(refused.value)
    _untouched(world)


def test_a_first_load_on_an_engine_without_shadow_swaps_loads_in_one_transaction_instead():
    world = _world(shadow_swap=False)
    assert run(world, extract(world, NEW)).rows == len(NEW)
    assert world.server.rows(SCHEMA, TABLE) == text(NEW)
    assert world.server.ops("create_shadow") == []
    # With the ability, the same first load goes through a shadow.
    able = _world()
    run(able, extract(able, NEW))
    assert able.server.ops("create_shadow") != []


def test_an_engine_with_every_ability_is_never_refused():
    every = Capabilities(engine="x")
    assert capability_problem(every, "here", "swap", hold=True, detects_deletes=True) is None
    nothing = Capabilities(engine="x", shadow_swap=False, atomic_multi_table_rename=False, key_checksums=False)
    assert capability_problem(nothing, "here", "upsert", hold=False, detects_deletes=False) is None
    # A repair (no mode of its own) swaps nothing, so a swap table's repair needs no shadow swap.
    assert capability_problem(nothing, "here", None, hold=False, detects_deletes=False) is None
