"""users: directory_dn (a directory user's LDAP entry, how logins and sync find them again)

Revision ID: e4b7c9d1a2f6
Revises: e2b7c4a9f1d3
Create Date: 2026-12-01 18:30:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'e4b7c9d1a2f6'
down_revision = 'e2b7c4a9f1d3'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('directory_dn', sa.String(length=1000), nullable=True))
        batch_op.create_unique_constraint('uq_users_directory_dn', ['directory_dn'])


def downgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_constraint('uq_users_directory_dn', type_='unique')
        batch_op.drop_column('directory_dn')
