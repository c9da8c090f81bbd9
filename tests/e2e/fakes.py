"""Small local stand-ins for Wahelp and SMS.ru that speak their wire formats, callbacks included."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import requests


class FakeServer:
    """A threaded HTTP server; `route(method, path) -> (status, body, content_type)` answers each request."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.requests.append(("POST", self.path, dict(self.headers), body))
                status, payload, content_type = outer.route("POST", urlparse(self.path).path, dict(self.headers),
                                                            body)
                data = payload if isinstance(payload, bytes) else json.dumps(payload, ensure_ascii=False).encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def route(self, method, path, headers, body):  # pragma: no cover - overridden
        return 404, {"error": "not found"}, "application/json"

    def later(self, seconds: float, action: Callable[[], None]) -> None:
        def run():
            time.sleep(seconds)
            action()

        threading.Thread(target=run, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


class FakeWahelp(FakeServer):
    """MAX: the number is not in MAX. Telegram: accepted, never delivered. WhatsApp: accepted, then failed."""

    def __init__(self, project: str, uuids: dict[str, str], secret: str):
        super().__init__()
        self.project, self.uuids, self.secret = project, uuids, secret
        self.callback_url: str | None = None
        self.logins = 0

    def route(self, method, path, headers, body):
        if path == "/api/app/user/login":
            self.logins += 1
            return 200, {"success": True, "data": {"access_token": "tok-1", "token_type": "bearer"}}, "application/json"
        prefix = f"/api/app/projects/{self.project}/channels/"
        if not path.startswith(prefix) or headers.get("X-Project") != self.project:
            return 404, {"success": False, "message": "Not found"}, "application/json"
        if headers.get("Authorization") != "Bearer tok-1":
            return 401, {"success": False, "message": "Unauthenticated."}, "application/json"
        channel_uuid, _, rest = path.removeprefix(prefix).partition("/")
        channel = {v: k for k, v in self.uuids.items()}[channel_uuid]
        if rest == "users":
            if channel == "max":
                return 422, {"success": False, "message": "Номер не зарегистрирован в MAX"}, "application/json"
            return 200, {"success": True, "data": {"id": 501}}, "application/json"
        if rest.startswith("send_message/"):
            message_id = f"wh-{uuid.uuid4().hex[:8]}"
            if channel == "whatsapp":
                self.later(0.5, lambda: self._status(message_id, "failed"))
            return 200, {"success": True, "data": {"id": message_id, "status": "sent"}}, "application/json"
        return 404, {"success": False}, "application/json"

    def _status(self, message_id: str, status: str) -> None:
        requests.post(f"{self.callback_url}?secret={self.secret}", timeout=5,
                      json={"event": "channel.message.updated", "data": {"id": message_id, "status": status}})


class FakeSmsRu(FakeServer):
    """Accepts every SMS (code 100) and reports it delivered (103) by callback shortly after."""

    def __init__(self, api_id: str, secret: str):
        super().__init__()
        self.api_id, self.secret = api_id, secret
        self.callback_url: str | None = None
        self.sent: list[dict[str, str]] = []

    def route(self, method, path, headers, body):
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        if form.get("api_id") != self.api_id:
            error = {"status": "ERROR", "status_code": 200, "status_text": "Неправильный api_id"}
            return 200, error, "application/json"
        if path == "/sms/send":
            self.sent.append(form)
            sms_id = f"{uuid.uuid4().int % 10**12:012d}"
            self.later(0.5, lambda: self._delivered(sms_id))
            answer = {"status": "OK", "status_code": 100, "balance": 100.5,
                      "sms": {form["to"]: {"status": "OK", "status_code": 100, "sms_id": sms_id}}}
            return 200, answer, "application/json"
        return 404, {"status": "ERROR"}, "application/json"

    def _delivered(self, sms_id: str) -> None:
        record = f"sms_status\n{sms_id}\n103\n{int(time.time())}"
        requests.post(f"{self.callback_url}?secret={self.secret}", data={"data[0]": record}, timeout=5)
