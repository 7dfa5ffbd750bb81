"""XMPP (Jabber) chat messages with slixmpp, from the account XMPP_JID / XMPP_PASSWORD, through
XMPP_HOST:XMPP_PORT when set (else the server the JID's domain names in DNS)."""

import asyncio
import concurrent.futures
import ipaddress

from openduty.notifiers.base import Message, Notifier, PermanentError, TransientError

XMPP_TIMEOUT = 20


def on_loopback(host: str | None) -> bool:
    """Whether XMPP_HOST is this machine: only there may a stream stay unencrypted (a local relay)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


def chat_body(message: Message) -> str:
    """The chat text: the short form's lines (only characters XML allows) and the acknowledge link."""
    return message.short_lines() + (f"\nAcknowledge: {message.action_url}" if message.action_url else "")


def stanza(message: Message, to: str) -> str:
    """The <message/> stanza slixmpp sends for `message` (what the XMPP server must parse)."""
    from slixmpp.stanza import Message as MessageStanza  # slixmpp is heavy; only tests and sends load it
    from slixmpp.xmlstream import tostring  # (as above)

    xml = MessageStanza()
    xml["to"], xml["type"], xml["body"] = to, "chat", chat_body(message)
    return tostring(xml.xml)


class XmppNotifier(Notifier):
    kind = "xmpp"

    def send(self, address: str, message: Message) -> str:
        jid, password = self.config.get("XMPP_JID"), self.config.get("XMPP_PASSWORD")
        if not (jid and password):
            raise PermanentError("XMPP is not configured: set XMPP_JID and XMPP_PASSWORD.")
        body = chat_body(message)
        try:
            server = (self.config.get("XMPP_HOST"), self.config.get("XMPP_PORT") or 5222)
            return _run_apart(lambda: asyncio.wait_for(_send(jid, password, address, body, server), XMPP_TIMEOUT))
        except (TimeoutError, OSError) as exc:
            raise TransientError(f"Could not deliver over XMPP: {type(exc).__name__} {exc}") from exc


def _run_apart(make_coroutine):
    """asyncio.run(make_coroutine()), in a thread of its own when this thread already runs an event
    loop (a caller's own, e.g. Playwright's in the test process), where asyncio.run would refuse."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make_coroutine())
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(make_coroutine())).result()


async def _send(jid: str, password: str, to: str, body: str, server: tuple[str | None, int]) -> str:
    import slixmpp  # heavy: only a worker that sends over XMPP loads it

    host, port = server
    # SCRAM never sends the password; without TLS it is still only allowed to a server on loopback.
    plain = {"feature_mechanisms": {"unencrypted_scram": True}} if on_loopback(host) else None
    client = slixmpp.ClientXMPP(jid, password, plugin_config=plain)
    done: asyncio.Future = asyncio.get_running_loop().create_future()

    async def on_session_start(event):
        client.send_presence()
        client.send_message(mto=to, mbody=body, mtype="chat")
        # slixmpp sends from a queue: the page has left only once the queue is drained and the stream
        # closed (disconnect waits for both), so "sent" is not said before it is true.
        await client.disconnect(wait=XMPP_TIMEOUT / 2)
        if not done.done():
            done.set_result("sent")

    def on_failed_auth(event):
        if not done.done():
            done.set_exception(PermanentError("The XMPP server refused XMPP_JID / XMPP_PASSWORD."))

    failures: list[str] = []

    def on_connection_failed(event):
        # One way of connecting failed (direct TLS, STARTTLS, one DNS record): slixmpp tries the next.
        failures.append(str(event))

    def on_round_failed(delay):
        # Every way failed and slixmpp would wait `delay` s to start over: this send fails now.
        if not done.done():
            reason = failures[-1] if failures else "no way of connecting worked"
            done.set_exception(TransientError(f"Could not connect to the XMPP server: {reason}"))

    client.add_event_handler("session_start", on_session_start)
    client.add_event_handler("failed_auth", on_failed_auth)
    client.add_event_handler("connection_failed", on_connection_failed)
    client.add_event_handler("reconnect_delay", on_round_failed)
    client.connect(host, port) if host else client.connect()
    try:
        return await done
    finally:
        client.abort()  # a failed login or connection leaves neither a socket nor a reconnect loop behind
