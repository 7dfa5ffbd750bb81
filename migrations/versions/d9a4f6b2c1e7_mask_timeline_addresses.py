"""log_entries: mask contact addresses and remote replies in earlier notify timeline entries

Timeline entries are read by every user. Entries written before masking named the full contact
address ("Paged Bob by Slack webhook (https://hooks.slack.com/services/T/B/token)") and failures
quoted up to 300 characters of what a webhook answered. This rewrites them the way new entries are
written: the address masked (openduty.masking), only the HTTP status of a webhook's or Slack's
answer, and no socket error text. Data only; there is nothing to downgrade.

Revision ID: d9a4f6b2c1e7
Revises: c5e8a1f2d3b4
Create Date: 2026-12-01 16:20:00

"""
import re

import sqlalchemy as sa
from alembic import op

from openduty.masking import contact_address

# revision identifiers, used by Alembic.
revision = 'd9a4f6b2c1e7'
down_revision = 'c5e8a1f2d3b4'
branch_labels = None
depends_on = None

_log = sa.table(
    "log_entries",
    sa.column("id", sa.Integer),
    sa.column("kind", sa.String),
    sa.column("message", sa.Text),
    sa.column("data", sa.JSON),
)
_notifications = sa.table(
    "notifications", sa.column("id", sa.Integer), sa.column("kind", sa.String), sa.column("address", sa.String)
)
# "Webhook: HTTP 500 <the reply>" and "Slack: could not connect (ConnectionError: <socket error>)".
_REPLY = re.compile(r"\b((?:Webhook|Slack): HTTP \d{3}) .*$", re.S)
_SOCKET = re.compile(r"\b((?:Webhook|Slack): could not connect) \(.*\)$", re.S)


def rewrite(message: str, kind: str, address: str) -> str:
    """The entry's text as it is written now (used by the test of this migration too)."""
    text = message.replace(f"({address})", f"({contact_address(kind, address)})")
    return _SOCKET.sub(r"\1", _REPLY.sub(r"\1", text))


def upgrade():
    conn = op.get_bind()
    addresses = {
        row.id: (row.kind, row.address)
        for row in conn.execute(sa.select(_notifications).where(_notifications.c.kind.notin_(("email", "xmpp"))))
    }
    if not addresses:
        return
    entries = conn.execute(
        sa.select(_log.c.id, _log.c.message, _log.c.data).where(_log.c.kind.in_(("notify", "notify_failed")))
    ).all()
    for entry in entries:
        notification_id = (entry.data or {}).get("notification_id") if isinstance(entry.data, dict) else None
        if notification_id not in addresses:
            continue
        message = rewrite(entry.message or "", *addresses[notification_id])
        if message != entry.message:
            conn.execute(sa.update(_log).where(_log.c.id == entry.id).values(message=message))


def downgrade():
    pass  # the full addresses are not kept anywhere to restore
