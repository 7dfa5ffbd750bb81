"""The incident console and incident page, like every other page, only render what their view loaded:
no statement reaches the database while a template or an htmx block renders (issue 10). The services,
policies and users pages are checked in test_views_render.py, the schedule pages and panels in
test_pages_read_only.py, all with the `queries_while_rendering` fixture (tests/plugins/rendering.py)."""

import pytest

from openduty.extensions import db
from tests import factories, factories_escalation


@pytest.fixture
def world(app, admin):
    member = factories.make_user(email="mel@example.com", name="Mel Member")
    policy = factories_escalation.make_policy([(0, [member]), (5, [admin])], name="Primary")
    service = factories_escalation.make_service(policy, name="Web")
    incident = factories_escalation.open_incident(service, summary="Disk full on db1")
    incident.log("note", "Looking into it.", by=admin)
    db.session.commit()
    return {"incident": incident, "service": service}


@pytest.mark.parametrize("htmx", [False, True], ids=["page", "block"])
@pytest.mark.parametrize(
    "path",
    ["/", "/incidents", "/incidents?status=all&q=disk", "/incidents/count", "/incidents/{incident}"],
)
def test_incident_pages_query_nothing_while_rendering(client, auth, admin, world, queries_while_rendering, path, htmx):
    auth.login(admin.email)
    url = path.format(incident=world["incident"].id)
    db.session.expunge_all()  # as in a fresh request: an empty session (the test shares the app context)
    del queries_while_rendering[:]
    response = client.get(url, headers={"HX-Request": "true"} if htmx else {})
    assert response.status_code == 200, url
    assert queries_while_rendering == [], f"rendering GET {url} queried"
