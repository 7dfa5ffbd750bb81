import os
import signal
import socket
import subprocess
import sys
import time

import psutil
import pytest
import requests

from openduty.models import ApiToken, User
from tests.processes import embedded_redis_servers, free_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_create_user_prints_generated_password(runner, app):
    result = runner.invoke(args=["openduty", "create-user", "Bob@Example.com", "--admin"])
    assert result.exit_code == 0, result.output
    password = result.output.split("Password (shown once): ")[1].strip()
    user = User.by_email("bob@example.com")
    assert user.is_admin and user.check_password(password)


def test_create_user_rejects_bad_and_duplicate_email(runner, app):
    assert "Not a valid email" in runner.invoke(args=["openduty", "create-user", "nope"]).output
    runner.invoke(args=["openduty", "create-user", "a@example.com", "--password", "pw123456"])
    result = runner.invoke(args=["openduty", "create-user", "a@example.com"])
    assert result.exit_code != 0
    assert "already exists" in result.output


def test_create_token_prints_a_working_token(runner, app, client):
    runner.invoke(args=["openduty", "create-user", "a@example.com", "--password", "pw123456"])
    result = runner.invoke(args=["openduty", "create-token", "a@example.com", "--name", "ci"])
    token = result.output.strip()
    assert ApiToken.authenticate(token).name == "ci"
    assert client.get("/api/v1/users", headers={"Authorization": f"Token {token}"}).status_code == 200
    assert runner.invoke(args=["openduty", "create-token", "ghost@example.com"]).exit_code != 0


def test_ensure_admin_creates_one_admin_once(runner, app):
    first = runner.invoke(args=["openduty", "ensure-admin"])
    assert "password:" in first.output
    second = runner.invoke(args=["openduty", "ensure-admin"])
    assert second.output == ""


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_run_all_serves_and_stops_cleanly(tmp_path, stop_signal):
    """`run-all` on the embedded defaults: healthy /healthz, then SIGTERM or Ctrl-C stops the web
    app, the worker and the embedded Redis."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(OPENDUTY_INSTANCE=str(tmp_path), PORT=str(free_port()))
    flask = [sys.executable, "-m", "flask", "--app", "app"]
    subprocess.run([*flask, "db", "upgrade"], env=env, cwd=ROOT, check=True, capture_output=True)
    process = subprocess.Popen(
        [*flask, "openduty", "run-all"], env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = requests.get(f"http://127.0.0.1:{env['PORT']}/healthz", timeout=1)
                if response.status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, "run-all did not become healthy"
            time.sleep(0.1)
        assert response.json() == {"status": "ok", "database": "ok", "redis": "ok"}
        assert (tmp_path / "openduty.db").exists() and (tmp_path / "secret_key").exists()
        started = psutil.Process(process.pid).children(recursive=True) + embedded_redis_servers(tmp_path)
        assert any(p.name() == "redis-server" for p in started)
        assert any(p.name() == "openduty worker" for p in started)  # forked from run-all, named so
        process.send_signal(stop_signal)
        output = process.communicate(timeout=20)[0].decode()
        assert process.returncode == 0, output
        assert "Openduty is running" in output
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    # Nothing is left running or listening once it stopped.
    assert psutil.wait_procs(started, timeout=10)[1] == []
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", int(env["PORT"]))) != 0
