"""A full run's results: one row per (table, contender) with medians and spread, the printed table, and
issue 16's targets evaluated against this run's medians."""

from __future__ import annotations

from typing import Any

from benchkit.data import fmt_rows, table_name


def median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def summarize(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (table, contender): medians and spread (min-max) of the runs, worst RSS, exact only if all were."""
    rows: list[dict[str, Any]] = []
    keys: list[tuple[str, str]] = []
    for r in runs:
        if (r["table"], r["contender"]) not in keys:
            keys.append((r["table"], r["contender"]))
    for table, contender in keys:
        mine = [r for r in runs if r["table"] == table and r["contender"] == contender]
        good = [r for r in mine if "error" not in r]
        row: dict[str, Any] = {"table": table, "contender": contender, "rows": mine[0]["rows"], "runs": len(mine)}
        if not good:
            row.update(error=mine[0]["error"], exact_copy=False)
            rows.append(row)
            continue
        work = [r["total_s"] for r in good]
        wall = [r["wall_s"] for r in good]
        row.update(
            seconds=median(work),
            work_min=min(work),
            work_max=max(work),
            wall_s=median(wall),
            wall_min=min(wall),
            wall_max=max(wall),
            startup_s=median([r["startup_s"] for r in good]),
            extract_s=median([r["stages_s"]["extract"] for r in good]),
            load_s=median([r["stages_s"]["load"] for r in good]),
            rows_per_s=mine[0]["rows"] / median(work),
            peak_rss_mb=max(r["peak_rss_mb"] for r in good),
            rss_after_imports_mb=median([r["rss_after_imports_mb"] for r in good]),
            working_set_mb=max(r["working_set_mb"] for r in good),
            load_average=[r["load_average_before"] for r in mine],
            exact_copy=len(good) == len(mine) and all(r["exact_copy"] for r in good),
            all_seconds=[round(r["total_s"], 2) for r in mine if "total_s" in r],
            all_wall_seconds=[round(r["wall_s"], 2) for r in mine if "wall_s" in r],
        )
        if any("error" in r for r in mine):
            row["error"] = next(r["error"] for r in mine if "error" in r)
        rows.append(row)
    for row in rows:
        chain = next((o for o in rows if o["table"] == row["table"] and o["contender"] == "limit"), None)
        if chain and "seconds" in chain and "seconds" in row:
            row["vs_chain"] = row["seconds"] / chain["seconds"]
            row["wall_vs_chain"] = row["wall_s"] / chain["wall_s"]
    return rows


def print_table(rows: list[dict[str, Any]]) -> None:
    header = [
        "table",
        "contender",
        "runs",
        "work s (min-max)",
        "wall s (min-max)",
        "start-up s",
        "extract s",
        "load s",
        "rows/s",
        "peak RSS MB",
        "after imports MB",
        "working set MB",
        "exact",
        "work/chain",
        "wall/chain",
        "load avg",
    ]
    body = []
    for r in rows:
        if "seconds" not in r:
            body.append([r["table"], r["contender"], str(r["runs"]), "FAILED"] + [""] * 8 + ["no", "", "", ""])
            continue
        body.append(
            [
                r["table"],
                r["contender"],
                str(r["runs"]),
                f"{r['seconds']:.2f} ({r['work_min']:.2f}-{r['work_max']:.2f})",
                f"{r['wall_s']:.2f} ({r['wall_min']:.2f}-{r['wall_max']:.2f})",
                f"{r['startup_s']:.2f}",
                f"{r['extract_s']:.2f}",
                f"{r['load_s']:.2f}",
                f"{r['rows_per_s']:,.0f}",
                f"{r['peak_rss_mb']:.0f}",
                f"{r['rss_after_imports_mb']:.0f}",
                f"{r['working_set_mb']:.0f}",
                "yes" if r["exact_copy"] else "NO",
                f"{r['vs_chain']:.2f}x" if "vs_chain" in r else "",
                f"{r['wall_vs_chain']:.2f}x" if "wall_vs_chain" in r else "",
                "/".join(f"{x:.1f}" for x in r["load_average"]),
            ]
        )
    numeric = set(range(2, 12)) | {13, 14}
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body, strict=True)]
    line = "  ".join(
        h.rjust(w) if i in numeric else h.ljust(w) for i, (h, w) in enumerate(zip(header, widths, strict=True))
    )
    print(line)
    print("-" * len(line))
    for b in body:
        print(
            "  ".join(
                x.rjust(w) if i in numeric else x.ljust(w) for i, (x, w) in enumerate(zip(b, widths, strict=True))
            )
        )
    for r in rows:
        if "error" in r:
            print(f"\n{r['table']} / {r['contender']} failed:\n{r['error']}")


def evaluate_targets(rows: list[dict[str, Any]], sizes: list[int]) -> list[dict[str, Any]]:
    """Issue 16's targets, each evaluated against this run's medians (missing contenders are skipped)."""

    def get(rows_n: int, contender: str) -> dict[str, Any] | None:
        table = table_name(rows_n)
        found = next((r for r in rows if r["table"] == table and r["contender"] == contender), None)
        return found if found and "seconds" in found else None

    targets: list[dict[str, Any]] = []
    for n in sizes:
        label = fmt_rows(n)
        limit = get(n, "limit")
        # Issue 24: a first load by upsert (into the empty table) is as fast as a swap.
        for contender, bound in (("ours-swap", 0.8), ("ours-upsert", 0.8)):
            ours = get(n, contender)
            if ours and limit:
                ratio = ours["seconds"] / limit["seconds"]
                targets.append(
                    {
                        "target": f"{contender} work time <= {bound}x the chain @{label} (medians)",
                        "text": f"{ours['seconds']:.2f} s vs {limit['seconds']:.2f} s -> {ratio:.2f}x",
                        "value": ratio,
                        "ok": ratio <= bound,
                    }
                )
        for contender in ("ours-upsert", "ours-swap"):
            ours = get(n, contender)
            if ours:
                targets.append(
                    {
                        "target": f"{contender} working set <= 64 MB @{label}",
                        "text": f"{ours['working_set_mb']:.0f} MB (peak {ours['peak_rss_mb']:.0f} MB, "
                        f"{ours['rss_after_imports_mb']:.0f} MB after imports)",
                        "value": ours["working_set_mb"],
                        "ok": ours["working_set_mb"] <= 64,
                    }
                )
    targets.append(
        {
            "target": "every run copied exactly (row count + checksum of all columns)",
            "text": ", ".join(f"{r['contender']}@{r['table']}" for r in rows if not r.get("exact_copy")) or "all",
            "value": all(r.get("exact_copy") for r in rows),
            "ok": all(r.get("exact_copy") for r in rows),
        }
    )
    return targets
