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


# psycopg keeps the parsed form of a statement only up to this many parameters (and 4 kB of text).
PARSED_PARAMETERS_KEPT = 50


def as_arrays(dialect: str, rows: int, parameters_per_row: int) -> bool:
    """Whether to write `rows` rows with `many_rows` (PostgreSQL, when multi-row VALUES would pass
    PARSED_PARAMETERS_KEPT) rather than as multi-row VALUES / executemany (fewer rows, SQLite).

    Multi-row VALUES (SQLAlchemy's "insertmanyvalues") make a new text for each row count, and past
    50 parameters one that psycopg parses afresh every time: a tenth of a saturated web process's
    CPU in ingest. Below that, VALUES are cheaper: arrays cost a few hundred microseconds a
    statement to build and bind (measured on single-row ingest batches)."""
    return dialect == "postgresql" and rows * parameters_per_row > PARSED_PARAMETERS_KEPT


def many_rows(**types):
    """`unnest(:a::T[], :b::U[], ...) AS anon(a, b, ...)`, to select from: rows given as one array
    per column (PostgreSQL; `rows_as` gives the parameters). The statement's text is the same for
    any number of rows, so psycopg parses it once and prepares it."""
    arrays = (bindparam(name, type_=ARRAY(type_)) for name, type_ in types.items())
    return func.unnest(*arrays).table_valued(*types).render_derived()


def rows_as(arrays: bool, rows: list[dict[str, Any]], columns: Iterable[str], **same: Any):
    """The parameters for writing `rows` (`same` in each): for `many_rows` (`arrays`), one list per
    column and `same` once; for multi-row VALUES or executemany, the rows, each with `same`."""
    if arrays:
        return {column: [row[column] for row in rows] for column in columns} | same
    return [row | same for row in rows]
