"""The outbound-request policy (issue 8, finding 3): user-chosen destinations cannot reach internal
addresses, redirects are not a way around it, replies are bounded in size and time, and the
timeline says a short reason, never the remote body nor an error text that maps ports.

Most tests empty OUTBOUND_ALLOWED_NETWORKS (the production default); the suite's config allows
loopback for its local receivers, which the tests that need a working receiver rely on.
"""

import ipaddress
import socket
import threading
import time

import pytest
from werkzeug import Response

from config import TestConfig
from openduty import create_app, outbound
from openduty.extensions import db
from openduty.ical import refresh_ical_layer
from openduty.models import ContactMethod, LogEntry, Notification, ScheduleLayer
from openduty.notifiers import notifier_for
from openduty.notifiers.base import Message, PermanentError, TransientError
from tests import factories
from tests.factories_escalation import make_pager, make_policy, make_service, open_incident
from tests.factories_schedules import make_schedule

CALENDAR = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//T//EN\r\nEND:VCALENDAR\r\n"


@pytest.fixture
def strict(app):
    """OUTBOUND_ALLOWED_NETWORKS empty, as in production."""
    app.config["OUTBOUND_ALLOWED_NETWORKS"] = ""
    return app


def _message(**fields):
    return Message(
        subject="[Openduty] #1 TRIGGERED: Disk full", body="Disk full", action_url="http://x/ack/t", **fields
    )


# --- Which addresses -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address, reason",
    [
        ("127.0.0.1", "loopback"), ("127.8.9.10", "loopback"), ("::1", "loopback"),
        ("10.0.0.5", "private"), ("172.16.3.4", "private"), ("192.168.1.1", "private"), ("fd00::1", "private"),
        ("169.254.169.254", "link-local"), ("fe80::1", "link-local"),
        ("224.0.0.1", "multicast"), ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"), ("0.0.0.0", "unspecified"), ("::", "unspecified"),
        ("100.64.0.1", "not public"), ("192.0.2.10", "private"),
        # IPv4 inside IPv6: mapped, 6to4, NAT64.
        ("::ffff:127.0.0.1", "loopback"), ("::ffff:10.1.2.3", "private"), ("2002:a00:1::", "private"),
        ("64:ff9b::7f00:1", "loopback"),
        ("8.8.8.8", None), ("2606:4700:4700::1111", None), ("64:ff9b::808:808", None),
    ],
)  # fmt: skip
def test_non_public_addresses_are_named(address, reason):
    assert outbound.non_public_reason(ipaddress.ip_address(address)) == reason


def test_allowed_networks_open_only_what_they_name():
    policy = outbound.Policy(allowed=outbound.parse_networks("10.20.0.0/16, ::1/128"))
    policy.check("10.20.3.4")
    policy.check("::1")
    policy.check("8.8.8.8")
    with pytest.raises(outbound.Refused, match=r"refused: address 10\.21\.0\.1 is private"):
        policy.check("10.21.0.1")
    with pytest.raises(outbound.Refused, match="127.0.0.1 is loopback"):
        policy.check("127.0.0.1")


def test_a_malformed_allowed_network_stops_the_app_at_start(_database_uri, _redis_url):
    config = type("Bad", (TestConfig,), {"OUTBOUND_ALLOWED_NETWORKS": "10.0.0.0/8,intranet", "REDIS_URL": _redis_url})
    with pytest.raises(ValueError, match="'intranet' is not a network"):
        create_app(config)


# --- Channels at send time -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["webhook", "slack"])
def test_webhook_and_slack_to_loopback_are_refused_before_connecting(strict, httpserver, kind):
    httpserver.expect_request("/hook").respond_with_data("internal admin page")
    with pytest.raises(PermanentError, match="refused: address (127.0.0.1|::1) is loopback"):
        notifier_for(kind).send(httpserver.url_for("/hook"), _message())
    assert httpserver.log == []


def test_apprise_requests_run_under_the_policy(strict, httpserver):
    httpserver.expect_request("/", method="POST").respond_with_json({"id": "1"})  # ntfy posts JSON to /
    with pytest.raises(PermanentError, match="refused: address 127.0.0.1 is loopback"):
        notifier_for("apprise").send(f"ntfy://127.0.0.1:{httpserver.port}/alerts", _message())
    assert httpserver.log == []
    # Allowed by an admin: the same URL delivers.
    strict.config["OUTBOUND_ALLOWED_NETWORKS"] = "127.0.0.1/32"
    assert notifier_for("apprise").send(f"ntfy://127.0.0.1:{httpserver.port}/alerts", _message()) == "sent"
    assert len(httpserver.log) == 1


def test_admin_only_apprise_scheme_is_refused_at_send_time_for_a_member(app, httpserver):
    httpserver.expect_request("/x").respond_with_data("ok")
    with pytest.raises(PermanentError, match="json:// is for admins only"):
        notifier_for("apprise").send(f"json://127.0.0.1:{httpserver.port}/x", _message(recipient_is_admin=False))
    assert httpserver.log == []
    notifier_for("apprise").send(f"json://127.0.0.1:{httpserver.port}/x", _message(recipient_is_admin=True))
    assert len(httpserver.log) == 1


