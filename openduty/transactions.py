"""SQL helpers below the domain: how a write transaction starts, and how many rows go in one
statement, on each database."""

from collections.abc import Iterable
from typing import Any

from sqlalchemy import bindparam, func
from sqlalchemy.dialects.postgresql import ARRAY

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


def many_rows(**types):
    """`unnest(:a::T[], :b::U[], ...) AS anon(a, b, ...)`, to select from: rows given as one array
    per column (PostgreSQL; `rows_as` gives the parameters).

    PostgreSQL's way to write many rows with one statement whose text is the same for any number
    of rows, so psycopg parses it once and prepares it. Multi-row VALUES (SQLAlchemy's
    "insertmanyvalues", what SQLite gets) make a new text for each row count, and past 50
    parameters one that psycopg parses afresh every time (measured: a tenth of a saturated web
    process's CPU in ingest)."""
    arrays = (bindparam(name, type_=ARRAY(type_)) for name, type_ in types.items())
    return func.unnest(*arrays).table_valued(*types).render_derived()


def rows_as(dialect: str, rows: list[dict[str, Any]], columns: Iterable[str], **same: Any):
    """The parameters for writing `rows` (`same` in each): for PostgreSQL's `many_rows`, one list
    per column and `same` once; for executemany (SQLite), the rows, each with `same`."""
    if dialect == "postgresql":
        return {column: [row[column] for row in rows] for column in columns} | same
    return [row | same for row in rows]
