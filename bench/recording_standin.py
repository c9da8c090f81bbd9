"""An SMS.ru stand-in that notes when each message reached it, by phone: the lateness bench's clock of record.

It speaks the same wire format as bench/dispatch.py's stand-in (`POST /sms/send`, json=1, answered after
`delay` seconds like a real provider) and runs in its own process, so that its timestamps are not held up by
our interpreter. The time noted is the moment the request was read, before the delay: when the message left
us, whatever our own ledger says. `GET /arrivals?prefix=7916` returns {phone digits: first arrival (Unix
seconds)} and how many sends repeated a phone already seen.
"""

from __future__ import annotations

import json
import multiprocessing
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import requests


class _Log:
    """First arrival per phone; repeats counted (a job sent twice would show here)."""

    def __init__(self) -> None:
        self.first: dict[str, float] = {}
        self.repeats = 0
        self.lock = threading.Lock()

    def note(self, phone: str, at: float) -> None:
        with self.lock:
            if phone in self.first:
                self.repeats += 1
            else:
                self.first[phone] = at

    def since(self, prefix: str) -> dict:
        with self.lock:
            return {"arrivals": {p: t for p, t in self.first.items() if p.startswith(prefix)},
                    "repeats": self.repeats}


def _handler(log: _Log, delay: float) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # else headers and body go as two segments and wait on delayed ACKs

        def do_POST(self):  # noqa: N802 (the stdlib's name)
            form = parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
            to = form.get("to", [""])[0]
            if urlparse(self.path).path == "/sms/send":
                log.note(to, time.time())
            if delay:
                time.sleep(delay)
            self._json({"status": "OK", "status_code": 100, "balance": 1000.0,
                        "sms": {to: {"status": "OK", "status_code": 100, "sms_id": uuid.uuid4().hex}}})

        def do_GET(self):  # noqa: N802
            url = urlparse(self.path)
            self._json(log.since(parse_qs(url.query).get("prefix", [""])[0]))

        def _json(self, payload: dict) -> None:
            body = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    return Handler


def _serve(port_queue, delay: float) -> None:
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.request_queue_size = 256
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(_Log(), delay))
    port_queue.put(server.server_address[1])
    server.serve_forever()


def start_recording_standin(delay: float) -> tuple[multiprocessing.Process, str]:
    """The stand-in's process (terminate it when done) and its base URL."""
    queue: multiprocessing.Queue = multiprocessing.Queue()
    process = multiprocessing.Process(target=_serve, args=(queue, delay), daemon=True)
    process.start()
    return process, f"http://127.0.0.1:{queue.get(timeout=10)}"


def arrivals(base_url: str, prefix: str) -> tuple[dict[str, float], int]:
    """{phone digits: first arrival} for phones starting with `prefix`, and the repeats seen so far (all phones)."""
    answer = requests.get(f"{base_url}/arrivals", params={"prefix": prefix}, timeout=10)
    answer.raise_for_status()
    body = answer.json()
    return body["arrivals"], body["repeats"]
