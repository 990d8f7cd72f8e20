"""Issue 7, hostile input: admin rows users (or attackers with admin-DB access) could write.

Each entry is one bad ``tables`` row or ``companies`` row, with the error substring users must see
on the row's failing task. One entry is different on purpose: Python in ``params_insert`` is not an
error at all, because the pipeline never evaluates it; that row must load like any other and its
code must not run (``expected=HARMLESS``).

Hostile SQL names a per-run victim table (``{victim}``) wherever it can, so that a test can look for
any trace of these statements in the server's general query log without confusing them with the
traffic of other tests running at the same time.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

# What a HARMLESS entry expects instead of an error.
HARMLESS = "loads, nothing executed"

# The file the Python in the harmless entry's params_insert would create if anything evaluated it.
PWNED_PATH = "/tmp/pwned"

GOOD_ALIASES = ("hgood_one", "hgood_two")
VICTIM = "hostile_victim"

# Row ids: good rows are small, corpus rows are numbered from here, in corpus order.
FIRST_TABLE_ID = 101
FIRST_COMPANY_ID = 501


@dataclass(frozen=True)
class HostileRow:
    """One corpus entry: a bad admin row and the error users should see for it."""

    id: str
    description: str
    expected: str
    table: dict[str, Any] | None = None
    company: dict[str, Any] | None = None
    # The company's 'date Y-M-D' configuration value (a companies_configurations row), if any.
    lookback: str | None = None
    row_id: int = 0

    @property
    def admin_table(self) -> str:
        """Which admin table the row lives in: ``tables`` or ``companies``."""
        return "tables" if self.table is not None else "companies"

    @property
    def row(self) -> dict[str, Any]:
        """The admin row, with its id."""
        raw = self.table if self.table is not None else self.company
        assert raw is not None
        return {**raw, "id": self.row_id}


def good_tables(victim: str = VICTIM) -> list[dict[str, Any]]:
    """Two valid table rows (a seed-style one and a named-placeholder one) that must still load."""
    del victim  # the good rows never touch the victim
    return [
        {
            "id": 1,
            "name": "users",
            "status": 1,
            "query_select": "SELECT id, name FROM users WHERE company = %s ORDER BY id",
            "params_select": "company[1]",
            "query_insert": "REPLACE INTO users(id, name) VALUES ",
            "params_insert": "'('+row[0]+',\"'+row[1]+'\")'",
        },
        {
            "id": 2,
            "name": "orders",
            "status": 1,
            "query_select": "SELECT id, amount, created_at FROM orders WHERE company = %(company_id)s "
            "AND created_at >= %(date_from)s AND created_at < %(date_to)s",
            "params_select": "",
            "query_insert": "INSERT INTO orders (id, amount, created_at) VALUES",
            "params_insert": "",
        },
    ]


def good_companies(aliases: tuple[str, str] = GOOD_ALIASES) -> list[dict[str, Any]]:
    """Two valid, active companies (company_id 10 and 20)."""
    return [
        {"id": 1, "company_id": 10, "status": 1, "alias": aliases[0]},
        {"id": 2, "company_id": 20, "status": 1, "alias": aliases[1]},
    ]


def _table(name: str, query_select: str, **changes: Any) -> dict[str, Any]:
    """A tables row that is valid except for what the entry changes."""
    row = {
        "name": name,
        "status": 1,
        "query_select": query_select,
        "params_select": "",
        "query_insert": "REPLACE INTO users (id, name) VALUES",
        "params_insert": "",
        "load_mode": "upsert",
        "chunk_column": None,
        "chunk_rows": None,
    }
    row.update(changes)
    return row


def _company(alias: str, company_id: int = 99) -> dict[str, Any]:
    return {"company_id": company_id, "status": 1, "alias": alias}


def hostile_rows(good_aliases: tuple[str, str] = GOOD_ALIASES, victim: str = VICTIM) -> list[HostileRow]:
    """The corpus, with the victim table and the good companies' aliases filled in.

    Row ids are assigned in order from FIRST_TABLE_ID (tables) and FIRST_COMPANY_ID (companies).
    """
    v = victim
    ok_select = f"SELECT id, name FROM {v}"
    only_select = "only a SELECT statement is allowed"
    into = "SELECT ... INTO (OUTFILE, DUMPFILE or @variable) is not allowed"
    entries = [
        # --- params_select / params_insert: Python and unknown references ---------------------
        HostileRow(
            "python_params_insert",
            "seed-era params_insert holding Python: never evaluated, so the row loads normally",
            HARMLESS,
            table=_table(
                "harmless",
                "SELECT id, name FROM users WHERE company = %s ORDER BY id",
                params_select="company[1]",
                query_insert="REPLACE INTO harmless (id, name) VALUES",
                params_insert=f"__import__('os').system('touch {PWNED_PATH}')",
            ),
        ),
        HostileRow(
            "python_params_select",
            "Python code as a params_select reference",
            "params_select entry 1",
            table=_table(
                "py_params",
                f"SELECT id, name FROM {v} WHERE id = %s",
                params_select=f"__import__('os').system('touch {PWNED_PATH}')",
            ),
        ),
        HostileRow(
            "params_select_lambda",
            "a lambda hidden behind a valid reference",
            "params_select entry 2",
            table=_table(
                "py_lambda",
                f"SELECT id, name FROM {v} WHERE id = %s AND id = %s",
                params_select="company[1], (lambda: open('/etc/passwd').read())()",
            ),
        ),
        HostileRow(
            "company_index_99",
            "company[99] indexes past the 4 fields of a companies row",
            "index 99 does not exist",
            table=_table("idx99", f"SELECT id, name FROM {v} WHERE id = %s", params_select="company[99]"),
        ),
        HostileRow(
            "company_index_5000_digits",
            "an index of 5,000 digits (int() refuses more than 4,300: it crashed the whole plan)",
            "is not a known reference",
            table=_table(
                "idx_huge", f"SELECT id, name FROM {v} WHERE id = %s", params_select="company[" + "9" * 5000 + "]"
            ),
        ),
        HostileRow(
            "date_call",
            "date() is not the reference 'date'",
            "'date()' is not a known reference",
            table=_table("date_call", f"SELECT id, name FROM {v} WHERE d >= %s", params_select="date()"),
        ),
        HostileRow(
            "unknown_reference",
            "a reference to a name the seed never had",
            "'row[0]' is not a known reference",
            table=_table("unknown_ref", f"SELECT id, name FROM {v} WHERE id = %s", params_select="row[0]"),
        ),
        HostileRow(
            "huge_params_select",
            "10,000 references for one placeholder",
            "1 %s placeholder(s) but params_select lists 10000",
            table=_table(
                "huge_params",
                f"SELECT id, name FROM {v} WHERE id = %s",
                params_select=",".join(["company[1]"] * 10_000),
            ),
        ),
        # --- parameter counts and placeholders ------------------------------------------------
        HostileRow(
            "too_few_references",
            "two %s placeholders, one reference",
            "2 %s placeholder(s) but params_select lists 1",
            table=_table("too_few", f"SELECT id, name FROM {v} WHERE id = %s OR id = %s", params_select="company[1]"),
        ),
        HostileRow(
            "too_many_references",
            "no placeholder, two references",
            "0 %s placeholder(s) but params_select lists 2",
            table=_table("too_many", ok_select, params_select="company[1],date"),
        ),
        HostileRow(
            "mixed_placeholders",
            "%(company_id)s mixed with %s",
            "mixes positional %s",
            table=_table(
                "mixed", f"SELECT id, name FROM {v} WHERE company = %(company_id)s AND id = %s", params_select=""
            ),
        ),
        HostileRow(
            "unknown_named_placeholder",
            "a named placeholder the pipeline does not bind",
            "unknown named placeholder(s) ['password']",
            table=_table("named_unknown", f"SELECT id, name FROM {v} WHERE name = %(password)s"),
        ),
        HostileRow(
            "placeholder_in_literal",
            "%s inside quotes: the driver would substitute there too",
            "is inside a string literal",
            table=_table("in_literal", f"SELECT id, name FROM {v} WHERE name = '%s'", params_select="company[3]"),
        ),
        HostileRow(
            "bare_percent",
            "LIKE 'a%' would break the driver's %-formatting",
            "is neither a placeholder",
            table=_table("bare_percent", f"SELECT id, name FROM {v} WHERE name LIKE 'a%'"),
        ),
        # --- stacked statements and comments ----------------------------------------------------
        HostileRow(
            "stacked_drop",
            "SELECT 1; DROP TABLE",
            "more than one statement",
            table=_table("stacked", f"SELECT 1; DROP TABLE {v}"),
        ),
        HostileRow(
            "stacked_after_line_comment",
            "a -- comment, then a second statement on the next line",
            "more than one statement",
            table=_table("stacked_comment", f"{ok_select} -- harmless\n; DELETE FROM {v}"),
        ),
        HostileRow(
            "hash_comment_hides_nothing",
            "a # comment closing the line before a second statement",
            "more than one statement",
            table=_table("stacked_hash", f"{ok_select} # x\n;UPDATE {v} SET name = 'x'"),
        ),
        HostileRow(
            "executable_comment_drop",
            "/*! DROP TABLE */ runs on MySQL and MariaDB",
            "executable comment",
            table=_table("exec_comment", f"{ok_select} /*! ; DROP TABLE {v} */"),
        ),
        HostileRow(
            "mariadb_executable_comment",
            "/*M! ... */ is MariaDB's executable comment",
            "executable comment",
            table=_table("exec_comment_m", f"SELECT /*M!100000 SLEEP(100), */ id, name FROM {v}"),
        ),
        HostileRow(
            "dash_dash_without_space",
            "'--1' is arithmetic for MySQL, not a comment: what follows is code",
            "is not followed by a space",
            table=_table("dashdash", f"SELECT id --1\n, name FROM {v}"),
        ),
        HostileRow(
            "backslash_quote",
            "a literal whose end depends on NO_BACKSLASH_ESCAPES",
            "backslash before a quote",
            table=_table("backslash", f"SELECT 'it\\'; DROP TABLE {v}; -- ' AS x FROM {v}"),
        ),
        HostileRow(
            "fullwidth_semicolon",
            "a fullwidth semicolon looks like a statement separator",
            "cannot be parsed",
            table=_table("fullwidth", f"SELECT id FROM {v}\uff1b DROP TABLE {v}"),
        ),
        # --- not a SELECT -----------------------------------------------------------------------
        HostileRow("delete", "DELETE", only_select, table=_table("del", f"DELETE FROM {v}")),
        HostileRow("update", "UPDATE", only_select, table=_table("upd", f"UPDATE {v} SET name = 'pwned'")),
        HostileRow("call", "CALL a procedure", only_select, table=_table("call_p", f"CALL {v}_p()")),
        HostileRow("set_variable", "SET @a=1", only_select, table=_table("set_a", f"SET @{v} = 1")),
        HostileRow(
            "load_data",
            "LOAD DATA INFILE",
            only_select,
            table=_table("load_data", f"LOAD DATA INFILE '/etc/passwd' INTO TABLE {v}"),
        ),
        HostileRow("drop", "DROP TABLE", only_select, table=_table("drop_t", f"DROP TABLE {v}")),
        HostileRow(
            "do_sleep",
            "DO SLEEP(): runs an expression without a result set",
            only_select,
            table=_table("do_sleep", f"DO (SELECT SLEEP(100) FROM {v})"),
        ),
        HostileRow(
            "handler",
            "HANDLER reads without SELECT",
            only_select,
            table=_table("handler_t", f"HANDLER {v} OPEN"),
        ),
        # --- SELECTs that write, read files, stall or lock ----------------------------------------
        HostileRow(
            "into_outfile",
            "SELECT ... INTO OUTFILE writes a server file",
            into,
            table=_table("outfile", f"{ok_select} INTO OUTFILE '/tmp/{v}.txt'"),
        ),
        HostileRow(
            "into_dumpfile",
            "SELECT ... INTO DUMPFILE writes a server file",
            into,
            table=_table("dumpfile", f"SELECT name FROM {v} LIMIT 1 INTO DUMPFILE '/tmp/{v}.bin'"),
        ),
        HostileRow(
            "into_variable",
            "SELECT ... INTO @x",
            into,
            table=_table("into_var", f"SELECT name FROM {v} LIMIT 1 INTO @{v}"),
        ),
        HostileRow(
            "load_file",
            "LOAD_FILE('/etc/passwd')",
            "function LOAD_FILE() is not allowed",
            table=_table("load_file", f"SELECT id, LOAD_FILE('/etc/passwd') AS name FROM {v}"),
        ),
        HostileRow(
            "sleep",
            "SELECT SLEEP(100)",
            "function SLEEP() is not allowed",
            table=_table("sleep_one", f"SELECT SLEEP(100) AS id, name FROM {v}"),
        ),
        HostileRow(
            "sleep_flood",
            "SLEEP per row, spelled with a space and a comment before '('",
            "function SLEEP() is not allowed",
            table=_table("sleep_flood", f"SELECT id, name FROM {v} WHERE sleep /* x */ (1) = 0"),
        ),
        HostileRow(
            "benchmark",
            "BENCHMARK burns CPU",
            "function BENCHMARK() is not allowed",
            table=_table("bench", f"SELECT BENCHMARK(100000000, MD5(name)) AS id, name FROM {v}"),
        ),
        HostileRow(
            "sys_exec_udf",
            "lib_mysqludf_sys runs shell commands",
            "function SYS_EXEC() is not allowed",
            table=_table("sys_exec", f"SELECT sys_exec('touch {PWNED_PATH}') AS id, name FROM {v}"),
        ),
        HostileRow(
            "get_lock",
            "GET_LOCK takes an advisory lock",
            "function GET_LOCK() is not allowed",
            table=_table("get_lock", f"SELECT GET_LOCK('{v}', 100) AS id, name FROM {v}"),
        ),
        HostileRow(
            "for_update",
            "SELECT ... FOR UPDATE locks source rows",
            "locking reads",
            table=_table("for_update", f"{ok_select} FOR UPDATE"),
        ),
        HostileRow(
            "lock_in_share_mode",
            "LOCK IN SHARE MODE in a subquery",
            "locking reads",
            table=_table("share_mode", f"SELECT id, name FROM {v} WHERE id IN (SELECT id FROM {v} LOCK IN SHARE MODE)"),
        ),
        HostileRow(
            "assign_variable",
            "@x := assigns a user variable",
            "assigning a user variable",
            table=_table("assign", f"SELECT @{v} := id AS id, name FROM {v}"),
        ),
        HostileRow(
            "procedure_analyse",
            "PROCEDURE ANALYSE() runs a server procedure on the result (sqlglot cannot parse it)",
            "the query cannot be parsed",
            table=_table("proc_analyse", f"{ok_select} PROCEDURE ANALYSE()"),
        ),
        HostileRow(
            "sequence_nextval",
            "NEXTVAL() advances a MariaDB sequence on the source",
            "function NEXTVAL() is not allowed",
            table=_table("nextval", f"SELECT NEXTVAL({v}_seq) AS id, name FROM {v}"),
        ),
        HostileRow(
            "master_gtid_wait",
            "MASTER_GTID_WAIT() blocks on replication",
            "function MASTER_GTID_WAIT() is not allowed",
            table=_table("gtid_wait", f"SELECT MASTER_GTID_WAIT('0-1-999999', 100) AS id, name FROM {v}"),
        ),
        HostileRow(
            "reads_mysql_user",
            "copies the server's accounts and password hashes into the company's bucket",
            "in the server's own schema 'mysql'",
            table=_table("grants", f"SELECT 1 AS id, authentication_string AS name FROM mysql.user WHERE user = '{v}'"),
        ),
        HostileRow(
            "huge_query",
            "a 1 MB query_select",
            "characters long (at most 100000)",
            table=_table("huge_query", f"SELECT id, name FROM {v} WHERE name = '" + "x" * 1_000_000 + "'"),
        ),
        HostileRow("empty_query", "an empty query_select", "the query is empty", table=_table("empty_q", "  ")),
        # --- query_insert ---------------------------------------------------------------------------
        HostileRow(
            "on_duplicate_key_update",
            "INSERT ... ON DUPLICATE KEY UPDATE in query_insert",
            "ON DUPLICATE KEY UPDATE",
            table=_table(
                "odku",
                ok_select,
                query_insert=f"INSERT INTO {v} (id, name) VALUES ON DUPLICATE KEY UPDATE name = 'x'",
            ),
        ),
        HostileRow(
            "schema_qualified_insert",
            "a query_insert target in another schema",
            "schema-qualified table",
            table=_table("qualified", ok_select, query_insert=f"REPLACE INTO mysql.{v} (id, name) VALUES"),
        ),
        HostileRow(
            "stacked_insert",
            "a second statement after the query_insert header",
            "has a ';'",
            table=_table(
                "stacked_ins", ok_select, query_insert=f"REPLACE INTO users (id, name) VALUES ; DROP TABLE {v}"
            ),
        ),
        HostileRow(
            "insert_not_insert",
            "query_insert that is a DELETE",
            "must start with INSERT or REPLACE",
            table=_table("ins_delete", ok_select, query_insert=f"DELETE FROM {v}"),
        ),
        HostileRow(
            "insert_column_backtick",
            "a column name that closes its backticks",
            "is not a valid MySQL identifier",
            table=_table(
                "ins_col", ok_select, query_insert=f"REPLACE INTO users (`id`, `name``; DROP TABLE {v}`) VALUES"
            ),
        ),
        HostileRow(
            "insert_into_report_loads",
            "query_insert into the pipeline's own load-status table",
            "a table the pipeline itself keeps",
            table=_table("fake_status", ok_select, query_insert="REPLACE INTO report_loads (id, name) VALUES"),
        ),
        HostileRow(
            "insert_into_swap_shadow",
            "query_insert into a swap's shadow table name",
            "a table the pipeline itself keeps",
            table=_table(
                "fake_shadow", ok_select, query_insert="REPLACE INTO _rp_new_users_deadbeef (id, name) VALUES"
            ),
        ),
        # --- identifiers ------------------------------------------------------------------------------
        HostileRow(
            "name_backtick",
            "table name with a backtick",
            "table name 'users`; DROP' is not a valid MySQL identifier",
            table=_table("users`; DROP", ok_select),
        ),
        HostileRow(
            "name_dot",
            "table name with a dot",
            "table name 'mysql.user' is not a valid MySQL identifier",
            table=_table("mysql.user", ok_select),
        ),
        HostileRow(
            "name_space",
            "table name with a space",
            "table name 'my table' is not a valid MySQL identifier",
            table=_table("my table", ok_select),
        ),
        HostileRow(
            "name_unicode",
            "table name with unicode letters",
            "table name 'usérs' is not a valid MySQL identifier",
            table=_table("usérs", ok_select),
        ),
        HostileRow(
            "name_too_long",
            "a 65-character table name",
            "is 65 characters long (at most 64)",
            table=_table("t" * 65, ok_select),
        ),
        HostileRow(
            "chunk_column_backtick",
            "chunk_column that closes its backticks",
            "chunk column 'id`) OR 1=1 --' is not a valid MySQL identifier",
            table=_table("chunk_bt", ok_select, chunk_column="id`) OR 1=1 -- ", chunk_rows=5),
        ),
        HostileRow(
            "load_mode_drop",
            "load_mode 'drop'",
            "load_mode 'drop' is not one of",
            table=_table("mode_drop", ok_select, load_mode="drop"),
        ),
        HostileRow(
            "chunk_rows_negative",
            "chunk_rows -5",
            "chunk_rows must be positive, got -5",
            table=_table("chunk_neg", ok_select, chunk_column="id", chunk_rows=-5),
        ),
        # --- companies: aliases -------------------------------------------------------------------------
        HostileRow(
            "alias_traversal", "alias '../etc'", "company alias '../etc' contains '.', '/'", company=_company("../etc")
        ),
        HostileRow("alias_uppercase", "alias 'Acme'", "contains uppercase letters", company=_company("Acme")),
        HostileRow(
            "alias_64", "a 64-character alias", "is 64 characters long (at most 40)", company=_company("a" * 64)
        ),
        HostileRow(
            "alias_5000",
            "a 5,000-character alias",
            "is 5000 characters long (at most 40)",
            company=_company("b" * 5000),
        ),
        HostileRow("alias_unicode", "alias with unicode letters", "contains 'é'", company=_company("sociét")),
        HostileRow("alias_empty", "an empty alias", "company alias '' is empty", company=_company("")),
        HostileRow(
            "alias_duplicate",
            "the alias of another (earlier) company",
            f"is already used by company {good_aliases[0]!r}",
            company=_company(good_aliases[0], company_id=77),
        ),
        HostileRow(
            "alias_dash_collision",
            "an alias that would map onto another company's bucket after '_' -> '-'",
            "contains '-'",
            company=_company(good_aliases[1].replace("_", "-"), company_id=78),
        ),
        HostileRow(
            "alias_mysql",
            "alias 'mysql': with the default schema template it would load into the server's grant tables",
            "schema 'mysql'",
            company=_company("mysql"),
        ),
        HostileRow(
            "alias_mysql_schema",
            "alias whose schema is the server's own 'information_schema' (default schema template)",
            "is a MySQL system schema",
            company=_company("information_schema"),
        ),
        # --- companies: the 'date Y-M-D' configuration -----------------------------------------------
        HostileRow(
            "lookback_double_minus",
            "look-back '--5' (passed str.isdigit() after lstrip('-'), then crashed int() and the whole plan)",
            "must be a whole number, got '--5'",
            company=_company("lb_minus", company_id=91),
            lookback="--5",
        ),
        HostileRow(
            "lookback_superscript",
            "look-back '²' (str.isdigit() is True, int() raises)",
            "must be a whole number, got '²'",
            company=_company("lb_super", company_id=92),
            lookback="²",
        ),
        HostileRow(
            "lookback_huge",
            "look-back of 10^15 days: the window would leave the calendar at run time",
            "days must be at most",
            company=_company("lb_huge", company_id=93),
            lookback="1000000000000000",
        ),
        HostileRow(
            "lookback_python",
            "Python as a look-back value",
            "must be a whole number",
            company=_company("lb_python", company_id=94),
            lookback="__import__('os').system('touch /tmp/pwned')",
        ),
    ]
    numbered: list[HostileRow] = []
    next_id = {"tables": FIRST_TABLE_ID, "companies": FIRST_COMPANY_ID}
    for entry in entries:
        kind = entry.admin_table
        numbered.append(replace(entry, row_id=next_id[kind]))
        next_id[kind] += 1
    return numbered


CORPUS = hostile_rows()
