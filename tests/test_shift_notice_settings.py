"""A person's shift notice settings: the profile form and the users API, validated (422, nothing
changed) and re-planning their timers when saved."""

from openduty import shift_notices, timers
from openduty.extensions import db
from openduty.models import ShiftNoticeSettings
from tests import factories


def test_the_profile_form_saves_the_settings(client, auth, member, post_form):
    method = factories.make_contact_method(member, "email", "bob.pager@example.com")
    auth.login("bob@example.com")
    page = client.get("/profile").get_data(as_text=True)
    assert "Before and after a shift" in page and 'value="12"' in page
    data = {"reminder_hours": "6", "reminder_contact_method_id": str(method.id), "weekly_summary": "y"}
    response = post_form("/profile/shift-notices", data, htmx=True)
    assert response.status_code == 200 and "Saved." in response.get_data(as_text=True)
    row = db.session.get(ShiftNoticeSettings, member.id)
    assert (row.reminder_hours, row.contact_method_id, row.weekly_summary) == (6, method.id, True)
    assert timers.timer_due(shift_notices.SUMMARY_KIND, member.id) is not None
    off = {"reminder_hours": "0", "reminder_contact_method_id": ""}
    assert post_form("/profile/shift-notices", off).status_code == 302
    db.session.expire_all()
    row = db.session.get(ShiftNoticeSettings, member.id)
    assert (row.reminder_hours, row.contact_method_id, row.weekly_summary) == (0, None, False)
    assert timers.timer_due(shift_notices.SUMMARY_KIND, member.id) is None


def test_the_profile_form_refuses_bad_settings(client, auth, member, post_form):
    other = factories.make_user(name="Other")
    theirs = factories.make_contact_method(other, "email", "other@example.com")
    auth.login("bob@example.com")
    response = post_form("/profile/shift-notices", {"reminder_hours": "200", "reminder_contact_method_id": theirs.id})
    assert response.status_code == 422
    text = response.get_data(as_text=True)
    assert "at most 168" in text or "168" in text
    assert "Choose one of your contact methods" in text
    assert db.session.get(ShiftNoticeSettings, member.id) is None


def test_the_users_api_reads_and_changes_the_settings(api, member):
    api.as_user(member)
    assert api.get(f"/api/v1/users/{member.id}").get_json()["reminder_hours"] == 12
    changed = api.patch(f"/api/v1/users/{member.id}", json={"reminder_hours": 3, "weekly_summary": True, "name": "B"})
    assert changed.status_code == 200, changed.get_json()
    body = changed.get_json()
    assert (body["reminder_hours"], body["weekly_summary"], body["name"]) == (3, True, "B")
    bad = api.patch(f"/api/v1/users/{member.id}", json={"reminder_hours": -1, "name": "Changed"})
    assert bad.status_code == 422
    assert set(bad.get_json()["error"]["fields"]) == {"reminder_hours"}
    db.session.expire_all()
    assert member.name == "B" and db.session.get(ShiftNoticeSettings, member.id).reminder_hours == 3
