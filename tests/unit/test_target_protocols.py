"""Every target implementation has every method of every concern's protocol, with the protocol's parameters.

Two implementations exist: the MySQL target (the product) and the in-memory double (tests/unit/memtarget.py)
that drives the load path in unit tests. Neither may drift from the protocols unnoticed: a method missing
or a parameter renamed in one fails here, by name.
"""

from __future__ import annotations

import inspect

import pytest
from tests.unit.memtarget import MemoryServer, MemoryTarget

from report_pipeline import target as target_module
from report_pipeline.target import CONCERNS, Bookkeeping, Capabilities, Target
from report_pipeline.target.mysql import MySqlTarget

IMPLEMENTATIONS = [MySqlTarget, MemoryTarget]


def _protocol_methods(protocol: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(f)
        for base in protocol.__mro__
        for name, f in vars(base).items()
        if inspect.isfunction(f) and not name.startswith("_")
    }


def test_the_concerns_cover_the_whole_target_and_split_it():
    whole = _protocol_methods(Target)
    per_concern = [set(_protocol_methods(p)) for p in CONCERNS]
    assert set().union(*per_concern) == set(whole)
    # Each method belongs to exactly one concern.
    assert sum(len(m) for m in per_concern) == len(whole)
    assert set(_protocol_methods(Bookkeeping)) <= set(whole)
    assert all(len(m) <= 8 for m in per_concern), [sorted(m) for m in per_concern if len(m) > 8]


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("protocol", CONCERNS, ids=lambda p: p.__name__)
def test_each_implementation_has_each_protocol_method_with_its_parameters(implementation: type, protocol: type):
    for name, signature in _protocol_methods(protocol).items():
        mine = getattr(implementation, name, None)
        assert callable(mine), f"{implementation.__name__} lacks {protocol.__name__}.{name}"
        assert list(inspect.signature(mine).parameters) == list(signature.parameters), (
            f"{implementation.__name__}.{name}{inspect.signature(mine)} "
            f"differs from {protocol.__name__}.{name}{signature}"
        )


def test_the_protocols_are_checked_at_runtime_too():
    session = MemoryServer().session()
    for protocol in (*CONCERNS, Bookkeeping, Target):
        assert isinstance(session, protocol), protocol.__name__
    assert not isinstance(object(), target_module.Session)


def test_capabilities_are_flags_every_engine_answers():
    assert MemoryServer().session().capabilities() == Capabilities(engine="memory")
    mysql = MySqlTarget.capabilities(object.__new__(MySqlTarget))
    assert mysql.engine == "mysql"
    assert mysql.shadow_swap and mysql.atomic_multi_table_rename and mysql.key_checksums