def test_redirects_are_not_followed_by_notifiers(app, httpserver):
    httpserver.expect_request("/moved").respond_with_data("", status=302, headers={"Location": "/elsewhere"})
    httpserver.expect_request("/elsewhere").respond_with_data("ok")
    with pytest.raises(PermanentError, match="HTTP 302; redirects are not followed"):
        notifier_for("webhook").send(httpserver.url_for("/moved"), _message())
    assert [r.path for r, _ in httpserver.log] == ["/moved"]


def test_errors_say_the_status_never_the_body(app, httpserver):
    httpserver.expect_request("/down").respond_with_data("SECRET internal stack trace", status=500)
    with pytest.raises(TransientError) as error:
        notifier_for("webhook").send(httpserver.url_for("/down"), _message())
    assert str(error.value) == "Webhook: HTTP 500"


def test_closed_and_silent_ports_read_the_same(app):
    """A closed port and one that never answers the connect give the same words (no port map)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        closed_port = listener.getsockname()[1]
    with pytest.raises(TransientError) as closed:
        notifier_for("webhook").send(f"http://127.0.0.1:{closed_port}/", _message())
    assert str(closed.value) == "Webhook: could not connect"


def test_responses_are_read_up_to_64_kb(app, httpserver):
    httpserver.expect_request("/big").respond_with_data(b"x" * (5 * 1024 * 1024))
    reply = outbound.request("GET", httpserver.url_for("/big"), outbound.policy_for(app.config))
    assert reply.truncated and len(reply.body) == outbound.MAX_RESPONSE_BYTES


def test_a_dripping_receiver_is_cut_off_at_the_deadline(app, httpserver):
    def drip(request):
        def chunks():
            for _ in range(100):
                yield b"x"
                time.sleep(0.2)

        return Response(chunks(), status=200)

    httpserver.expect_request("/drip").respond_with_handler(drip)
    started = time.monotonic()
    with pytest.raises(outbound.OutboundError, match="timed out after 1 s") as error:
        outbound.request("GET", httpserver.url_for("/drip"), outbound.policy_for(app.config), deadline=1)
    assert error.value.transient and time.monotonic() - started < 3


def test_the_connection_goes_to_the_address_that_was_checked(strict, httpserver, monkeypatch):
    """DNS rebinding: the name is resolved once; a second lookup (which would answer a private
    address) never happens, so the check and the connection see the same address."""
    httpserver.expect_request("/hook").respond_with_data("ok")
    answers = []
    real = socket.getaddrinfo

    def rebinding(host, port, *args, **kwargs):
        if host != "rebind.test":
            return real(host, port, *args, **kwargs)
        answers.append(host)
        first = len(answers) == 1
        return real("127.0.0.1" if first else "10.0.0.5", port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    strict.config["OUTBOUND_ALLOWED_NETWORKS"] = "127.0.0.1/32"
    notifier_for("webhook").send(f"http://rebind.test:{httpserver.port}/hook", _message())
    assert len(answers) == 1 and len(httpserver.log) == 1


# --- The timeline --------------------------------------------------------------------------------


def test_a_members_webhook_to_an_internal_address_fails_with_a_short_reason(strict, httpserver, run_jobs, clock):
    httpserver.expect_request("/admin").respond_with_data("root:x:0:0 internal secrets")
    bob = make_pager("Bob", {"webhook": (httpserver.url_for("/admin"), 0)})
    incident = open_incident(make_service(make_policy([(5, [bob])])))
    run_jobs()
    db.session.expire_all()
    notification = db.session.scalar(db.select(Notification))
    assert notification.status == "failed" and notification.attempts == 1
    texts = [e.message for e in db.session.scalars(db.select(LogEntry).where(LogEntry.incident_id == incident.id))]
    [failed] = [t for t in texts if t.startswith("Could not page")]
    assert "refused: address" in failed and "is loopback" in failed
    assert "root:x" not in " ".join(texts) and httpserver.log == []


# --- Saving destinations -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind, address",
    [
        ("webhook", "http://127.0.0.1:8080/hook"),
        ("webhook", "http://localhost/hook"),
        ("webhook", "http://[::1]/hook"),
        ("webhook", "http://[::ffff:169.254.169.254]/latest/meta-data"),
        ("slack", "https://10.0.0.5/services/T/B/X"),
        ("apprise", "ntfy://192.168.1.10/alerts"),
        ("apprise", "gotify://127.0.0.1/token"),
    ],
)
def test_members_cannot_save_internal_destinations(strict, api, member, kind, address):
    api.as_user(member)
    response = api.post(f"/api/v1/users/{member.id}/contact-methods", json={"kind": kind, "address": address})
    assert response.status_code == 422, response.json
    assert "refused: address" in response.json["error"]["fields"]["address"]
    assert db.session.scalar(db.select(db.func.count(ContactMethod.id))) == 0


@pytest.mark.parametrize("scheme", ["json", "jsons", "form", "xml", "syslog", "mailto", "apprise"])
def test_raw_transport_apprise_schemes_are_for_admins(app, api, member, admin, scheme):
    address = {"syslog": "syslog://", "mailto": "mailto://user:pass@example.com"}.get(
        scheme, f"{scheme}://example.com/x"
    )
    api.as_user(member)
    response = api.post(f"/api/v1/users/{member.id}/contact-methods", json={"kind": "apprise", "address": address})
    assert response.status_code == 422
    assert "for admins only" in response.json["error"]["fields"]["address"]
    api.as_user(admin)
    response = api.post(f"/api/v1/users/{admin.id}/contact-methods", json={"kind": "apprise", "address": address})
    assert response.status_code == 201, response.json


def test_members_may_use_notification_services(app, api, member):
    api.as_user(member)
    for address in ("tgram://123456789:abcdefg_hijklmnop/12315544", "discord://4174216298/JHMHI8qBe7bk2ZwO5U711o3dV"):
        response = api.post(f"/api/v1/users/{member.id}/contact-methods", json={"kind": "apprise", "address": address})
        assert response.status_code == 201, response.json


def test_an_admin_demoted_cannot_send_through_an_admin_only_scheme(app, pager, admin):
    pager.httpserver.expect_request("/raw").respond_with_data("ok")
    method = factories.make_contact_method(
        admin, kind="apprise", address=f"json://127.0.0.1:{pager.httpserver.port}/raw"
    )
    factories.make_notification_rule(admin, method)
    admin.is_admin = False
    db.session.commit()
    open_incident(make_service(make_policy([(5, [admin])])))
    pager.run()
    notification = db.session.scalar(db.select(Notification))
    assert notification.status == "failed" and "for admins only" in notification.last_error
    assert not [r for r, _ in pager.httpserver.log if r.path == "/raw"]


# --- iCal layer URLs -----------------------------------------------------------------------------


def test_ical_url_to_an_internal_address_is_refused_and_not_fetched(strict, api, admin, httpserver):
    httpserver.expect_request("/oncall.ics").respond_with_data(CALENDAR)
    schedule = make_schedule()
    api.as_user(admin)
    response = api.post(f"/api/v1/schedules/{schedule.id}/layers", json={"ical_url": httpserver.url_for("/oncall.ics")})
    assert response.status_code == 422
    assert "refused: address" in response.json["error"]["fields"]["ical_url"]
    assert httpserver.log == []


def test_ical_fetch_checks_every_redirect(app, api, admin, httpserver):
    httpserver.expect_request("/moved.ics").respond_with_data(
        "", status=302, headers={"Location": "http://10.0.0.5/oncall.ics"}
    )
    schedule = make_schedule()
    api.as_user(admin)
    response = api.post(f"/api/v1/schedules/{schedule.id}/layers", json={"ical_url": httpserver.url_for("/moved.ics")})
    assert response.status_code == 422
    assert "refused: address 10.0.0.5 is private" in response.json["error"]["fields"]["ical_url"]


def test_ical_fetch_never_echoes_the_reply(app, api, admin, httpserver):
    httpserver.expect_request("/page").respond_with_data("SSH-2.0-OpenSSH_9.2 internal banner")
    httpserver.expect_request("/gone").respond_with_data("<h1>secret 404 page</h1>", status=404)
    schedule = make_schedule()
    api.as_user(admin)
    for path, expected in (("/page", "did not return an iCalendar"), ("/gone", "HTTP 404")):
        response = api.post(f"/api/v1/schedules/{schedule.id}/layers", json={"ical_url": httpserver.url_for(path)})
        error = response.json["error"]["fields"]["ical_url"]
        assert response.status_code == 422 and expected in error
        assert "SSH" not in error and "secret" not in error and str(httpserver.port) not in error


def test_ical_refresh_rechecks_the_policy(app, api, admin, httpserver):
    httpserver.expect_request("/oncall.ics").respond_with_data(CALENDAR)
    schedule = make_schedule()
    api.as_user(admin)
    response = api.post(f"/api/v1/schedules/{schedule.id}/layers", json={"ical_url": httpserver.url_for("/oncall.ics")})
    assert response.status_code == 201, response.json
    app.config["OUTBOUND_ALLOWED_NETWORKS"] = ""  # an admin closes the network again
    layer = db.session.scalar(db.select(ScheduleLayer).where(ScheduleLayer.kind == "ical"))
    assert refresh_ical_layer(layer.id) == "error"
    assert "refused: address" in db.session.get(ScheduleLayer, layer.id).ical_error
    assert len(httpserver.log) == 1


def test_guard_applies_in_threads_that_copy_the_context(strict, httpserver):
    """Apprise sends from worker threads with a copied context; the guard goes with it."""
    import contextvars

    httpserver.expect_request("/t").respond_with_data("ok")
    errors = []
    with outbound.guard(outbound.policy_for(strict.config)):
        context = contextvars.copy_context()

        def call():
            import requests

            try:
                requests.get(httpserver.url_for("/t"), timeout=2)
            except outbound.Refused as exc:
                errors.append(exc)

        thread = threading.Thread(target=context.run, args=(call,))
        thread.start()
        thread.join()
    assert len(errors) == 1 and httpserver.log == []
