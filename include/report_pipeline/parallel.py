"""Loading parts over several target sessions at once (a table no reader sees yet, e.g. a swap's shadow)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor

from report_pipeline.manifest import Part
from report_pipeline.target import Target


def load_in_parallel(
    target: Target, sessions: int, parts: Iterable[tuple[Part, str]], load_one: Callable[[Target, Part, str], int]
) -> int:
    """Load parts over ``sessions`` target sessions at once (``target`` plus forks of it); rows loaded.

    Each session takes the next part as it finishes one. The first failure stops the others from
    taking more (each ends the part it is loading, at most one part's time) and is raised as it was,
    so the load fails with that part's error. Every forked session is closed before this returns.
    """
    source: Iterator[tuple[Part, str]] = iter(parts)
    lock = threading.Lock()
    failed = threading.Event()
    errors: list[BaseException] = []

    def take() -> tuple[Part, str] | None:
        # The part iterator is a generator: one thread at a time may advance it.
        with lock:
            return None if failed.is_set() else next(source, None)

    def work(session: Target) -> int:
        count = 0
        try:
            while (item := take()) is not None:
                count += load_one(session, *item)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller, which raises the first
            with lock:
                errors.append(exc)
            failed.set()
        return count

    forks: list[Target] = []
    try:
        for _ in range(sessions - 1):
            forks.append(target.fork())
        with ThreadPoolExecutor(len(forks) + 1, thread_name_prefix="rp-load") as pool:
            futures = [pool.submit(work, s) for s in (target, *forks)]
            loaded = sum(f.result() for f in futures)
    finally:
        for fork in forks:
            fork.close()
    if errors:
        raise errors[0]
    return loaded
