from redis import Redis

from openduty.extensions import db, redis


def test_healthz_ok(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok", "database": "ok", "redis": "ok"}


def test_healthz_503_when_redis_is_down(app, client):
    # A port nothing listens on: Redis is unreachable.
    app.extensions["openduty_redis"] = Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json["redis"] == "unavailable"
    assert response.json["database"] == "ok"
    app.extensions["openduty_redis"] = None
    assert redis.get().ping()


def test_healthz_503_when_database_is_down(app, client):

    original = app.config["SQLALCHEMY_DATABASE_URI"]
    engines = app.extensions["sqlalchemy"]._app_engines[app]
    broken = db.create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none", connect_args={"connect_timeout": 1})
    saved = engines[None]
    engines[None] = broken
    try:
        response = client.get("/healthz")
    finally:
        engines[None] = saved
    assert original
    assert response.status_code == 503
    assert response.json == {"status": "unavailable", "database": "unavailable", "redis": "ok"}
