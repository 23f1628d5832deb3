"""Many rows in one statement. On PostgreSQL the rows travel as one JSON text expanded by
``json_populate_recordset`` (one parameter, whatever the row count: per-row parameter
handling costs more than the insert itself at metering volumes); on SQLite they go as an
``executemany``. Both take the same upsert clause and answer the same ``RETURNING``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

import msgspec
from sqlalchemy import Table, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncSession

__all__ = ["upsert"]

_ENCODE = msgspec.json.Encoder(decimal_format="string").encode


async def upsert(
    db: AsyncSession,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    conflict: Sequence[str],
    add: Sequence[str] = (),
    returning: str | None = None,
) -> list[Any]:
    """Insert ``rows``; on a ``conflict`` either skip the row (no ``add``) or add the new
    values of the ``add`` columns to the stored ones. Returns the ``returning`` column of
    the rows written (inserted or updated)."""
    if not rows:
        return []
    if (await db.connection()).dialect.name == "postgresql":
        return await _postgres(db, table, rows, conflict, add, returning)
    statement: Any = sqlite.insert(table)
    if add:
        statement = statement.on_conflict_do_update(
            index_elements=list(conflict),
            set_={c: table.c[c] + statement.excluded[c] for c in add},
        )
    else:
        statement = statement.on_conflict_do_nothing(index_elements=list(conflict))
    if returning is None:
        await db.execute(statement, list(rows))
        return []
    return list((await db.execute(statement.returning(table.c[returning]), list(rows))).scalars())


async def _postgres(
    db: AsyncSession,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    conflict: Sequence[str],
    add: Sequence[str],
    returning: str | None,
) -> list[Any]:
    name = table.name
    columns = ", ".join(c.name for c in table.columns)
    action = (
        "DO UPDATE SET " + ", ".join(f"{c} = {name}.{c} + excluded.{c}" for c in add)
        if add
        else "DO NOTHING"
    )
    sql = (
        f"INSERT INTO {name} ({columns}) SELECT {columns} "  # noqa: S608 - names from the model
        f"FROM json_populate_recordset(NULL::{name}, CAST(:rows AS json)) "
        f"ON CONFLICT ({', '.join(conflict)}) {action}"
        + (f" RETURNING {returning}" if returning else "")
    )
    result = await db.execute(text(sql), {"rows": _ENCODE(list(rows)).decode()})
    return list(cast(Any, result).scalars()) if returning else []
