"""The API's error answers: one JSON shape, and Retry-After set through `ApiError.retry_after`."""

from openduty.errors import ApiError
from tests.factories_escalation import make_pager


def _answer(app, exc: ApiError):
    with app.test_request_context("/api/v1/incidents"):
        return app.make_response(app.handle_user_exception(exc))


def test_a_429_with_retry_after_carries_the_header_and_nothing_else_in_the_body(app):
    response = _answer(app, ApiError(429, "Too many test notifications.", retry_after=42))
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "42"
    assert response.json == {"error": {"code": "too_many_requests", "message": "Too many test notifications."}}


def test_an_api_error_without_retry_after_sends_no_header(app):
    response = _answer(app, ApiError(422, "Fix the name.", fields={"name": "is required"}))
    assert response.status_code == 422 and "Retry-After" not in response.headers
    assert response.json["error"]["fields"] == {"name": "is required"}


def test_the_test_notification_limit_answers_429_with_retry_after(pager, api, app):
    """End to end: the API's one Retry-After raise (views/api/escalation.py) reaches the header."""
    app.config["TEST_NOTIFICATION_LIMIT"] = 1
    alice = make_pager("Alice", {"webhook": (pager.httpserver.url_for("/hook/ok"), 0)})
    api.as_user(alice)
    url = f"/api/v1/contact-methods/{alice.contact_methods[0].id}/test"
    assert api.post(url).status_code == 202
    over = api.post(url)
    assert over.status_code == 429 and int(over.headers["Retry-After"]) > 0
    assert "fields" not in over.json["error"]
