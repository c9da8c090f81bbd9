"""Small socket servers that misbehave the ways a provider's network does, to produce requests' real exceptions:
a server that takes the request and never answers, hangs up, resets, cuts its answer short or stalls in the body;
a closed port; a listener whose accept queue is full (connect timeout). Fixtures: tests/integration/conftest.py."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

Behaviour = Callable[[socket.socket], None]


def read_request(conn: socket.socket) -> None:
    """Read one HTTP request to its end (headers, then Content-Length bytes of body): the request is taken."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return
        body += chunk


def silent(conn: socket.socket) -> None:
    read_request(conn)
    time.sleep(2)  # the request is taken; the answer never comes (the client's read timeout is shorter)


def hang_up(conn: socket.socket) -> None:
    read_request(conn)  # taken, then the connection is closed without a word (RemoteDisconnected)


def reset(conn: socket.socket) -> None:
    read_request(conn)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # the close sends an RST


def cut_short(conn: socket.socket) -> None:
    read_request(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"ok\":")


def stall_body(conn: socket.socket) -> None:
    read_request(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
    time.sleep(2)  # the status came, the body does not: requests calls this read timeout a ConnectionError


@contextmanager
def serving(behaviour: Behaviour) -> Iterator[str]:
    """http://127.0.0.1:<port> of a thread that treats every connection with `behaviour`, one at a time."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # the listener was closed: the test is over
            with conn:
                behaviour(conn)

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()


def closed_port() -> str:
    """http://127.0.0.1:<port> where nothing listens any more: connection refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@contextmanager
def full_backlog() -> Iterator[str]:
    """A listener that never accepts, its accept queue full: Linux drops the next SYN, so connecting times out."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(4):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            fillers.append(filler)
        time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


class TcpProxy:
    """127.0.0.1:<port> forwarding every connection to `target` (a database server), byte for byte. `arm(down_for)`
    drops every connection through it at the next bytes a client sends (a statement in flight gets no answer)
    and then, for `down_for` seconds, hangs up on every new one: the network between a worker and its
    database failing for a while."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.armed, self.down_until, self.cuts = None, 0.0, 0
        self.down_for = 0.0
        self.lock = threading.Lock()
        self.open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def arm(self, down_for: float) -> None:
        self.armed, self.down_for = True, down_for

    def close(self) -> None:
        self.listener.close()
        self._drop()

    def _drop(self) -> None:
        with self.lock:
            for conn in self.open:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                conn.close()
            self.open.clear()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if time.monotonic() < self.down_until:
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            with self.lock:
                self.open += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, from_client: bool) -> None:
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                return
            if not data:
                return
            if from_client and self.armed:
                self.armed, self.down_until, self.cuts = False, time.monotonic() + self.down_for, self.cuts + 1
                self._drop()
                return
            try:
                sink.sendall(data)
            except OSError:
                return
