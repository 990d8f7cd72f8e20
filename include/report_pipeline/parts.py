"""CSV parts: a row stream cut into parts on row boundaries, compressed and uploaded in the background.

The extract hands ``PartCutter`` its formatted rows and ``PartUploader`` what the cutter returns; the
uploader's bounded queues are what keeps an extract's memory fixed (README "What bounds memory").
"""

from __future__ import annotations

import hashlib
import queue
import threading
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from report_pipeline.manifest import Part
from report_pipeline.storage import Bucket

BLOCK_BYTES = 2 * 1024 * 1024
BLOCK_QUEUE = 4
UPLOADS_IN_FLIGHT = 2

Block = bytes | tuple[str, int]


class PartCutter:
    """Cuts a stream of CSV lines into parts of about ``part_bytes``, always on row boundaries.

    ``add`` and ``finish`` return what to hand the uploader: blocks of CSV bytes, and after the last
    block of each part a ``(key, rows)`` marker that closes it. An empty result is one empty part, so
    every extract has at least one part to list.
    """

    def __init__(self, part_bytes: int, key_of: Callable[[int], str]) -> None:
        self.part_bytes = part_bytes
        self.key_of = key_of
        self.index = 0
        self.rows = 0
        self.bytes = 0

    def add(self, lines: Sequence[bytes]) -> list[Block]:
        """Blocks and part markers for these lines (each without its line end)."""
        if not lines:
            return []
        batch_bytes = sum(map(len, lines)) + len(lines)
        if self.bytes + batch_bytes < self.part_bytes:
            # The common case: the whole batch fits in the current part, no per-row work.
            self.rows += len(lines)
            self.bytes += batch_bytes
            return [b"\n".join(lines) + b"\n"]
        out: list[Block] = []
        start = 0
        while start < len(lines):
            end, size = start, 0
            room = self.part_bytes - self.bytes
            while end < len(lines) and size < room:
                size += len(lines[end]) + 1
                end += 1
            out.append(b"\n".join(lines[start:end]) + b"\n")
            self.rows += end - start
            self.bytes += size
            start = end
            if self.bytes >= self.part_bytes:
                out.append(self._close())
        return out

    def finish(self) -> list[Block]:
        """The marker of the last, partly filled part (or of the one empty part of an empty result)."""
        return [self._close()] if self.rows or self.index == 0 else []

    def _close(self) -> tuple[str, int]:
        marker = (self.key_of(self.index), self.rows)
        self.index, self.rows, self.bytes = self.index + 1, 0, 0
        return marker


class PartUploader:
    """Compresses and uploads parts on background threads, so the fetch loop never waits on S3.

    The fetch loop hands over CSV bytes in blocks; a compressor thread feeds them to zlib (which
    releases the GIL) and, at the end of each part, hands the finished object to an upload pool.
    Queues are bounded, so memory stays at a few compressed parts whatever the table size.
    """

    def __init__(self, bucket: Bucket, compress: bool) -> None:
        self.bucket = bucket
        self.compress = compress
        # Memory bound (README "What bounds memory"): BLOCK_QUEUE blocks of ~BLOCK_BYTES waiting, one
        # part being compressed, and at most UPLOADS_IN_FLIGHT finished parts held for their PUT.
        self.blocks: queue.Queue[Block | None] = queue.Queue(maxsize=BLOCK_QUEUE)
        self.uploads = ThreadPoolExecutor(max_workers=UPLOADS_IN_FLIGHT, thread_name_prefix="rp-upload")
        self.in_flight = threading.BoundedSemaphore(UPLOADS_IN_FLIGHT)
        self.futures: list[Future[Part]] = []
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="rp-compress", daemon=True)
        self.thread.start()

    def _new_compressor(self) -> Any:
        return zlib.compressobj(1, zlib.DEFLATED, 31) if self.compress else None

    def _run(self) -> None:
        compressor = self._new_compressor()
        pieces: list[bytes] = []
        size = 0
        try:
            while True:
                item = self.blocks.get()
                if item is None:
                    return
                if isinstance(item, tuple):
                    key, rows = item
                    if compressor is not None:
                        pieces.append(compressor.flush())
                    body = b"".join(pieces)
                    pieces, csv_bytes, size = [], size, 0
                    compressor = self._new_compressor()
                    self.in_flight.acquire()
                    future = self.uploads.submit(self._upload, key, body, rows, csv_bytes)
                    # Released by a callback, not by the upload, so a cancelled upload frees its slot too.
                    future.add_done_callback(lambda _: self.in_flight.release())
                    future.add_done_callback(self._note_failure)
                    self.futures.append(future)
                    continue
                size += len(item)
                pieces.append(compressor.compress(item) if compressor is not None else item)
        except BaseException as exc:  # noqa: BLE001 - handed to the fetch loop, which re-raises it
            if self.error is None:
                self.error = exc
            while self.blocks.get() is not None:  # drain so the producer never blocks forever
                pass

    def _note_failure(self, future: Future[Part]) -> None:
        # A failed upload stops the fetch loop at its next block, instead of after the whole query.
        if self.error is None and not future.cancelled() and future.exception() is not None:
            self.error = future.exception()

    def _upload(self, key: str, body: bytes, rows: int, csv_bytes: int) -> Part:
        self.bucket.put(key, body, "application/gzip" if self.compress else "text/csv")
        return Part(key, rows, csv_bytes, len(body), hashlib.sha256(body).hexdigest())

    def send(self, item: Block) -> None:
        if self.error is not None:
            raise self.error
        self.blocks.put(item)

    def finish(self) -> list[Part]:
        self.blocks.put(None)
        self.thread.join()
        try:
            if self.error is not None:
                raise self.error
            return [f.result() for f in self.futures]
        finally:
            self.uploads.shutdown(wait=True)

    def abandon(self) -> None:
        """Stop after a failure: no new uploads start, and every thread has ended when this returns."""
        self.uploads.shutdown(wait=False, cancel_futures=True)
        self.blocks.put(None)
        self.thread.join()
        self.uploads.shutdown(wait=True)
