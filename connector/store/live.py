"""Conditions on a row's state written into the SQL itself, for the partial indexes on the live states.

The worker's claims and scans run every tick against a ledger that grows by the million: partial indexes
(migration 0010) hold only the rows in a live state (scheduled, sending, awaiting delivery, in flight), so their
size follows the live work, not the history. PostgreSQL uses a partial index only where it can prove the
query's condition implies the index's, and psycopg prepares a statement after a few runs, after which the
server may switch to a generic plan that cannot see bound values: a status bound as a parameter could be any,
so the generic plan would scan the table. Written as a literal, the state is part of every plan.
"""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import ColumnElement, literal_column
from sqlalchemy.orm import InstrumentedAttribute


def state_is(column: InstrumentedAttribute[str], *states: StrEnum) -> ColumnElement[bool]:
    """`column = 'state'` (`IN (…)` for several), the states as literals (they are our own enum values)."""
    literals: list[ColumnElement[str]] = [literal_column(f"'{state.value}'") for state in states]
    return column == literals[0] if len(literals) == 1 else column.in_(literals)
