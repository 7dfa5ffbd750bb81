"""A real XMPP server for the XMPP channel's tests: Debian's `prosody` with a throwaway config and data
folder, on a free loopback port, and a recipient client that collects the chat messages it receives.

The server (virtual host xmpp.test) has two accounts: openduty@xmpp.test (the sender, password
"sender-pass") and bob@xmpp.test (the recipient, "bob-pass"). There is no certificate: the stream
stays plain on loopback and logins use SCRAM, which needs no TLS.
"""

import json
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.processes import free_port, wait_for

DOMAIN = "xmpp.test"
SENDER, SENDER_PASSWORD = f"openduty@{DOMAIN}", "sender-pass"
RECIPIENT, RECIPIENT_PASSWORD = f"bob@{DOMAIN}", "bob-pass"

CONFIG = """
pidfile = "{folder}/prosody.pid"
data_path = "{folder}/data"
certificates = "{folder}/certs"
daemonize = false
run_as_root = true
log = {{ info = "{folder}/prosody.log" }}
modules_enabled = {{ "roster", "saslauth", "disco", "ping", "posix" }}
modules_disabled = {{ "s2s" }}
c2s_ports = {{ {port} }}
c2s_interfaces = {{ "127.0.0.1" }}
c2s_direct_tls_ports = {{}}
legacy_ssl_ports = {{}}
s2s_ports = {{}}
c2s_require_encryption = false
authentication = "internal_hashed"
storage = "internal"
VirtualHost "{domain}"
"""


def prosody_binary() -> str | None:
    return shutil.which("prosody") or ("/usr/bin/prosody" if Path("/usr/bin/prosody").exists() else None)


@dataclass
class XmppServer:
    port: int
    folder: Path
    received: list[str] = field(default_factory=list)

    def log(self) -> str:
        path = self.folder / "prosody.log"
        return path.read_text() if path.exists() else ""


@contextmanager
def prosody_server(folder: Path) -> Iterator[XmppServer]:
    """Start prosody in `folder` with the two accounts; stop it on the way out."""
    port = free_port()
    config = folder / "prosody.cfg.lua"
    (folder / "data").mkdir()
    (folder / "certs").mkdir()
    config.write_text(CONFIG.format(folder=folder, port=port, domain=DOMAIN))
    for jid, password in ((SENDER, SENDER_PASSWORD), (RECIPIENT, RECIPIENT_PASSWORD)):
        user = jid.split("@")[0]
        subprocess.run(
            ["prosodyctl", "--config", str(config), "register", user, DOMAIN, password],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
    process = subprocess.Popen(
        [prosody_binary(), "--config", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    server = XmppServer(port, folder)
    try:
        wait_for(lambda: "Activated service 'c2s'" in server.log(), timeout=30, what="prosody to listen")
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


RECIPIENT_SCRIPT = """
import asyncio, json, sys
import slixmpp

client = slixmpp.ClientXMPP(sys.argv[1], sys.argv[2], plugin_config={"feature_mechanisms": {"unencrypted_scram": True}})
client.add_event_handler("session_start", lambda event: (client.send_presence(), print("ONLINE", flush=True)))
client.add_event_handler("message", lambda msg: print(json.dumps(str(msg["body"])), flush=True))
client.connect("127.0.0.1", int(sys.argv[3]))
asyncio.get_event_loop().run_forever()
"""


@contextmanager
def recipient(server: XmppServer) -> Iterator[list[str]]:
    """Bob, online on `server` in a process of his own: yields the list his chat messages' bodies land in.
    (A process, not a thread: slixmpp in a second thread of the test process trips CPython 3.11's
    not-thread-safe AST state, and every later compile in the process fails.)"""
    args = [sys.executable, "-c", RECIPIENT_SCRIPT, RECIPIENT, RECIPIENT_PASSWORD, str(server.port)]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    bodies: list[str] = []
    online = threading.Event()

    def read() -> None:
        for line in process.stdout:
            if line.startswith("ONLINE"):
                online.set()
            else:
                bodies.append(json.loads(line))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        if not online.wait(30):
            raise RuntimeError(f"bob could not log in to prosody:\n{server.log()[-2000:]}")
        yield bodies
    finally:
        process.kill()
        process.wait()
        reader.join(10)
        process.stdout.close()
