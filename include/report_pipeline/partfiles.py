"""Parts in S3 -> verified local files for the bulk load, a few downloading ahead while earlier ones load.

Parts are streamed exactly as the manifests list them (checksums verified, gzip inflated in bounded steps),
so memory stays small however large a part is.
"""

from __future__ import annotations

import hashlib
import os
import zlib
from collections import deque
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from report_pipeline.errors import TransferError
from report_pipeline.manifest import Manifest, Part
from report_pipeline.storage import Bucket

_INFLATE_STEP = 4 * 1024 * 1024


def _fetch_part(bucket: Bucket, part: Part, compressed: bool, directory: str) -> str:
    """Stream one part to a local file, uncompressed, for the bulk load; verified against the manifest.

    Memory stays at one download piece plus at most ``_INFLATE_STEP`` of inflated output, however
    large the part or well it compresses.
    """
    path = os.path.join(directory, hashlib.sha1(part.key.encode()).hexdigest() + ".csv")
    with open(path, "wb") as out:
        if compressed:
            inflater = zlib.decompressobj(31)

            def write(piece: bytes) -> None:
                data = piece
                while data:
                    out.write(inflater.decompress(data, _INFLATE_STEP))
                    data = inflater.unconsumed_tail

            bucket.download_checked(part.key, part.sha256, write)
            out.write(inflater.flush())
        else:
            bucket.download_checked(part.key, part.sha256, out.write)
    if os.path.getsize(path) != part.csv_bytes:
        raise TransferError(f"{part.key}: {os.path.getsize(path)} CSV bytes, manifest says {part.csv_bytes}")
    return path


def key_parts(manifest: Manifest) -> Sequence[Part]:
    return manifest.keys.parts if manifest.keys else ()


def local_parts(
    bucket: Bucket,
    manifests: Sequence[Manifest],
    directory: str,
    ahead: int = 1,
    parts_of: Callable[[Manifest], Sequence[Part]] = lambda m: m.parts,
) -> Generator[tuple[Part, str], None, None]:
    """Each non-empty part as a verified local file, in manifest order, ``ahead`` downloading meanwhile.

    The consumer owns a file once it is handed over and removes it when loaded, so at most
    ``ahead`` + (files being loaded) are on disk. Closing the generator cancels downloads not started
    and waits for the running ones, so nothing writes into ``directory`` after it returns.
    """
    work = [(p, m.compression == "gzip") for m in manifests for p in parts_of(m) if p.rows]
    pool = ThreadPoolExecutor(max(1, ahead), thread_name_prefix="rp-fetch")
    pending: deque[tuple[Part, Future[str]]] = deque()
    following = iter(work)
    try:

        def top_up() -> None:
            while len(pending) < max(1, ahead):
                item = next(following, None)
                if item is None:
                    return
                pending.append((item[0], pool.submit(_fetch_part, bucket, item[0], item[1], directory)))

        top_up()
        while pending:
            part, future = pending.popleft()
            path = future.result()
            top_up()
            yield part, path
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
