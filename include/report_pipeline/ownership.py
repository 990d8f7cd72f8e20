"""Whose schema is it: a company's target schema is never a server's, the admin's or the source's.

Loads REPLACE, DROP and RENAME inside the company's schema, so a template that resolves to a schema
belonging to something else (an alias equal to the admin or source schema on a shared server, or a
server schema) must be refused before anything runs. Beyond those names, a schema counts as the
company's when it holds the load ledger (created by ``report-pipeline onboard`` or by the first load);
a schema without it is adopted by a load only when every table in it is one of the company's report
tables, as a seed-era schema created by hand is. Anything else is somebody else's.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from report_pipeline.vocabulary import LEDGER_TABLE

SERVER_SCHEMAS = frozenset({"mysql", "information_schema", "performance_schema", "sys"})
OWN_TABLE_PREFIX = "_rp_"


def foreign_schema_problem(schema: str, protected: Mapping[str, str]) -> str | None:
    """Why ``schema`` cannot be a company's target schema by its name alone, or None.

    ``protected`` maps schema names (lower case) that belong to something else to what that is,
    e.g. ``{"reports_admin": "the admin database (reports_admin_db)"}``.
    """
    name = schema.lower()
    if name in SERVER_SCHEMAS:
        return f"target schema {schema!r} is a schema of the MySQL server itself"
    if name in protected:
        return f"target schema {schema!r} is {protected[name]} on the same server"
    return None


def adoption_problem(schema: str, tables: Collection[str], company_tables: Collection[str]) -> str | None:
    """Why an existing schema is not the company's, judged by the tables it holds, or None.

    A schema with the load ledger is the company's. Without it, every table must be one of the
    company's report tables (or the pipeline's own ``_rp_`` tables); an empty schema is adopted too.
    """
    names = {t.lower() for t in tables}
    if LEDGER_TABLE in names:
        return None
    known = {t.lower() for t in company_tables}
    foreign = sorted(t for t in tables if t.lower() not in known and not t.lower().startswith(OWN_TABLE_PREFIX))
    if not foreign:
        return None
    shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
    return (
        f"target schema {schema!r} exists, has no {LEDGER_TABLE} table and holds tables that are not this "
        f"company's report tables ({shown}), so it looks like somebody else's schema; change "
        "REPORTS_TARGET_SCHEMA_TEMPLATE or the company's alias, or, if the schema really is this company's, adopt "
        "it with `report-pipeline onboard --company-id N --alias A --adopt-schema`"
    )
