"""Stands in on the app's port while start.sh builds the server's environment on the share (the first
start with new requirements can take many minutes on a GPU replica). It answers the startup and
liveness probes' `/live` with 200, so Container Apps does not kill a replica that is installing, and
everything else, the readiness probe's `/health` included, with 503 and Retry-After, so no traffic is
routed to it. Standard library only: the environment is not there yet."""
from __future__ import annotations

import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        alive = self.path.split("?", 1)[0] == "/live"
        body = json.dumps({"status": "installing", "detail": "building the server's environment on the share; "
                           "later starts reuse it"}).encode()
        self.send_response(200 if alive else 503)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if not alive:
            self.send_header("Retry-After", "30")
        self.end_headers()
        self.wfile.write(body)

    do_HEAD = do_POST = do_GET

    def log_message(self, format: str, *args) -> None:  # the probes would fill the log stream
        pass


def main() -> None:
    server = ThreadingHTTPServer((os.environ.get("HOST", "0.0.0.0"), int(os.environ.get("PORT", "7860"))), Handler)
    server.serve_forever()


if __name__ == "__main__":
    main()
