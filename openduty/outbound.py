"""The outbound-request policy: every request to a destination a user chose goes through here.

Webhook, Slack and Apprise contact methods and iCal layer URLs name servers that members choose,
so the server must not become their way into the internal network. Under `guard(policy)`:

- every TCP connection urllib3 opens (ours, and Apprise's through requests) resolves the host once,
  refuses loopback, private, link-local, multicast, reserved and other non-public addresses (also
  inside IPv4-mapped, 6to4, Teredo and NAT64 IPv6 addresses), and connects to exactly the address
  it checked, so DNS rebinding cannot swap it; redirects are new connections, checked the same way;
- `OUTBOUND_ALLOWED_NETWORKS` (admin setting, CIDR list, empty by default) opens chosen networks;
- `request()` adds the limits: connect and read timeouts, a total deadline enforced by closing the
  sockets, a cap on the response body, no environment proxies; its errors are short reasons safe to
  show anyone ("HTTP 500", "refused: address 10.0.0.5 is private", "timed out after 10 s"),
  never the remote body nor a socket error text (those map ports and services).

Servers the operator configures (SMTP_HOST, TWILIO_BASE_URL, PUSHOVER_BASE_URL, the XMPP server)
are not user input: they are called with `OPERATOR`, which checks no address but keeps the limits.
"""

import contextvars
import ipaddress
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import requests
from urllib3 import poolmanager
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError

# Seconds to connect, to wait for each read, and for the whole exchange: a page is worth waiting
# for, not forever (the total bounds a receiver that drips its answer).
CONNECT_TIMEOUT = 5
READ_TIMEOUT = 10
TOTAL_TIMEOUT = 20
# Bytes of a response that are read at most (receipts are small; nothing else is kept).
MAX_RESPONSE_BYTES = 64 * 1024
MAX_REDIRECTS = 5

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# (attribute, word) in the order a reason is named: 127.0.0.1 is "loopback" before "private".
_CLASSES = (
    ("is_unspecified", "unspecified"),
    ("is_loopback", "loopback"),
    ("is_link_local", "link-local"),
    ("is_multicast", "multicast"),
    ("is_reserved", "reserved"),
    ("is_private", "private"),
)


class OutboundError(Exception):
    """A request to a destination failed. The message is a short reason, safe to show anyone.

    `unconfirmed`: the request went out but no (whole) answer came in time, so it may have arrived.
    """

    def __init__(self, reason: str, transient: bool, unconfirmed: bool = False):
        super().__init__(reason)
        self.transient = transient
        self.unconfirmed = unconfirmed


class Refused(OutboundError):
    """The policy refuses the destination (retrying cannot help until an admin allows it)."""

    def __init__(self, reason: str):
        super().__init__(f"refused: {reason}", transient=False)


def non_public_reason(address: Address) -> str | None:
    """Why an address is not on the public internet ("private", "loopback", ...), or None."""
    if address.version == 6:
        # An IPv4 address inside an IPv6 one is judged as that IPv4 address: a mapped or NAT64
        # address (DNS64 networks reach every IPv4-only host this way) by it alone, 6to4 and
        # Teredo by it as well as by the IPv6 rules.
        if address.ipv4_mapped or address in _NAT64:
            return non_public_reason(address.ipv4_mapped or ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        embedded = address.sixtofour or (address.teredo[1] if address.teredo else None)
        if embedded is not None and (reason := non_public_reason(embedded)):
            return reason
    for attribute, word in _CLASSES:
        if getattr(address, attribute):
            return word
    return None if address.is_global else "not public"


@dataclass(frozen=True)
class Policy:
    """Which addresses may be connected to: public ones, plus `allowed` networks; `any_address`
    skips the check (servers the operator configured)."""

    allowed: tuple[Network, ...] = ()
    any_address: bool = False

    def check(self, address: str) -> None:
        """Raise Refused unless connecting to this IP address is allowed."""
        if self.any_address:
            return
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
        if any(ip in network for network in self.allowed):
            return
        reason = non_public_reason(ip)
        if reason:
            what = "not a public address" if reason == "not public" else reason
            raise Refused(f"address {ip} is {what} (an admin can allow it in OUTBOUND_ALLOWED_NETWORKS)")


OPERATOR = Policy(any_address=True)


def parse_networks(value: str | list | tuple | None) -> tuple[Network, ...]:
    """OUTBOUND_ALLOWED_NETWORKS as networks: a comma-separated CIDR list (or a list of them)."""
    items = value.split(",") if isinstance(value, str) else list(value or ())
    networks = []
    for item in (str(i).strip() for i in items):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError as exc:
            raise ValueError(f"OUTBOUND_ALLOWED_NETWORKS: {item!r} is not a network such as 10.0.0.0/8") from exc
    return tuple(networks)


def policy_for(config) -> Policy:
    """The policy for user-chosen destinations under this app config."""
    return Policy(allowed=parse_networks(config.get("OUTBOUND_ALLOWED_NETWORKS")))


def resolve(host: str, port: int | None = None) -> list[tuple]:
    """getaddrinfo for TCP; raises socket.gaierror if the name does not resolve."""
    return socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)


