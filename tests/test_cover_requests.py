"""Cover requests: ask for cover for part of one's shift, the others are told (a real worker sends
the notice to the local SMTP server), the first to accept gets the override and the asker is told;
a second acceptor is refused; cancel; expiry at the start; validation; the API."""

from datetime import datetime

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm.attributes import set_committed_value

from openduty import cover_requests, timers
from openduty.errors import ApiError
from openduty.extensions import db
from openduty.models import AuditEntry, CoverRequest, ScheduleOverride
from tests import factories
from tests.factories_schedules import make_layer, make_schedule

# The clock fixture starts on Monday 2 March 2026, 09:00 UTC. Daily turns from Tue 3 Mar 00:00 UTC:
# Alice on the 3rd, Bob on the 4th, Carol on the 5th.
ASK = {"start": "2026-03-03T10:00", "end": "2026-03-03T14:00", "note": "Dentist"}


@pytest.fixture
def team(app):
    people = [factories.make_user(name=n, email=f"{n.lower()}@example.com") for n in ("Alice", "Bob", "Carol")]
    schedule = make_schedule("Payments")
    make_layer(schedule, people, datetime(2026, 3, 3, 0, 0), shift_length=1, shift_unit="days")
    return schedule, *people


@pytest.fixture
def step(clock, run_jobs, smtp_server):
    """Move the clock, run what is due, return the cover notices received so far as (to, subject)."""

    def advance(**delta) -> list[tuple[str, str]]:
        db.session.commit()
        clock.advance(**delta)
        run_jobs()
        db.session.rollback()
        db.session.expire_all()
        return [(str(m["To"]), str(m["Subject"])) for m in smtp_server.messages if "Cover" in str(m["Subject"])]

    return advance


def _as(auth, user):
    auth.logout()
    assert auth.login(user.email).status_code == 302


def _only_request() -> CoverRequest:
    return db.session.scalars(select(CoverRequest)).one()


def test_ask_notify_first_accept_wins_the_requester_is_told(client, auth, post_form, team, step, smtp_server):
    schedule, alice, bob, carol = team
    auth.login(alice.email)
    assert post_form(f"/schedules/{schedule.id}/cover-requests", ASK).status_code == 302
    cover = _only_request()
    notices = step(seconds=1)
    assert sorted(notices) == [(f"{p}@example.com", "[Openduty] Cover request: Payments") for p in ("bob", "carol")]
    body = next(m for m in smtp_server.messages if m["To"] == "bob@example.com").get_body(("plain",)).get_content()
    assert "Alice asks for cover on Payments from Tue 3 Mar 10:00 to Tue 3 Mar 14:00 (UTC)." in body
    assert "Note: Dentist" in body
    link = f"/schedules/{schedule.id}/cover-requests/{cover.id}/accept"
    assert f"http://localhost{link}" in body or link in body

    _as(auth, bob)
    page = client.get(link)  # a link scanner's GET accepts nothing
    assert page.status_code == 200 and "Accept: I cover this" in page.get_data(as_text=True)
    assert _only_request().status == "open"
    accepted = post_form(link)
    assert accepted.status_code == 302
    cover = _only_request()
    override = db.session.get(ScheduleOverride, cover.override_id)
    assert (cover.status, cover.accepted_by_id) == ("accepted", bob.id)
    assert (override.user_id, override.start, override.end) == (
        bob.id,
        datetime.fromisoformat("2026-03-03T10:00+00:00"),
        datetime.fromisoformat("2026-03-03T14:00+00:00"),
    )
    assert timers.timer_due(cover_requests.EXPIRE_KIND, cover.id) is None
    told = step(seconds=1)
    assert ("alice@example.com", "[Openduty] Cover accepted: Bob covers Payments") in told
    to_alice = next(m for m in smtp_server.messages if m["To"] == "alice@example.com" and "Cover" in m["Subject"])
    assert "Bob covers your shift on Payments from Tue 3 Mar 10:00" in to_alice.get_body(("plain",)).get_content()

    _as(auth, carol)
    page = client.get(link).get_data(as_text=True)
    assert "covered by Bob" in page and "Accept: I cover this" not in page
    late = post_form(link)
    assert late.status_code == 409 and cover_requests.TAKEN in late.get_data(as_text=True)
    assert db.session.scalars(select(ScheduleOverride)).all() == [override]

    listed = client.get(f"/schedules/{schedule.id}").get_data(as_text=True)
    assert "covered by <strong>Bob</strong>" in listed and "No open cover requests." in listed
    entries = db.session.scalars(select(AuditEntry).where(AuditEntry.object_type == "cover request"))
    assert [e.action for e in entries] == ["created", "changed"]


def test_the_audit_log_shows_the_acceptance(app, team, clock):
    schedule, alice, bob, _ = team
    clean = cover_requests.clean_request(
        {"start": "2026-03-03T10:00+00:00", "end": "2026-03-03T12:00+00:00"}, schedule, alice
    )
    cover, notified = cover_requests.ask(schedule, alice, clean)
    db.session.commit()
    assert notified == 2
    cover_requests.accept(cover, bob)
    db.session.commit()
    changed = db.session.scalars(
        select(AuditEntry).where(AuditEntry.object_type == "cover request", AuditEntry.action == "changed")
    ).one()
    assert changed.changes["status"] == ["open", "accepted"] and changed.changes["accepted_by_id"] == [None, bob.id]


