"""A real OpenLDAP server for the directory tests: Debian's `slapd` with a throwaway config and database
in a temporary folder, loaded from an LDIF of people and groups, on a free loopback port.

The directory (dc=example,dc=org):
- people under ou=people: alice (admin group, team "Databases"), bob (team "Web"), carol (no email),
  dave (a phone number); every password is "<uid>-pass".
- groups under ou=groups (groupOfNames): cn=openduty-admins, cn=team-databases, cn=team-web.
- the service account cn=openduty,ou=services (password "service-pass") that may read everything.
"""

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import ldap3

from tests.processes import free_port, self_signed_certificate, wait_for

BASE = "dc=example,dc=org"
PEOPLE = f"ou=people,{BASE}"
GROUPS = f"ou=groups,{BASE}"
ADMINS = f"cn=openduty-admins,{GROUPS}"
SERVICE_DN = f"cn=openduty,ou=services,{BASE}"
SERVICE_PASSWORD = "service-pass"
ROOT_DN = f"cn=admin,{BASE}"
ROOT_PASSWORD = "root-pass"
SCHEMAS = ("core", "cosine", "inetorgperson", "nis")

PEOPLE_ROWS = {
    "alice": {"cn": "Alice Liddell", "mail": "alice@example.org"},
    "bob": {"cn": "Bob Builder", "mail": "bob@example.org"},
    "carol": {"cn": "Carol Noemail"},
    "dave": {"cn": "Dave Phone", "mail": "dave@example.org", "telephoneNumber": "+14155550123"},
}
GROUP_ROWS = {"openduty-admins": ["alice"], "team-databases": ["alice", "dave"], "team-web": ["bob"]}


def slapd_binary() -> str | None:
    return shutil.which("slapd") or ("/usr/sbin/slapd" if Path("/usr/sbin/slapd").exists() else None)


def person_dn(uid: str) -> str:
    return f"uid={uid},{PEOPLE}"


def _ldif() -> str:
    blocks = [
        f"dn: {BASE}\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example",
        f"dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people",
        f"dn: {GROUPS}\nobjectClass: organizationalUnit\nou: groups",
        f"dn: ou=services,{BASE}\nobjectClass: organizationalUnit\nou: services",
        f"dn: {SERVICE_DN}\nobjectClass: person\ncn: openduty\nsn: openduty\nuserPassword: {SERVICE_PASSWORD}",
    ]
    for uid, attrs in PEOPLE_ROWS.items():
        lines = [f"dn: {person_dn(uid)}", "objectClass: inetOrgPerson", f"uid: {uid}", f"sn: {uid}"]
        lines += [f"{name}: {value}" for name, value in attrs.items()]
        lines.append(f"userPassword: {uid}-pass")
        blocks.append("\n".join(lines))
    for cn, members in GROUP_ROWS.items():
        lines = [f"dn: cn={cn},{GROUPS}", "objectClass: groupOfNames", f"cn: {cn}"]
        # groupOfNames needs a member: the root DN stays in each, so tests may remove every person.
        lines += [f"member: {dn}" for dn in [ROOT_DN, *map(person_dn, members)]]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def _config(folder: Path) -> str:
    includes = "\n".join(f"include /etc/ldap/schema/{name}.schema" for name in SCHEMAS)
    return f"""{includes}
TLSCertificateFile {folder}/cert.pem
TLSCertificateKeyFile {folder}/cert.key
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile {folder}/slapd.pid
database mdb
maxsize 10485760
suffix "{BASE}"
rootdn "{ROOT_DN}"
rootpw {ROOT_PASSWORD}
directory {folder}/db
access to attrs=userPassword by self read by anonymous auth by * none
access to * by dn.exact="{SERVICE_DN}" read by users read by anonymous read
"""


class Slapd:
    """slapd in a temporary folder: `url` (ldap://, StartTLS offered) and `ldaps_url` on free ports,
    with a throwaway self-signed certificate for 127.0.0.1 (`ca_file`); `stop()` / `start()` take it
    away and bring it back (the data stays); `admin()` is a root connection to change entries."""

    def __init__(self):
        self.folder = Path(tempfile.mkdtemp(prefix="openduty-slapd-"))
        self.port, self.ldaps_port = free_port(), free_port()
        self.url = f"ldap://127.0.0.1:{self.port}"
        self.ldaps_url = f"ldaps://127.0.0.1:{self.ldaps_port}"
        self.process: subprocess.Popen | None = None
        (self.folder / "db").mkdir()
        self.ca_file = str(self_signed_certificate(self.folder)[0])
        (self.folder / "slapd.conf").write_text(_config(self.folder))
        (self.folder / "data.ldif").write_text(_ldif())
        slapadd = Path(slapd_binary()).with_name("slapadd")
        subprocess.run(
            [str(slapadd), "-f", str(self.folder / "slapd.conf"), "-l", str(self.folder / "data.ldif")],
            check=True,
            capture_output=True,
        )

    def start(self) -> None:
        with open(self.folder / "slapd.log", "ab") as log:  # the child keeps its own copy of the handle
            listen = f"{self.url}/ {self.ldaps_url}/"
            self.process = subprocess.Popen(
                [slapd_binary(), "-f", str(self.folder / "slapd.conf"), "-h", listen, "-d", "0"],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for(self._answers, "slapd to answer", timeout=20)

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None
            time.sleep(0.05)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    @contextmanager
    def admin(self) -> Iterator[ldap3.Connection]:
        """A root connection, to change the directory under the app's feet."""
        connection = ldap3.Connection(ldap3.Server(self.url), ROOT_DN, ROOT_PASSWORD, auto_bind=True)
        try:
            yield connection
        finally:
            connection.unbind()
