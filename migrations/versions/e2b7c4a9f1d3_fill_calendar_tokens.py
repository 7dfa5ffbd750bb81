"""users: give every user without one a calendar token

Calendar tokens used to be made the first time a page showed a feed link, so that GET wrote to
the database. They are now made with the user; this fills them for users created before. Data
only; there is nothing to downgrade (a token is harmless, and the old code keeps using it).

Revision ID: e2b7c4a9f1d3
Revises: d9a4f6b2c1e7
Create Date: 2026-12-01 18:30:00

"""
import secrets

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'e2b7c4a9f1d3'
down_revision = 'd9a4f6b2c1e7'
branch_labels = None
depends_on = None

_users = sa.table("users", sa.column("id", sa.Integer), sa.column("calendar_token", sa.String))


def upgrade():
    conn = op.get_bind()
    ids = conn.execute(sa.select(_users.c.id).where(_users.c.calendar_token.is_(None))).scalars().all()
    for user_id in ids:
        conn.execute(
            _users.update().where(_users.c.id == user_id).values(calendar_token=secrets.token_urlsafe(24))
        )


def downgrade():
    pass
