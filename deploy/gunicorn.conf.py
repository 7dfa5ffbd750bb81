"""Gunicorn settings for Openduty's web processes (docs/deployment.md):

    gunicorn -c deploy/gunicorn.conf.py app:app

Every setting can be changed through the environment, so one file serves every machine.
"""

import os

# Where to listen: behind a proxy on the same machine, loopback; GUNICORN_BIND=0.0.0.0:8000 when
# the proxy runs elsewhere.
bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
# Worker processes (WEB_CONCURRENCY, gunicorn's own name for it), each with threads: ingest's group
# commit folds the events that arrive together in one process into one transaction, so threads
# serve a burst of events better than more processes (docs/performance.md: 2 x 32 measured).
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "32"))
backlog = 2048
# An ingest request may wait EVENTS_COMMIT_TIMEOUT_SECONDS (30) for its commit: more than that
# before gunicorn kills a silent worker, and as long for requests in hand when stopping.
timeout = 60
graceful_timeout = 30
# Keep connections from the proxy open a little longer than its idle timeout would close them.
keepalive = 75
# Logs to stderr (the journal under systemd); the access log only when asked.
errorlog = "-"
accesslog = "-" if os.environ.get("GUNICORN_ACCESS_LOG") == "1" else None


def child_exit(server, worker):
    """A web process ended: prometheus_client's bookkeeping for it (docs/monitoring.md).

    Imported only with PROMETHEUS_MULTIPROC_DIR set here: imported without it, prometheus_client
    would count in memory in this process and in every web process forked from it later.
    """
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess  # see the docstring: not at the top

        multiprocess.mark_process_dead(worker.pid)
