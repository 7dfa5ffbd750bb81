"""XMPP (Jabber) chat messages with slixmpp, from the account XMPP_JID / XMPP_PASSWORD."""

import asyncio

from openduty.notifiers.base import Message, Notifier, PermanentError, TransientError

XMPP_TIMEOUT = 20


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
            return asyncio.run(asyncio.wait_for(_send(jid, password, address, body), XMPP_TIMEOUT))
        except (TimeoutError, OSError) as exc:
            raise TransientError(f"Could not deliver over XMPP: {type(exc).__name__} {exc}") from exc


async def _send(jid: str, password: str, to: str, body: str) -> str:
    import slixmpp  # heavy: only a worker that sends over XMPP loads it

    client = slixmpp.ClientXMPP(jid, password)
    done: asyncio.Future = asyncio.get_running_loop().create_future()

    async def on_session_start(event):
        client.send_presence()
        client.send_message(mto=to, mbody=body, mtype="chat")
        client.disconnect()
        if not done.done():
            done.set_result("sent")

    def on_failed_auth(event):
        if not done.done():
            done.set_exception(PermanentError("The XMPP server refused XMPP_JID / XMPP_PASSWORD."))

    def on_connection_failed(event):
        if not done.done():
            done.set_exception(TransientError(f"Could not connect to the XMPP server: {event}"))

    client.add_event_handler("session_start", on_session_start)
    client.add_event_handler("failed_auth", on_failed_auth)
    client.add_event_handler("connection_failed", on_connection_failed)
    client.connect()
    try:
        return await done
    finally:
        client.disconnect()
