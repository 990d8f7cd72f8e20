"""The baselines, ported from ``../shared/bench/peers.py``: the providers' operators (``airflow``), the
server-native chain (``limit``) and the naive pipeline (``naive``); each builds a ``run()`` for a child."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable
from typing import Any

from benchkit.data import BUCKET_PEERS, COLS, COLUMNS, SRC_DB, TGT_DB, TGT_TABLE, ensure_bucket
from serverkit import mysql_connect, mysql_url, s3_client, s3_endpoint


def contender_airflow(spec: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    """Ported from peers.py airflow(): SqlToS3Operator (pandas) + S3ToMySqlOperator (LOAD DATA LOCAL).

    Tuned to copy exactly as peers.py does: na_rep NULL, no header or index, ESCAPED BY ''.
    """
    os.environ["AIRFLOW_CONN_SRC"] = mysql_url(SRC_DB)
    os.environ["AIRFLOW_CONN_TGT"] = mysql_url(TGT_DB) + "&local_infile=true"
    os.environ["AIRFLOW_CONN_AWS_DEFAULT"] = json.dumps(
        {
            "conn_type": "aws",
            "login": "any",
            "password": "any",
            "extra": {"endpoint_url": s3_endpoint(), "region_name": "us-east-1"},
        }
    )
    from airflow.providers.amazon.aws.transfers.sql_to_s3 import SqlToS3Operator
    from airflow.providers.mysql.transfers.s3_to_mysql import S3ToMySqlOperator

    table = spec["table"]

    def run() -> dict[str, Any]:
        t0 = time.perf_counter()
        ensure_bucket(s3_client())
        op = SqlToS3Operator(
            task_id="x",
            query=f"SELECT {COLS} FROM {table}",
            sql_conn_id="src",
            s3_bucket=BUCKET_PEERS,
            s3_key=f"airflow/{table}.csv",
            replace=True,
            file_format="csv",
            df_kwargs={"index": False, "header": False, "na_rep": "NULL"},
        )
        op.execute({})
        t1 = time.perf_counter()
        op2 = S3ToMySqlOperator(
            task_id="y",
            s3_source_key=f"s3://{BUCKET_PEERS}/airflow/{table}.csv",
            mysql_table=TGT_TABLE,
            mysql_conn_id="tgt",
            mysql_duplicate_key_handling="REPLACE",
            mysql_extra_options="FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' ESCAPED BY '' " + f"({COLS})",
        )
        op2.execute({})
        t2 = time.perf_counter()
        return {"stages_s": {"extract": t1 - t0, "load": t2 - t1}}

    return run


def contender_limit(spec: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    """Ported from peers.py limit(): SELECT INTO OUTFILE, S3 upload/download, LOAD DATA INFILE (server-side).

    The server may only read and write files under @@secure_file_priv, so both files live there.
    """
    table = spec["table"]

    def run() -> dict[str, Any]:
        t0 = time.perf_counter()
        src = mysql_connect(SRC_DB)
        cur = src.cursor()
        cur.execute("SELECT @@secure_file_priv")
        directory = cur.fetchone()[0]
        if not directory:
            raise RuntimeError("@@secure_file_priv is empty or NULL: the server-native chain needs a file directory")
        tag = uuid.uuid4().hex[:8]
        dumped = os.path.join(directory, f"bench_limit_{tag}.tsv")
        fetched = os.path.join(directory, f"bench_limit_{tag}_back.tsv")
        client = s3_client()
        ensure_bucket(client)
        stages: dict[str, float] = {}
        try:
            t = time.perf_counter()
            cur.execute(f"SELECT {COLS} FROM {table} INTO OUTFILE '{dumped}'")
            stages["outfile"] = time.perf_counter() - t
            src.close()
            t = time.perf_counter()
            client.upload_file(dumped, BUCKET_PEERS, f"limit/{table}.tsv")
            stages["upload"] = time.perf_counter() - t
            t1 = time.perf_counter()
            client.download_file(BUCKET_PEERS, f"limit/{table}.tsv", fetched)
            os.chmod(fetched, 0o644)  # the server reads it as its own user
            stages["download"] = time.perf_counter() - t1
            t = time.perf_counter()
            tgt = mysql_connect(TGT_DB)
            cur2 = tgt.cursor()
            cur2.execute(f"LOAD DATA INFILE '{fetched}' INTO TABLE {TGT_TABLE} CHARACTER SET utf8mb4 ({COLS})")
            tgt.commit()
            tgt.close()
            stages["load_data"] = time.perf_counter() - t
            t2 = time.perf_counter()
        finally:
            for path in (dumped, fetched):
                try:
                    os.remove(path)
                except OSError:
                    pass
        return {"stages_s": {"extract": t1 - t0, "load": t2 - t1, **stages}}

    return run


def contender_naive(spec: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    """Ported from peers.py naive(): fetchall -> CSV in memory -> put_object; get_object -> executemany REPLACE."""
    import csv
    import io

    table = spec["table"]

    def run() -> dict[str, Any]:
        t0 = time.perf_counter()
        conn = mysql_connect(SRC_DB)
        cur = conn.cursor()
        client = s3_client()
        ensure_bucket(client)
        cur.execute(f"SELECT {COLS} FROM {table}")
        rows: Any = cur.fetchall()
        buf = io.StringIO()
        writer = csv.writer(buf)
        for r in rows:
            writer.writerow(["\\N" if v is None else v for v in r])
        client.put_object(Bucket=BUCKET_PEERS, Key=f"naive/{table}.csv", Body=buf.getvalue().encode())
        conn.close()
        del rows, buf
        t1 = time.perf_counter()
        body = client.get_object(Bucket=BUCKET_PEERS, Key=f"naive/{table}.csv")["Body"].read().decode()
        rows = [[None if v == "\\N" else v for v in r] for r in csv.reader(io.StringIO(body))]
        tgt = mysql_connect(TGT_DB)
        cur2 = tgt.cursor()
        placeholders = ", ".join(["%s"] * len(COLUMNS))
        for i in range(0, len(rows), 5000):
            cur2.executemany(f"REPLACE INTO {TGT_TABLE} ({COLS}) VALUES ({placeholders})", rows[i : i + 5000])
        tgt.commit()
        tgt.close()
        t2 = time.perf_counter()
        return {"stages_s": {"extract": t1 - t0, "load": t2 - t1}}

    return run
