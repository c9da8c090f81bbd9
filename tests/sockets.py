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
