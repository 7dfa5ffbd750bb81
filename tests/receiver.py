"""A webhook receiver that records every page it reads (http.server, threads), to count pages:
received, duplicated, lost and how late. The fault runs (tests/faults.py) and the soak
(tests/soak.py) point users' webhook contact methods at it.
"""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.processes import free_port


class Receiver:
    """A webhook receiver recording every page it reads: when, which path, event, incident number.

    `down()` closes its socket (connections are refused) and `up()` reopens it on the same port;
    `failing = True` answers 500; `slow[path] = s` waits s seconds before answering on that path.
    A page counts as received when its request was read whole and answered 2xx (or would have
    been: a client that gave up waiting still delivered it).
    """

    def __init__(self):
        self.port = free_port()
        self.received: list[tuple[float, str, str, int]] = []
        self.in_flight = 0
        self.failing = False
        self.slow: dict[str, float] = {}
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None
        self.up()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def up(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if receiver.failing:
                    self.send_response(500)
                    self.end_headers()
                    return
                now = time.time()
                numbers = [i["number"] for i in body.get("incidents", [])]
                with receiver.lock:
                    receiver.received.extend((now, self.path, body["event"], n) for n in numbers)
                    receiver.in_flight += 1
                try:
                    time.sleep(receiver.slow.get(self.path, 0))
                    self.send_response(204)
                    self.end_headers()
                except OSError:
                    pass  # the sender gave up waiting: the page was still delivered
                finally:
                    with receiver.lock:
                        receiver.in_flight -= 1

            def log_message(self, *args):
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def down(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def pages(self, since: float) -> list[tuple[float, str, str, int]]:
        with self.lock:
            return [r for r in self.received if r[0] >= since]
