"""Security headers and cookies (issue 8, finding 8)."""

from tests import factories, factories_events


def test_every_answer_carries_the_security_headers(client, app):
    for path in ("/login", "/healthz", "/static/app.css", "/api/v1/users", "/ack/not-a-token"):
        response = client.get(path)
        response.close()
        csp = response.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp, path
        assert "unsafe-inline" not in csp.split("style-src-attr")[0], path  # never for scripts
        assert response.headers["X-Content-Type-Options"] == "nosniff", path
        assert response.headers["Referrer-Policy"] == "same-origin", path
        assert "Strict-Transport-Security" not in response.headers  # http BASE_URL


def test_session_cookie_is_samesite_lax_and_httponly(client, auth, app):
    factories.make_user(email="alice@example.com")
    response = auth.login("alice@example.com")
    cookie = response.headers["Set-Cookie"]
    assert "SameSite=Lax" in cookie and "HttpOnly" in cookie and "Secure" not in cookie


def test_https_base_url_makes_cookies_secure_and_sends_hsts(app_with):
    secure = app_with(BASE_URL="https://duty.example.com")
    factories.make_user(email="alice@example.com")
    login = secure.test_client().get("/login", base_url="https://duty.example.com")
    assert login.headers["Strict-Transport-Security"] == "max-age=31536000"
    assert "Secure" in login.headers["Set-Cookie"]


def test_event_images_are_links_not_loaded(client, auth, app):
    factories.make_user(email="alice@example.com")
    image = "https://grafana.example.com/render/1.png"
    incident = factories_events.make_incident(details={"images": [{"src": image, "alt": "graph"}]})
    auth.login("alice@example.com")
    html = client.get(f"/incidents/{incident.id}").get_data(as_text=True)
    assert f'href="{image}"' in html
    assert "<img" not in html
