"""The SQL text a migration runs for the roll-up triggers and backfills, kept beside it in
migrations/sql/<revision>/<name>.<dialect>.sql, statements separated by a line
`-- next statement`.

Written out when the migration was made, from the roll-up code of that day
(bot/storage/rollup*.py): an old migration must do the same when that code changes later,
so migrations do not import it. A later schema change is a new migration with its own text.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection

SQL_DIR = Path(__file__).resolve().parent / "sql"
SEPARATOR = "\n-- next statement\n"


def statements(revision: str, name: str, dialect: str) -> list[str]:
    text = (SQL_DIR / revision / f"{name}.{dialect}.sql").read_text(encoding="utf-8")
    return text.removesuffix("\n").split(SEPARATOR)


def run(connection: Connection, revision: str, name: str) -> None:
    """Run the statements `name` of `revision` for the connection's database."""
    for statement in statements(revision, name, connection.dialect.name):
        connection.execute(sa.text(statement))
