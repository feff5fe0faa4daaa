"""Keyless page-by-number pagination for lists in the cabinet."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select
from sqlalchemy.orm import Session

T = TypeVar("T")


@dataclass
class Page(Generic[T]):
    items: list[T]
    number: int
    per_page: int
    has_next: bool

    @property
    def has_prev(self) -> bool:
        return self.number > 1


def paginate(db: Session, stmt: Select[Any], page: int, per_page: int = 50) -> Page[Any]:
    """Fetch one row more than the page holds to know whether a next page exists, without a count."""
    page = max(1, page)
    rows = list(db.scalars(stmt.limit(per_page + 1).offset((page - 1) * per_page)))
    return Page(items=rows[:per_page], number=page, per_page=per_page, has_next=len(rows) > per_page)