def test_cancel_by_the_requester_only_then_nobody_can_accept(client, auth, post_form, team, clock):
    schedule, alice, bob, carol = team
    auth.login(alice.email)
    post_form(f"/schedules/{schedule.id}/cover-requests", ASK)
    cover = _only_request()
    _as(auth, carol)
    assert post_form(f"/schedules/{schedule.id}/cover-requests/{cover.id}/cancel").status_code == 403
    _as(auth, alice)
    page = client.get(f"/schedules/{schedule.id}").get_data(as_text=True)
    assert "Cancel request" in page and ">Accept<" not in page
    assert post_form(f"/schedules/{schedule.id}/cover-requests/{cover.id}/cancel").status_code == 302
    db.session.expire_all()
    assert _only_request().status == "cancelled"
    assert timers.timer_due(cover_requests.EXPIRE_KIND, cover.id) is None
    _as(auth, bob)
    refused = post_form(f"/schedules/{schedule.id}/cover-requests/{cover.id}/accept")
    assert refused.status_code == 409 and "was cancelled" in refused.get_data(as_text=True)
    assert db.session.scalars(select(ScheduleOverride)).all() == []


def test_an_open_request_expires_at_its_start(client, auth, post_form, team, step):
    schedule, alice, bob, _ = team
    auth.login(alice.email)
    post_form(f"/schedules/{schedule.id}/cover-requests", ASK)
    step(hours=24)  # Tue 09:00: not yet
    assert _only_request().status == "open"
    step(hours=1, minutes=1)  # Tue 10:01
    assert _only_request().status == "expired"
    _as(auth, bob)
    refused = post_form(f"/schedules/{schedule.id}/cover-requests/{_only_request().id}/accept")
    assert refused.status_code == 409 and "expired" in refused.get_data(as_text=True)


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        ({"start": "2026-03-04T10:00", "end": "2026-03-04T11:00"}, "start", "not on call for all of this time"),
        ({"start": "2026-03-03T22:00", "end": "2026-03-04T02:00"}, "start", "not on call for all of this time"),
        ({"start": "2026-03-02T08:00", "end": "2026-03-03T10:00"}, "start", "must be in the future"),
        ({"start": "2026-03-03T12:00", "end": "2026-03-03T12:00"}, "end", "End must be after start"),
        ({"start": "2026-03-03T12:00", "end": "2026-03-03T10:00"}, "end", "End must be after start"),
        ({"start": "", "end": "2026-03-03T10:00"}, "start", ""),
        ({**ASK, "note": "x" * 501}, "note", "500"),
    ],
)
def test_bad_requests_are_refused_per_field_and_change_nothing(
    client, auth, post_form, team, clock, values, field, message
):
    schedule, alice, *_ = team
    auth.login(alice.email)
    response = post_form(f"/schedules/{schedule.id}/cover-requests", values)
    assert response.status_code == 422
    text = response.get_data(as_text=True)
    assert f"Cover request, {field}:" in text and message in text
    assert db.session.scalars(select(CoverRequest)).all() == []


def test_the_api_asks_accepts_once_and_cancels_only_open_requests(api, team, clock):
    schedule, alice, bob, carol = team
    path = f"/api/v1/schedules/{schedule.id}/cover-requests"
    bad = api.as_user(alice).post(path, json={"start": "2026-03-04T10:00:00+00:00", "end": "2026-03-03T10:00:00Z"})
    assert bad.status_code == 422 and set(bad.get_json()["error"]["fields"]) == {"end"}
    asked = api.post(path, json={"start": "2026-03-03T10:00:00+00:00", "end": "2026-03-03T12:00:00+00:00"})
    assert asked.status_code == 201, asked.get_json()
    body = asked.get_json()
    assert (body["status"], body["notified"], body["requester"]["id"]) == ("open", 2, alice.id)
    assert api.as_user(alice).post(f"{path}/{body['id']}/accept").status_code == 403  # not one's own
    won = api.as_user(bob).post(f"{path}/{body['id']}/accept")
    assert won.status_code == 200 and won.get_json()["accepted_by"]["id"] == bob.id
    assert won.get_json()["override_id"] is not None
    lost = api.as_user(carol).post(f"{path}/{body['id']}/accept")
    assert lost.status_code == 409 and lost.get_json()["error"]["message"] == cover_requests.TAKEN
    assert api.as_user(alice).post(f"{path}/{body['id']}/cancel").status_code == 409
    listed = api.get(path).get_json()["cover_requests"]
    assert [(r["id"], r["status"]) for r in listed] == [(body["id"], "accepted")]
    assert api.as_user(carol).post(f"{path}/999999/accept").status_code == 404


def test_an_acceptor_with_a_stale_copy_loses_to_the_one_who_won(app, team, clock):
    """The accept is a conditional UPDATE on status = 'open': a session that still believes the
    request open (it loaded it before the other acceptor committed) changes nothing."""
    schedule, alice, bob, carol = team
    clean = cover_requests.clean_request({"start": "2026-03-03T10:00Z", "end": "2026-03-03T11:00Z"}, schedule, alice)
    cover, _ = cover_requests.ask(schedule, alice, clean)
    db.session.commit()
    db.session.execute(
        update(CoverRequest).where(CoverRequest.id == cover.id).values(status="accepted", accepted_by_id=carol.id)
    )
    set_committed_value(cover, "status", "open")  # what the stale session still believes
    with pytest.raises(ApiError) as refused:
        cover_requests.accept(cover, bob)
    assert refused.value.status == 409 and refused.value.message == cover_requests.TAKEN
    assert db.session.scalars(select(ScheduleOverride)).all() == []
