"""App-wide request limits: body size (413) and JSON depth (400), with messages, changing nothing."""

import json

import pytest

from openduty import validation
from openduty.models import Schedule
from tests import factories


def _nested(depth: int) -> str:
    return '{"name": ' + "[" * (depth - 1) + "1" + "]" * (depth - 1) + "}"


def test_loads_limits_depth_without_recursion():
    assert validation.loads(_nested(validation.MAX_JSON_DEPTH)) is not None
    for depth in (validation.MAX_JSON_DEPTH + 1, 5000, 200_000):
        with pytest.raises(validation.JsonTooDeep, match="nested deeper than 64"):
            validation.loads(_nested(depth))
        with pytest.raises(validation.JsonTooDeep):
            validation.loads(_nested(depth).encode())
    # A wide body with many brackets but little depth is fine.
    assert len(validation.loads(json.dumps([[i] for i in range(10_000)]))) == 10_000


def test_loads_refuses_nan_and_infinity():
    for constant in ("NaN", "Infinity", "-Infinity"):
        with pytest.raises(ValueError, match="not a JSON value"):
            validation.loads(f'{{"x": {constant}}}')


@pytest.mark.parametrize("depth", [65, 1000, 100_000])
@pytest.mark.parametrize("method", ["post", "patch"])
def test_api_json_nested_too_deep_is_400(app, api, admin, method, depth):
    api.as_user(admin)
    user = factories.make_user()  # an object that exists, so PATCH reaches the body
    path = "/api/v1/schedules" if method == "post" else f"/api/v1/users/{user.id}"
    response = getattr(api, method)(path, data=_nested(depth), content_type="application/json")
    assert response.status_code == 400, response.get_data(as_text=True)
    assert "nested deeper than 64 levels" in response.get_json()["error"]["message"]
    assert Schedule.query.count() == 0


def test_api_invalid_json_says_why(app, api, admin):
    api.as_user(admin)
    response = api.post("/api/v1/schedules", data='{"name": NaN}', content_type="application/json")
    assert response.status_code == 400
    assert "not valid JSON" in response.get_json()["error"]["message"]


def test_api_body_over_max_content_length_is_413(app, api, admin):
    api.as_user(admin)
    body = json.dumps({"name": "x" * app.config["MAX_CONTENT_LENGTH"]})
    response = api.post("/api/v1/schedules", data=body, content_type="application/json")
    assert response.status_code == 413
    assert response.get_json()["error"] == {
        "code": "payload_too_large",
        "message": "The request is too large (at most 1 MB); send less data.",
    }
    assert Schedule.query.count() == 0


def test_form_over_max_content_length_is_413_page(app, client, auth, admin):
    auth.login(admin.email)
    token = auth.csrf_token()
    body = {"csrf_token": token, "name": "x" * app.config["MAX_CONTENT_LENGTH"], "time_zone": "UTC"}
    response = client.post("/schedules", data=body)
    assert response.status_code == 413
    assert "The request is too large (at most 1 MB); send less data." in response.get_data(as_text=True)
    assert Schedule.query.count() == 0


def test_max_content_length_is_a_setting(app, api, admin):
    app.config["MAX_CONTENT_LENGTH"] = 2048
    api.as_user(admin)
    response = api.post("/api/v1/schedules", json={"name": "x" * 3000})
    assert response.status_code == 413
    assert "at most 2 KB" in response.get_json()["error"]["message"]


def test_calendar_upload_may_exceed_max_content_length(app, api, admin):
    """Layer create/edit takes a calendar of up to MAX_ICAL_BYTES on top of the usual limit."""
    app.config["MAX_CONTENT_LENGTH"] = 2048
    api.as_user(admin)
    schedule = api.post("/api/v1/schedules", json={"name": "Ops", "time_zone": "UTC"}).get_json()
    padding = "X-PAD:" + "x" * 5000
    calendar = f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\n{padding}\r\nEND:VCALENDAR\r\n"
    response = api.post(f"/api/v1/schedules/{schedule['id']}/layers", json={"name": "Big", "ical_data": calendar})
    assert response.status_code != 413, response.get_data(as_text=True)