def check_host(host: str, policy: Policy, *, unresolvable_ok: bool = True) -> None:
    """Raise Refused if `host` is (or resolves to) an address the policy refuses.

    Used when a destination is saved, to say at once what would be refused. A name that does not
    resolve now is accepted when `unresolvable_ok` (the connection re-checks it at every send).
    """
    if policy.any_address or not host:
        return
    try:
        infos = resolve(host)
    except (socket.gaierror, UnicodeError) as exc:
        if unresolvable_ok:
            return
        raise OutboundError(f"could not resolve the host name {host}", transient=True) from exc
    for info in infos:
        policy.check(info[4][0])


def check_url(url: str, policy: Policy) -> None:
    """check_host for the host of an http(s) URL."""
    check_host(urlsplit(url).hostname or "", policy)


# --- The guard: checked, pinned connections and a deadline ------------------------------------


@dataclass
class _Guard:
    policy: Policy
    sockets: list = field(default_factory=list)
    refusals: list = field(default_factory=list)
    expired: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def track(self, sock: socket.socket) -> None:
        with self.lock:
            if self.expired:
                sock.close()
                raise TimeoutError("deadline passed")
            self.sockets.append(sock)

    def expire(self) -> None:
        """Past the deadline: shut every socket down, which ends any read blocked on it."""
        with self.lock:
            self.expired = True
            for sock in self.sockets:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


_current: contextvars.ContextVar[_Guard | None] = contextvars.ContextVar("openduty_outbound_guard", default=None)


@contextmanager
def guard(policy: Policy, deadline: float | None = TOTAL_TIMEOUT) -> Iterator[_Guard]:
    """Apply `policy` to every connection urllib3 opens in this context (and in contexts copied
    from it, as Apprise does for its threads); after `deadline` seconds their sockets are closed."""
    state = _Guard(policy)
    token = _current.set(state)
    timer = threading.Timer(deadline, state.expire) if deadline else None
    if timer:
        timer.daemon = True
        timer.start()
    try:
        yield state
    finally:
        if timer:
            timer.cancel()
        _current.reset(token)


def _connect(conn: HTTPConnection, state: _Guard) -> socket.socket:
    """Resolve once, check every address, connect to a checked one (what urllib3's _new_conn does,
    with the policy between the lookup and the connect)."""
    try:
        infos = resolve(conn._dns_host, conn.port)
    except socket.gaierror as exc:
        raise NameResolutionError(conn.host, conn, exc) from exc
    try:
        for info in infos:
            state.policy.check(info[4][0])
    except Refused as exc:
        state.refusals.append(exc)
        raise
    last: OSError | None = None
    for family, kind, proto, _name, address in infos:
        sock = socket.socket(family, kind, proto)
        try:
            for option in conn.socket_options or ():
                sock.setsockopt(*option)
            sock.settimeout(conn.timeout)
            if conn.source_address:
                sock.bind(conn.source_address)
            sock.connect(address)
            state.track(sock)
            return sock
        except TimeoutError as exc:
            sock.close()
            raise ConnectTimeoutError(conn, "connect timed out") from exc
        except OSError as exc:
            sock.close()
            last = exc
    raise NewConnectionError(conn, "could not connect") from last


class _GuardedHTTPConnection(HTTPConnection):
    def _new_conn(self) -> socket.socket:
        state = _current.get()
        return super()._new_conn() if state is None else _connect(self, state)


