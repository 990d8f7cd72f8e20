"""The scratch admin config ``scripts/parse_report.py`` parses: ``companies`` x ``tables`` active rows,
queries padded to a realistic length, legacy and named parameters mixed."""

from __future__ import annotations

from report_pipeline import admin
from serverkit import mysql_connect

TABLE_QUERIES = (
    # Legacy seed-style rows (positional %s bound from params_select) and new-style named rows.
    ("SELECT id, username FROM {t} WHERE company = %s AND created_at >= %s", "company[1],date"),
    (
        "SELECT id, kind, payload FROM {t} WHERE company = %(company_id)s AND happened_at >= %(date_from)s "
        "AND happened_at < %(date_to)s",
        "",
    ),
)


def padded(query: str, chars: int) -> str:
    """``query`` with ``AND id NOT IN (0, 1, ...)`` appended until it is about ``chars`` characters long."""
    if len(query) >= chars:
        return query
    values: list[str] = []
    n = 0
    while len(query) + len(" AND id NOT IN ()") + len(", ".join(values)) < chars:
        values.append(str(n))
        n += 1
    return f"{query} AND id NOT IN ({', '.join(values)})"


def create_admin(schema: str, companies: int, tables: int, query_chars: int = 0) -> None:
    """A scratch admin schema with ``companies`` active companies x ``tables`` active tables."""
    conn = mysql_connect()
    conn.cursor().execute(f"CREATE DATABASE `{schema}` CHARACTER SET utf8mb4")
    conn.select_db(schema)
    admin.init_admin(conn)
    cur = conn.cursor()
    for n in range(1, companies + 1):
        admin.add_company(cur, 1000 + n, f"pr{n:04d}", row_id=n)
        admin.set_lookback(cur, 1000 + n, n % 30 + 1)
    for n in range(1, tables + 1):
        query, params = TABLE_QUERIES[n % 2]
        name = f"table_{n:02d}"
        cols = "id, username" if params else "id, kind, payload"
        admin.add_table(
            cur,
            admin.TableRow(
                id=n,
                name=name,
                query_select=padded(query.format(t=name), query_chars),
                params_select=params,
                query_insert=f"REPLACE INTO {name}({cols}) VALUES",
                load_mode="swap" if n % 5 == 0 else "upsert",
            ),
        )
    conn.commit()
    conn.close()


def drop_admin(schema: str) -> None:
    """Drop the scratch admin schema."""
    conn = mysql_connect()
    conn.cursor().execute(f"DROP DATABASE IF EXISTS `{schema}`")
    conn.close()
