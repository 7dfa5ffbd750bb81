"""The deployment files in deploy/: gunicorn starts with the committed config (the web processes
docs/deployment.md describes) and replaces a killed web process; the systemd units run commands
that exist."""

import configparser
import shlex

import psutil
import requests

from openduty.cli import cli
from tests.processes import ROOT, AppProcesses, RedisServer, base_env, free_port, healthy, wait_for

UNITS = sorted((ROOT / "deploy" / "systemd").glob("*.service"))


def test_gunicorn_runs_with_the_committed_config_and_replaces_a_killed_web_process(tmp_path):
    redis = RedisServer(tmp_path / "redis").start()
    env = base_env(OPENDUTY_INSTANCE=str(tmp_path / "instance"), DATABASE_URL=f"sqlite:///{tmp_path / 'o.db'}",
                   REDIS_URL=redis.url, SECRET_KEY="deploy")  # fmt: skip
    processes = AppProcesses(tmp_path / "processes", env)
    port = free_port()
    try:
        arbiter = processes.gunicorn(port, workers=2)
        web = lambda: [p for p in psutil.Process(arbiter.pid).children() if p.is_running()]  # noqa: E731
        wait_for(lambda: len(web()) == 2, "WEB_CONCURRENCY=2 web processes")
        assert "Using worker: gthread" in processes.log("web")
        killed = web()[0]
        killed.kill()
        wait_for(lambda: killed.pid not in [p.pid for p in web()] and len(web()) == 2, "gunicorn to replace it")
        wait_for(lambda: healthy(port), "/healthz after the kill")
        assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).json()["redis"] == "ok"
    finally:
        processes.stop_all()
        redis.stop()


def test_systemd_units_run_commands_that_exist():
    assert [u.name for u in UNITS] == ["openduty-smtp.service", "openduty-web.service", "openduty-worker@.service"]
    for unit in UNITS:
        parser = configparser.ConfigParser(interpolation=None, strict=True)
        parser.optionxform = str
        parser.read(unit)
        assert {"Unit", "Service", "Install"} <= set(parser.sections()), unit.name
        service = parser["Service"]
        assert service["Restart"] == "always", unit.name
        assert service["EnvironmentFile"] == "/etc/openduty.env", unit.name
        command = shlex.split(service["ExecStart"])
        if "gunicorn" in command[0]:
            assert command[1:] == ["-c", "deploy/gunicorn.conf.py", "app:app"]
            assert (ROOT / "deploy" / "gunicorn.conf.py").exists()
        else:
            assert command[1:4] == ["--app", "app", "openduty"], unit.name
            assert command[4] in cli.commands, unit.name
