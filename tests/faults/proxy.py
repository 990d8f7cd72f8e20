"""A TCP fault proxy for the fault tests: forwards 127.0.0.1:<ephemeral> to a real local server.

The MariaDB and SeaweedFS servers are shared with other engineers' tests, so a fault test must never
stop them. Instead the faulty side of a transfer connects through this proxy, and the test *cuts* it:
every open connection is closed in both directions and the listening socket is closed, so new
connections are refused (ECONNREFUSED) until ``restore()`` listens on the same port again. That is
what a client sees when its server process dies; the server itself sees a client that went away.

To hit "in the middle of" deterministically, a cut can be armed to fire after N bytes have passed in
one direction, or when a byte pattern (e.g. ``b"RENAME TABLE"``) is seen going to the server --
either before that chunk is forwarded (the server never gets it) or when the server answers it (the
server ran it, the answer is dropped: a lost acknowledgement).

A *stall* is the other fault (issue 11): the proxy stops forwarding on the connections open at that
moment, in both directions, without closing them -- a half-open connection after a failover, or a peer
that hangs. Neither side hears anything; only a timeout can end it. New connections are forwarded as
usual, as a client reconnecting after the failover would find the server. ``stalled_at`` records when
it fired (``time.monotonic()``), so a test can measure how long the client took to give up.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Literal

Direction = Literal["up", "down"]  # up: client -> server; down: server -> client


@dataclass
class _Trigger:
    direction: Direction
    after_bytes: int | None = None
    pattern: bytes | None = None
    forward_match: bool = False
    restore_after: float | None = None
    stall: bool = False
    seen: int = 0


@dataclass
class _Stats:
    connections: int = 0
    up_bytes: int = 0
    down_bytes: int = 0
    cuts: int = 0
    stalls: int = 0
    reasons: list[str] = field(default_factory=list)


class FaultProxy:
    """Forwards TCP connections to ``(host, port)``; ``cut()`` / ``restore()`` simulate a dead server."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.stats = _Stats()
        self._lock = threading.Lock()
        self._pairs: set[tuple[socket.socket, socket.socket]] = set()
        self._trigger: _Trigger | None = None
        self._ended: dict[tuple[socket.socket, socket.socket], int] = {}
        self._listener: socket.socket | None = None
        self._closed = False
        self._stalled: set[tuple[socket.socket, socket.socket]] = set()
        self._unstall = threading.Event()
        self.stalled_at: float | None = None
        self.port = 0
        self._listen()

    # --- public controls -------------------------------------------------------------------------

    @property
    def is_cut(self) -> bool:
        """Whether the proxy is refusing connections."""
        return self._listener is None

    def cut(self, reason: str = "cut by the test") -> None:
        """Close every connection and refuse new ones, as a stopped server would."""
        self._drop(reason, count=True)

    def _drop(self, reason: str, count: bool) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            pairs, self._pairs = self._pairs, set()
            self._trigger = None
            if listener is not None and count:
                self.stats.cuts += 1
                self.stats.reasons.append(reason)
        if listener is not None:
            _close(listener)
        for a, b in pairs:
            _close(a)
            _close(b)

    def restore(self) -> None:
        """Accept connections again, on the same port."""
        with self._lock:
            if self._listener is None and not self._closed:
                self._listen()

    def cut_after(self, n_bytes: int, direction: Direction = "up", *, restore_after: float | None = None) -> None:
        """Cut once ``n_bytes`` more bytes have passed in ``direction`` (over all connections).

        ``restore_after`` restores the proxy that many seconds after the cut, from a timer thread.
        """
        with self._lock:
            self._trigger = _Trigger(direction, after_bytes=n_bytes, restore_after=restore_after)

    def cut_on(self, pattern: bytes, *, forward: bool = False, restore_after: float | None = None) -> None:
        """Cut when ``pattern`` is sent to the server.

        With ``forward`` the server gets that chunk and the cut comes when its answer does, which is
        then dropped: the statement ran, the client never hears so (a lost acknowledgement).
        """
        with self._lock:
            self._trigger = _Trigger("up", pattern=pattern, forward_match=forward, restore_after=restore_after)

    def stall_after(self, n_bytes: int, direction: Direction = "up") -> None:
        """Stall the open connections once ``n_bytes`` more bytes have passed in ``direction``."""
        with self._lock:
            self._trigger = _Trigger(direction, after_bytes=n_bytes, stall=True)

    def stall_on(self, pattern: bytes) -> None:
        """Stall the open connections when ``pattern`` is sent to the server (that chunk is held back)."""
        with self._lock:
            self._trigger = _Trigger("up", pattern=pattern, stall=True)

    def stall(self, reason: str = "stalled by the test") -> None:
        """Stop forwarding on every open connection, keeping them open; new connections still work."""
        with self._lock:
            self._stalled |= self._pairs
            self._trigger = None
            self.stats.stalls += 1
            self.stats.reasons.append(reason)
            self.stalled_at = time.monotonic()

    def close(self) -> None:
        """Stop for good (test teardown): stalled connections are closed too."""
        self._closed = True
        self._unstall.set()
        self._drop("proxy closed", count=False)

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- machinery -------------------------------------------------------------------------------

    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), name=f"proxy-accept-{self.port}", daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # the listener was closed by cut()
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                _close(client)
                continue
            for s in (client, upstream):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                if self._listener is not listener:  # cut while connecting
                    _close(client)
                    _close(upstream)
                    return
                self._pairs.add((client, upstream))
                self.stats.connections += 1
            pair = (client, upstream)
            threading.Thread(target=self._pump, args=(client, upstream, "up", pair), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, "down", pair), daemon=True).start()

    def _pump(
        self, src: socket.socket, dst: socket.socket, direction: Direction, pair: tuple[socket.socket, socket.socket]
    ) -> None:
        tail = b""
        try:
            while True:
                if pair in self._stalled:
                    self._hold(pair)
                    break
                data = src.recv(65536)
                if not data:
                    break
                if pair in self._stalled:
                    self._hold(pair)
                    break
                fire, forward = self._check(direction, data, tail)
                if fire is not None and fire.stall:
                    self._fire(fire)
                    self._hold(pair)
                    break
                if fire is not None and forward:
                    with self._lock:  # armed before forwarding, so even a quick answer is dropped
                        self._trigger = _Trigger("down", after_bytes=1, restore_after=fire.restore_after)
                    dst.sendall(data)
                    fire = None
                elif fire is None:
                    dst.sendall(data)
                if fire is not None:
                    self._fire(fire)
                    return
                tail = data[-64:]
                with self._lock:
                    if direction == "up":
                        self.stats.up_bytes += len(data)
                    else:
                        self.stats.down_bytes += len(data)
        except OSError:
            pass
        finally:
            # One side ended: end the other too, as TCP would between a client and a server; the
            # second pump to finish closes both sockets.
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)
            with self._lock:
                self._ended[pair] = self._ended.get(pair, 0) + 1
                last = self._ended[pair] == 2
                if last:
                    del self._ended[pair]
                    self._pairs.discard(pair)
            if last:
                _close(src)
                _close(dst)

    def _hold(self, pair: tuple[socket.socket, socket.socket]) -> None:
        """Forward nothing more, read nothing more, close nothing: until the proxy closes."""
        self._unstall.wait()

    def _check(self, direction: Direction, data: bytes, tail: bytes) -> tuple[_Trigger | None, bool]:
        with self._lock:
            trigger = self._trigger
            if trigger is None or trigger.direction != direction:
                return None, False
            if trigger.pattern is not None:
                if trigger.pattern in tail + data:
                    self._trigger = None
                    return trigger, trigger.forward_match
                return None, False
            assert trigger.after_bytes is not None
            trigger.seen += len(data)
            if trigger.seen >= trigger.after_bytes:
                self._trigger = None
                return trigger, False
            return None, False

    def _fire(self, trigger: _Trigger) -> None:
        what = f"pattern {trigger.pattern!r}" if trigger.pattern else f"{trigger.after_bytes} bytes {trigger.direction}"
        if trigger.stall:
            self.stall(f"stalled after {what}")
            return
        self.cut(f"triggered after {what}")
        if trigger.restore_after is not None:
            timer = threading.Timer(trigger.restore_after, self.restore)
            timer.daemon = True
            timer.start()


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
