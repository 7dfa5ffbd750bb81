"""Watching templates render: what reached the database while a template (or one block of it, for
htmx) was rendering. Views load what their pages show; templates only read it (issue 10)."""

import pytest
from flask import before_render_template, template_rendered
from jinja2_fragments.flask import before_render_template_block, template_block_rendered
from sqlalchemy import event

from openduty.extensions import db


@pytest.fixture
def queries_while_rendering(app):
    """Every statement (and COMMIT) sent while a template or a block renders, as "template: SQL"."""
    rendering: list[str] = []
    queried: list[str] = []

    def on_statement(conn, cursor, statement, parameters, context, executemany):
        if rendering:
            queried.append(f"{rendering[-1]}: {statement.split(chr(10))[0][:120]}")

    def on_commit(conn):
        if rendering:
            queried.append(f"{rendering[-1]}: COMMIT")

    def started(sender, template=None, template_name=None, **extra):
        rendering.append(template_name or template.name)

    def finished(sender, **extra):
        rendering.pop()

    event.listen(db.engine, "before_cursor_execute", on_statement)
    event.listen(db.engine, "commit", on_commit)
    signals = [(before_render_template, started), (template_rendered, finished)]
    signals += [(before_render_template_block, started), (template_block_rendered, finished)]
    for signal, receiver in signals:
        signal.connect(receiver, app)
    yield queried
    event.remove(db.engine, "commit", on_commit)
    event.remove(db.engine, "before_cursor_execute", on_statement)
    for signal, receiver in signals:
        signal.disconnect(receiver, app)
