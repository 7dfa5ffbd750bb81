"""Home as the on-call dashboard (issue 15): my open incidents, acknowledged from there with and
without htmx; am I on call now and until when; my next shift; who is on call now in my teams'
schedules. Nothing queries while it renders, and its queries do not grow with the data."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event

from openduty.extensions import db
from openduty.models import Incident, Team, TeamMember
from tests import factories, factories_escalation, factories_schedules

NOW = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
HTMX = {"HX-Request": "true"}


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


@pytest.fixture
def world(app, clock):
    clock.set(NOW)
    me = factories.make_user(email="nina@example.com", name="Nina Newyork", time_zone="America/New_York")
    bob = factories.make_user(email="bob@example.com", name="Bob Berlin", time_zone="Europe/Berlin")
    ops = Team(name="Ops", description="", members=[TeamMember(user=me), TeamMember(user=bob)])
    data = Team(name="Data", description="")
    db.session.add_all([ops, data])
    db.session.commit()
    # Ops' daily rotation hands off at 09:00 UTC: Bob until 5 March 09:00, then Nina for a day.
    rota = factories_schedules.make_schedule(name="Ops rota", time_zone="UTC", team_id=ops.id)
    factories_schedules.make_layer(rota, [bob, me], start=datetime(2026, 3, 4, 9, 0))
    warehouse = factories_schedules.make_schedule(name="Warehouse", time_zone="UTC", team_id=data.id)
    factories_schedules.make_layer(warehouse, [bob], start=datetime(2026, 3, 1, 9, 0))
    service = factories_escalation.make_service(factories_escalation.make_policy([(5, [me])]), name="Web")
    mine = factories_escalation.open_incident(service, summary="Checkout down")
    others = factories_escalation.open_incident(service, summary="Someone else's")
    mine.assigned_to_id, others.assigned_to_id = me.id, bob.id
    db.session.commit()
    return {"me": me, "bob": bob, "mine": mine, "others": others, "rota": rota, "warehouse": warehouse}


@pytest.fixture
def as_me(client, auth, world):
    auth.login(world["me"].email)
    return client


def test_my_open_incidents_with_acknowledge_without_javascript(as_me, auth, world):
    html = as_me.get("/").get_data(as_text=True)
    section = html[html.index('id="my-incidents"') : html.index('id="me-on-call"')]
    assert "Checkout down" in section and "Someone else" not in section
    action = f"/incidents/{world['mine'].id}/acknowledge?next=/"
    assert f'action="{action}"' in section
    response = as_me.post(action, data={"csrf_token": auth.csrf_token()})
    assert response.status_code == 302 and response.headers["Location"] == "/"
    after = as_me.get("/").get_data(as_text=True)
    assert f"Incident #{world['mine'].number} acknowledged." in after
    assert db.session.get(Incident, world["mine"].id).status == "acknowledged"
    section = after[after.index('id="my-incidents"') : after.index('id="me-on-call"')]
    assert "Checkout down" in section and "Acknowledge" not in section and "Resolve" in section


def test_acknowledge_with_htmx_answers_a_notice_and_refreshes_the_dashboard(as_me, auth, world):
    action = f"/incidents/{world['mine'].id}/acknowledge?next=/"
    response = as_me.post(action, data={"csrf_token": auth.csrf_token()}, headers=HTMX)
    assert response.status_code == 200 and "incidents-changed" in response.headers["HX-Trigger"]
    assert "acknowledged" in response.get_data(as_text=True)
    block = as_me.get("/", headers=HTMX)
    body = block.get_data(as_text=True)
    assert "<html" not in body and body.lstrip().startswith('<div id="dashboard"')
    assert "badge-acknowledged" in body and "HX-Request" in block.headers["Vary"]


def test_am_i_on_call_until_when_and_my_next_shift_in_my_zone(as_me, world, clock):
    text = _text(as_me.get("/").get_data(as_text=True))
    assert "You are not on call now." in text
    # Nina's shift: 5 March 09:00 – 6 March 09:00 UTC, 04:00 – 04:00 EST in New York.
    assert "Your next shift: Ops rota , Thu 05 Mar 2026 04:00 – Fri 06 Mar 2026 04:00 EST (starts in 21 h )" in text
    clock.set(datetime(2026, 3, 5, 10, 0, tzinfo=UTC))
    text = _text(as_me.get("/").get_data(as_text=True))
    assert "on call now in Ops rota until Fri 06 Mar 2026 04:00 EST ( in 23 h )" in text
    # The next one crosses New York's switch to summer time: each end names its zone.
    assert "Your next shift: Ops rota , Sat 07 Mar 2026 04:00 EST – Sun 08 Mar 2026 05:00 EDT" in text


def test_my_teams_on_call_now_come_first(as_me, world):
    html = as_me.get("/").get_data(as_text=True)
    panel = _text(html[html.index('id="on-call-now"') :])
    assert "Your team Ops Ops rota : Bob Berlin" in panel
    assert "Other schedules Warehouse : Bob Berlin" in panel
    assert panel.index("Ops rota") < panel.index("Warehouse")
    assert "Your team Data" not in panel  # Nina is not in Data


@pytest.mark.parametrize("htmx", [False, True], ids=["page", "block"])
def test_dashboard_queries_nothing_while_rendering(as_me, world, queries_while_rendering, htmx):
    db.session.expunge_all()
    del queries_while_rendering[:]
    response = as_me.get("/", headers=HTMX if htmx else {})
    assert response.status_code == 200
    assert queries_while_rendering == []


def _statements(client) -> int:
    seen = []

    def count(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    db.session.expunge_all()
    event.listen(db.engine, "before_cursor_execute", count)
    try:
        assert client.get("/").status_code == 200
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    return len(seen)


def test_dashboard_queries_do_not_grow_with_schedules_incidents_or_people(as_me, world):
    as_me.get("/")  # compiles the schedules once (cached per revision, as in a running server)
    few = _statements(as_me)
    service = factories_escalation.make_service(name="More")
    for n in range(6):
        person = factories.make_user(name=f"Person {n}")
        factories.make_contact_method(person, kind="sms", address=f"+1415555010{n}")
        schedule = factories_schedules.make_schedule(name=f"Extra {n}", team_id=world["rota"].team_id)
        factories_schedules.make_layer(schedule, [person, world["me"]], start=datetime(2026, 3, 1, 9, 0))
        start = NOW + timedelta(days=n + 2)
        factories_schedules.make_override(schedule, world["me"], start, start + timedelta(days=1))
        incident = factories_escalation.open_incident(service, summary=f"Extra {n}")
        incident.assigned_to_id = world["me"].id
    db.session.commit()
    as_me.get("/")
    many = _statements(as_me)
    assert many == few, (few, many)
    assert few <= 30
