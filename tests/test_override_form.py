"""The override form and list (issue 15, finding 4): errors next to the override form's own fields
(not the layer form's), a range wholly in the past refused, years on both ends of a range."""

import re
from datetime import UTC, datetime

import pytest

from openduty.extensions import db
from openduty.models import ScheduleOverride
from tests import factories
from tests.factories_schedules import make_layer, make_override, make_schedule

NOW = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)


@pytest.fixture
def ops(app, admin, clock):
    clock.set(NOW)
    schedule = make_schedule(name="Ops", time_zone="Europe/Budapest")
    make_layer(schedule, [admin], datetime(2026, 3, 2, 9), 1, "weeks")
    return schedule


def _count() -> int:
    return db.session.scalar(db.select(db.func.count(ScheduleOverride.id)))


def _field_errors(page: str, form_id: str) -> str:
    """The part of `page` from the form's section to the next section."""
    start = page.index(form_id)
    return page[start : page.index("</section>", start)]


def test_override_errors_show_under_the_override_form_only(client, auth, admin, ops):
    auth.login(admin.email)
    data = {"csrf_token": auth.csrf_token(), "user_id": admin.id, "start": "soon", "end": "2026-03-12T11:00"}
    response = client.post(f"/schedules/{ops.id}/overrides", data=data)
    page = response.get_data(as_text=True)
    assert response.status_code == 422 and _count() == 0
    override_form = _field_errors(page, 'id="override-form"')
    assert 'class="field-error">Start is not a date and time' in override_form
    assert 'value="soon"' in override_form  # what was typed is kept, in its own form
    layer_form = page[page.index(f'action="/schedules/{ops.id}/layers"') :]
    layer_form = layer_form[: layer_form.index("</form>")]
    assert "field-error" not in layer_form and 'value="soon"' not in layer_form


def test_an_override_wholly_in_the_past_is_refused_by_the_form(client, auth, admin, ops):
    auth.login(admin.email)
    data = {
        "csrf_token": auth.csrf_token(),
        "user_id": admin.id,
        "start": "2025-03-10T09:00",
        "end": "2025-03-11T09:00",
    }
    response = client.post(f"/schedules/{ops.id}/overrides", data=data)
    page = response.get_data(as_text=True)
    assert response.status_code == 422 and _count() == 0
    assert "End (Tue 11 Mar 2025 09:00 CET) is in the past" in page
    data.update(start="2026-03-04T09:00", end="2026-03-04T18:00")  # ends later today: it still counts
    assert client.post(f"/schedules/{ops.id}/overrides", data=data).status_code == 302 and _count() == 1


def test_override_ranges_show_both_years(client, auth, admin, ops):
    bob = factories.make_user(name="Bob")
    start = datetime(2026, 12, 10, 8, tzinfo=UTC)
    make_override(ops, bob, start, start.replace(year=2027), note="n" * 500)
    auth.login(admin.email)
    page = client.get(f"/schedules/{ops.id}").get_data(as_text=True)
    assert "Thu 10 Dec 2026 08:00 – Fri 10 Dec 2027 08:00 UTC" in page  # in the viewer's zone (UTC)


def test_until_is_the_end_of_the_persons_run_not_of_the_shift(client, auth, admin, ops):
    """Issue 15, finding 5: the layer hands over on Mon 09 Mar 09:00, but an override keeps the same
    person on until Tue 10 Mar: "until" said Mon 09 Mar, a break that is none."""
    bob = factories.make_user(name="Bob")
    duo = make_schedule(name="Duo", time_zone="Europe/Budapest")
    make_layer(duo, [admin, bob], datetime(2026, 3, 2, 9), 1, "weeks")
    make_override(duo, admin, datetime(2026, 3, 9, 8, tzinfo=UTC), datetime(2026, 3, 10, 8, tzinfo=UTC))
    auth.login(admin.email)
    page = client.get(f"/schedules/{duo.id}").get_data(as_text=True)
    until = re.search(r"until <time[^>]*>([^<]+)</time>", page)
    assert until and until.group(1).startswith("Tue 10 Mar 2026 08:00"), until  # the viewer's zone: UTC
    assert "Tue 10 Mar 2026 08:00" in client.get("/schedules").get_data(as_text=True)  # the list
