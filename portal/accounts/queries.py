"""Small look-ups the account and catalog pages share: names and e-mails for ids already on a page."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from portal.accounts.models import Merchant, User


def merchants_by_name() -> Select[Any]:
    """Every merchant, for marketplace staff's choosers (staff see all merchants by role)."""
    return select(Merchant).order_by(Merchant.name)


def emails_by_id(db: Session, user_ids: Iterable[int | None]) -> dict[int, str]:
    """E-mails of the users behind rows the caller has already scoped (uploaders, audit actors)."""
    ids = {i for i in user_ids if i}
    if not ids:
        return {}
    return dict(db.execute(select(User.id, User.email).where(User.id.in_(ids))).tuples().all())


def merchant_names_by_id(db: Session, merchant_ids: Iterable[int]) -> dict[int, str]:
    ids = set(merchant_ids)
    if not ids:
        return {}
    return dict(db.execute(select(Merchant.id, Merchant.name).where(Merchant.id.in_(ids))).tuples().all())
