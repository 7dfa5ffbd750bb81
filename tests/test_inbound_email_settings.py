"""Email integrations' settings and addresses: the API, the service page and the settings page."""

from openduty.extensions import db
from openduty.models import EmailSettings, Integration, Team, TeamMember
from openduty.models.email_integration import DEFAULT_RESOLVE_REGEX
from tests.factories_events import make_email_integration, make_integration, make_service


def test_the_api_creates_an_email_integration_with_settings_and_shows_its_address(api, admin, app):
    app.config["INBOUND_EMAIL_DOMAIN"] = "alerts.example.com"
    api.as_user(admin)
    service = make_service()
    response = api.post(
        f"/api/v1/services/{service.id}/integrations",
        json={"kind": "email", "email": {"dedup_source": "body_regex", "dedup_regex": r"Ticket #(\d+)"}},
    )
    assert response.status_code == 201, response.json
    created = response.json
    assert created["address"] == f"{created['key']}@alerts.example.com"
    assert created["url"] == f"mailto:{created['key']}@alerts.example.com"
    assert created["name"] == "Email"
    assert created["email"] == {
        "dedup_source": "body_regex",
        "dedup_regex": r"Ticket #(\d+)",
        "resolve_regex": DEFAULT_RESOLVE_REGEX,
    }
    path = f"/api/v1/services/{service.id}/integrations/{created['id']}"
    changed = api.patch(path, json={"email": {"resolve_regex": "^CLEARED", "dedup_source": "subject"}})
    assert changed.status_code == 200
    assert changed.json["email"] == {
        "dedup_source": "subject",
        "dedup_regex": r"Ticket #(\d+)",
        "resolve_regex": "^CLEARED",
    }
    assert api.patch(path, json={"name": "Nagios mail"}).json["name"] == "Nagios mail"
    assert api.get(path).json["email"]["resolve_regex"] == "^CLEARED"
    other = api.post(f"/api/v1/services/{service.id}/integrations", json={"kind": "generic"}).json
    assert other["address"] is None and other["email"] is None


def test_bad_settings_are_refused_naming_each_field_and_change_nothing(api, admin):
    api.as_user(admin)
    service = make_service()
    base = f"/api/v1/services/{service.id}/integrations"
    response = api.post(
        base,
        json={
            "kind": "email",
            "name": "x" * 201,
            "email": {"dedup_source": "body_regex", "dedup_regex": "Ticket #\\d+", "resolve_regex": "(unclosed"},
        },
    )
    assert response.status_code == 422
    fields = response.json["error"]["fields"]
    assert set(fields) == {"name", "email.dedup_regex", "email.resolve_regex"}
    assert "exactly 1 capture group" in fields["email.dedup_regex"]
    assert "Not a valid regular expression" in fields["email.resolve_regex"]
    for email, field, says in [
        ({"dedup_source": "subject_regex"}, "email.dedup_regex", "needs a pattern"),
        ({"dedup_source": "header"}, "email.dedup_source", "Use one of subject, subject_regex, body_regex"),
        ({"dedup_regex": "(a)(b)"}, "email.dedup_regex", "not 2 capture groups"),
        ({"dedup_regex": "(x" * 300}, "email.dedup_regex", "too long"),
        ({"resolve_regex": 5}, "email.resolve_regex", "must be text"),
        ({"spam": 1}, "email.spam", "Unknown field"),
        ("subject", "email.email", "as an object"),
    ]:
        response = api.post(base, json={"kind": "email", "email": email})
        assert response.status_code == 422, email
        assert says in response.json["error"]["fields"][field], (email, response.json)
    response = api.post(base, json={"kind": "generic", "email": {}})
    assert response.json["error"]["fields"] == {"email": "Only email integrations have email settings."}
    assert db.session.query(Integration).count() == 0
    integration = make_email_integration(service)
    path = f"{base}/{integration.id}"
    response = api.patch(path, json={"email": {"dedup_source": "body_regex", "dedup_regex": "[a-"}})
    assert response.status_code == 422 and "email.dedup_regex" in response.json["error"]["fields"]
    db.session.expire_all()
    assert db.session.get(EmailSettings, integration.id).dedup_source == "subject"


def test_the_service_page_shows_the_address_to_those_who_may_see_the_key(client, auth, admin, member, app):
    app.config["INBOUND_EMAIL_DOMAIN"] = "alerts.example.com"
    service = make_service()
    integration = make_email_integration(service, dedup_source="subject_regex", dedup_regex=r"host (\S+)")
    auth.login(admin.email)
    page = client.get(f"/services/{service.id}").get_data(as_text=True)
    assert f"{integration.key}@alerts.example.com" in page
    assert r"<code>host (\S+)</code> on the subject" in page
    assert "Change email settings" in page
    auth.logout()
    auth.login(member.email)
    page = client.get(f"/services/{service.id}").get_data(as_text=True)
    assert integration.key not in page and "@alerts.example.com" in page
    assert "Change email settings" not in page


def test_a_teams_manager_sees_the_address(client, auth, member):
    team = Team(name="Ops", description="")
    team.members = [TeamMember(user=member, role="manager")]
    db.session.add(team)
    db.session.commit()
    service = make_service(team_id=team.id)
    integration = make_email_integration(service)
    auth.login(member.email)
    assert f"{integration.key}@localhost" in client.get(f"/services/{service.id}").get_data(as_text=True)


def test_the_add_form_and_the_settings_page(client, auth, admin):
    auth.login(admin.email)
    service = make_service()
    token = auth.csrf_token()
    form = {"csrf_token": token, "kind": "email", "name": "Mail", "dedup_source": "subject", "dedup_regex": ""}
    response = client.post(f"/services/{service.id}/integrations", data={**form, "resolve_regex": "(bad"})
    assert response.status_code == 422
    assert db.session.query(Integration).count() == 0
    page = response.get_data(as_text=True)
    assert "The resolve pattern: Not a valid regular expression" in page and 'value="(bad"' in page
    response = client.post(f"/services/{service.id}/integrations", data={**form, "resolve_regex": "^Cleared"})
    assert response.status_code == 302
    [integration] = db.session.query(Integration).all()
    assert integration.email_settings.resolve_regex == "^Cleared"

    path = f"/services/{service.id}/integrations/{integration.id}/email"
    page = client.get(path).get_data(as_text=True)
    assert f"{integration.key}@localhost" in page and 'value="^Cleared"' in page
    bad = {"csrf_token": token, "dedup_source": "body_regex", "dedup_regex": "no group", "resolve_regex": ""}
    response = client.post(path, data=bad)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "exactly 1 capture group" in html and "nothing was saved" in html
    db.session.expire_all()
    assert integration.email_settings.dedup_source == "subject"
    good = {**bad, "dedup_regex": r"job (\w+)"}
    assert client.post(path, data=good).status_code == 302
    db.session.expire_all()
    settings = integration.email_settings
    assert (settings.dedup_source, settings.dedup_regex, settings.resolve_regex) == ("body_regex", r"job (\w+)", None)
    generic = make_integration(service, kind="generic")
    assert client.get(f"/services/{service.id}/integrations/{generic.id}/email").status_code == 404


def test_the_pages_query_nothing_while_rendering(client, auth, admin, queries_while_rendering):
    service = make_service()
    integration = make_email_integration(service)
    auth.login(admin.email)
    for path in [f"/services/{service.id}", f"/services/{service.id}/integrations/{integration.id}/email"]:
        db.session.expire_all()  # as in a fresh request
        del queries_while_rendering[:]
        assert client.get(path).status_code == 200
        assert queries_while_rendering == [], path