class _GuardedHTTPSConnection(HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        state = _current.get()
        return super()._new_conn() if state is None else _connect(self, state)


class _GuardedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _GuardedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


def install() -> None:
    """Make urllib3's pools (hence requests', hence Apprise's) use the guarded connections.

    Outside `guard()` they behave exactly like urllib3's own; inside, they apply the policy. This
    is what lets the policy reach into Apprise's plugins without patching each one.
    """
    poolmanager.pool_classes_by_scheme["http"] = _GuardedHTTPConnectionPool
    poolmanager.pool_classes_by_scheme["https"] = _GuardedHTTPSConnectionPool


# --- Requests with limits ---------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    body: bytes
    truncated: bool  # the body was longer than the limit (only the first max_bytes are kept)
    headers: dict
    url: str


def request(
    method: str,
    url: str,
    policy: Policy,
    *,
    follow_redirects: bool = False,
    max_bytes: int = MAX_RESPONSE_BYTES,
    timeouts: tuple[float, float] = (CONNECT_TIMEOUT, READ_TIMEOUT),
    deadline: float = TOTAL_TIMEOUT,
    **kwargs,
) -> Reply:
    """One HTTP request under `policy` and the limits; raises OutboundError with a short reason.

    Without `follow_redirects` a 3xx is returned as it is (the caller says it is not followed).
    """
    if urlsplit(url).scheme not in ("http", "https"):
        raise OutboundError("only http:// and https:// URLs can be called", transient=False)
    started = time.monotonic()
    with guard(policy, deadline) as state, _session(policy) as session:
        try:
            response = session.request(
                method, url, timeout=timeouts, allow_redirects=follow_redirects,
                stream=True, **kwargs,
            )  # fmt: skip
            with response:
                body, truncated = _read(response, max_bytes, state)
        except OutboundError:
            raise
        except Exception as exc:
            raise _reason(exc, state, time.monotonic() - started, timeouts[1]) from exc
        return Reply(response.status_code, body, truncated, dict(response.headers), response.url)


_local = threading.local()


@contextmanager
def _session(policy: Policy) -> Iterator[requests.Session]:
    """A Session for one request to a user-chosen destination (a pooled connection would skip the
    connect-time check and the deadline); for the operator's providers, one kept per thread, so
    connections to Twilio or Pushover stay alive between pages."""
    if policy.any_address:
        session = getattr(_local, "operator_session", None)
        if session is None:
            session = _local.operator_session = _new_session()
        yield session
        return
    with _new_session() as session:
        yield session


def _new_session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # no proxies from the environment: the connection is the check
    session.max_redirects = MAX_REDIRECTS
    return session


def _read(response: requests.Response, max_bytes: int, state: _Guard) -> tuple[bytes, bool]:
    chunks, size = [], 0
    for chunk in response.iter_content(chunk_size=16384):
        chunks.append(chunk)
        size += len(chunk)
        if size > max_bytes:
            return b"".join(chunks)[:max_bytes], True
    if state.expired:
        raise TimeoutError("deadline passed")
    return b"".join(chunks), False


def _reason(exc: Exception, state: _Guard, elapsed: float, read_timeout: float) -> OutboundError:
    """A short, safe reason for what went wrong (never the exception's own text)."""
    if state.refusals:
        return state.refusals[0]
    chain = _chain(exc)
    if state.expired:
        # Connected: the request (or part of it) went out, so it may have arrived.
        return OutboundError(f"timed out after {round(elapsed)} s", transient=True, unconfirmed=bool(state.sockets))
    if any(isinstance(e, NameResolutionError) for e in chain):
        return OutboundError("could not resolve the host name", transient=True)
    if isinstance(exc, requests.ConnectTimeout):
        return OutboundError("could not connect", transient=True)  # the same words as refused: no port map
    if isinstance(exc, requests.ReadTimeout) or any(isinstance(e, TimeoutError) for e in chain):
        return OutboundError(f"no answer within {read_timeout:g} s", transient=True, unconfirmed=True)
    if isinstance(exc, requests.exceptions.SSLError):
        return OutboundError("the TLS handshake failed (certificate not valid for this host?)", transient=True)
    if isinstance(exc, requests.TooManyRedirects):
        return OutboundError(f"more than {MAX_REDIRECTS} redirects", transient=False)
    if isinstance(exc, (requests.exceptions.InvalidURL, requests.exceptions.InvalidSchema)):
        return OutboundError("the URL (or a redirect) is not a valid http(s) URL", transient=False)
    if isinstance(exc, requests.ConnectionError):
        return OutboundError("could not connect", transient=True)
    return OutboundError("the request failed", transient=True)


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception, its causes, and the `reason` urllib3 wraps inside MaxRetryError."""
    seen: list[BaseException] = []
    todo: list[BaseException] = [exc]
    while todo:
        item = todo.pop()
        if item in seen:
            continue
        seen.append(item)
        linked = [item.__cause__, item.__context__, getattr(item, "reason", None), *item.args]
        todo += [e for e in linked if isinstance(e, BaseException)]
    return seen
