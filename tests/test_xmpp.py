"""XMPP pages through a real Prosody server (tests/xmpp_server.py): the chat message arrives at the
recipient's client with the acknowledge link, a refused login is permanent, a server that does not
answer is transient, and an incident pages a person over XMPP end to end through the worker."""

import asyncio
import concurrent.futures

import pytest

from openduty.extensions import db
from openduty.models import Notification
from openduty.notifiers import notifier_for
from openduty.notifiers.base import Message, PermanentError, TransientError
from tests import xmpp_server
from tests.conftest import _ci_requires
from tests.factories_escalation import make_pager, make_policy, make_service, open_incident
from tests.processes import free_port, wait_for


@pytest.fixture(scope="module")
def prosody(tmp_path_factory):
    if xmpp_server.prosody_binary() is None:
        _ci_requires("Debian's prosody")
    with xmpp_server.prosody_server(tmp_path_factory.mktemp("prosody")) as server:
        yield server


@pytest.fixture
def xmpp(app, prosody):
    app.config.update(
        XMPP_JID=xmpp_server.SENDER, XMPP_PASSWORD=xmpp_server.SENDER_PASSWORD,
        XMPP_HOST="127.0.0.1", XMPP_PORT=prosody.port,
    )  # fmt: skip
    with xmpp_server.recipient(prosody) as bodies:
        yield bodies


def _message() -> Message:
    return Message(
        subject="[Openduty] #7 TRIGGERED: Disk full", body="Disk full on db-1", action_url="http://localhost/ack/t",
        incident_id=7, incident_number=7, short="Openduty: #7 Disk full", ack_token="tok",
        incidents=[{"id": 7, "number": 7, "summary": "Disk full"}],
    )  # fmt: skip


def test_chat_message_reaches_the_recipient_with_the_acknowledge_link(app, xmpp):
    assert notifier_for("xmpp").send(xmpp_server.RECIPIENT, _message()) == "sent"
    wait_for(lambda: xmpp, what="bob to receive the page", timeout=30)
    assert "Disk full" in xmpp[0] and "Acknowledge: http://localhost/ack/t" in xmpp[0]


def test_a_refused_login_is_permanent(app, xmpp):
    app.config.update(XMPP_PASSWORD="wrong")
    with pytest.raises(PermanentError, match="refused XMPP_JID"):
        notifier_for("xmpp").send(xmpp_server.RECIPIENT, _message())


def test_a_server_that_does_not_answer_is_transient(app, xmpp):
    app.config.update(XMPP_PORT=free_port())
    with pytest.raises(TransientError):
        notifier_for("xmpp").send(xmpp_server.RECIPIENT, _message())


def test_an_incident_pages_over_xmpp_through_the_worker(app, xmpp, pager):
    bob = make_pager("Bob", {"xmpp": (xmpp_server.RECIPIENT, 0)})
    incident = open_incident(make_service(make_policy([(5, [bob])])), summary="Queue backed up on mq-2")
    pager.run()
    wait_for(lambda: xmpp, what="bob to receive the page", timeout=30)
    assert f"#{incident.number}" in xmpp[0] and "Queue backed up on mq-2" in xmpp[0] and "/ack/" in xmpp[0]
    sent = db.session.scalars(db.select(Notification).filter_by(incident_id=incident.id)).all()
    assert [(n.status, n.kind) for n in sent] == [("sent", "xmpp")]


def test_a_caller_running_its_own_event_loop_can_still_send(app, xmpp):
    """A thread that already runs an event loop (Playwright's sync API leaves one running in the
    test process) made asyncio.run refuse: the send now runs in a thread of its own there."""

    notifier = notifier_for("xmpp")

    async def caller() -> str:
        return notifier.send(xmpp_server.RECIPIENT, _message())

    # In a thread of its own: the suite's main thread may hold Playwright's loop already.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        assert pool.submit(lambda: asyncio.run(caller())).result() == "sent"
    wait_for(lambda: xmpp, what="bob to receive the page", timeout=30)
    assert "Disk full" in xmpp[0]
