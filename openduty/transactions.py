"""Transaction helpers below the domain: how a write transaction starts on each database."""

from openduty.extensions import db


def begin_write() -> None:
    """Start the transaction as a writer on SQLite (BEGIN IMMEDIATE), so read-then-write cannot race.

    PostgreSQL needs nothing here: the upsert and SELECT ... FOR UPDATE lock what they touch.
    """
    connection = db.session.connection()
    if connection.dialect.name != "sqlite":
        return
    raw = connection.connection.dbapi_connection
    if not raw.in_transaction:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
