"""The order desk's filters, as one tenant-scoped Select shared by the list page, the API and the export."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from flask import current_app, has_app_context
from sqlalchemy import Select, exists, func, or_, select, union
from sqlalchemy.orm import Session

from portal.orders.machine import OPEN_STATES, STATES
from portal.accounts.models import Merchant
from portal.orders.models import Order, OrderEvent, OrderLine
from portal.tenancy import Principal, scope, scoped_select


def at_risk_hours() -> int:
    """Orders whose ship-by falls within this many hours, and not yet shipped, are at risk."""
    return int(current_app.config.get("AT_RISK_HOURS", 24)) if has_app_context() else 24


def _day(value: str) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


@dataclass
class OrderFilters:
    status: str = ""
    date_from: str = ""  # created on or after this day (UTC), YYYY-MM-DD
    date_to: str = ""  # created on or before this day
    at_risk: bool = False
    q: str = ""  # order number, SKU or buyer
    merchant_id: int | None = None  # staff narrowing the list to one merchant

    @classmethod
    def from_args(cls, args: Any) -> OrderFilters:
        status = args.get("status", "")
        merchant = args.get("merchant", "")
        # A link's at_risk=0 (or an empty box) means no at-risk filter; the export job's payload holds 1.
        at_risk = str(args.get("at_risk", "")).strip().lower() in ("1", "true", "on", "yes")
        return cls(status=status if status in (*STATES, "open") else "", date_from=args.get("date_from", "").strip(),
                   date_to=args.get("date_to", "").strip(), at_risk=at_risk,
                   q=args.get("q", "").strip()[:200], merchant_id=int(merchant) if str(merchant).isdecimal() and str(merchant).isascii() else None)

    def as_args(self) -> dict[str, Any]:
        """For links and the export job's payload: only what is set."""
        values = asdict(self)
        values["merchant"] = values.pop("merchant_id")
        values["at_risk"] = 1 if values["at_risk"] else ""
        return {k: v for k, v in values.items() if v not in ("", None)}


# Search answers from indexes: up to this many matching orders are looked up by id; a search that matches
# more (a common surname) walks the merchant's newest orders instead, where it soon finds a page.
SEARCH_IDS = 5000
# Shorter texts have too few trigrams for an index: below these, a search looks only for the exact
# order number (and SKU).
MIN_PREFIX, MIN_SUBSTRING = 2, 3


def orders(filters: OrderFilters, principal: Principal | None = None, *, now: datetime | None = None,
           db: Session | None = None) -> Select[Any]:
    """The principal's orders matching ``filters``: newest first, or soonest ship-by first when at risk.

    With ``db``, a search first collects the matching ids through each way's own index (order number,
    SKU, trigram indexes on PostgreSQL for a number's start or a part of the buyer's name), so a search
    that matches a few orders of a million does not read them all.
    """
    stmt = scoped_select(Order, principal)
    if filters.merchant_id is not None:
        stmt = stmt.where(Order.merchant_id == filters.merchant_id)
    if filters.status == "open":
        stmt = stmt.where(Order.status.in_(OPEN_STATES))
    elif filters.status:
        stmt = stmt.where(Order.status == filters.status)
    start, end = _day(filters.date_from), _day(filters.date_to)
    if start:
        stmt = stmt.where(Order.created_at >= datetime.combine(start, time.min, timezone.utc))
    if end:
        stmt = stmt.where(Order.created_at < datetime.combine(end + timedelta(days=1), time.min, timezone.utc))
    if filters.q:
        ids = _search_ids(db, filters, principal) if db is not None else None
        stmt = stmt.where(Order.id.in_(ids) if ids is not None else _search_condition(filters.q))
    if filters.at_risk:
        stmt = at_risk(stmt, now=now)
        return stmt.order_by(Order.ship_by, Order.id)
    return stmt.order_by(Order.created_at.desc(), Order.id.desc())


def _search_condition(q: str) -> Any:
    like = _escape(q)
    return or_(
        Order.order_number == q,
        Order.order_number.ilike(f"{like}%", escape="\\"),
        Order.buyer_name.ilike(f"%{like}%", escape="\\"),
        exists().where(OrderLine.order_id == Order.id, OrderLine.sku == q),
    )


def _search_ids(db: Session, filters: OrderFilters, principal: Principal | None) -> list[int] | None:
    """The ids of the orders the search matches, or None when they are too many to be worth listing."""
    q, like = filters.q, _escape(filters.q)
    exact = _narrowed(select(Order.id).where(Order.order_number == q), filters, principal)
    found = db.scalar(exact)
    if found is not None:
        return [found]  # an order number typed in full means that order, whatever else would match
    ways = [select(OrderLine.order_id).where(OrderLine.sku == q)]
    if len(q) >= MIN_PREFIX:
        ways.append(select(Order.id).where(Order.order_number.ilike(f"{like}%", escape="\\")))
    if len(q) >= MIN_SUBSTRING:
        ways.append(select(Order.id).where(Order.buyer_name.ilike(f"%{like}%", escape="\\")))
    ids = list(db.scalars(union(*(_narrowed(way, filters, principal) for way in ways)).limit(SEARCH_IDS + 1)))
    return ids if len(ids) <= SEARCH_IDS else None


def _narrowed(way: Select[Any], filters: OrderFilters, principal: Principal | None) -> Select[Any]:
    """A search way confined to the principal's merchant (and the chosen one), so that it stays small."""
    if way.get_final_froms()[0] is OrderLine.__table__:
        way = way.join(Order, Order.id == OrderLine.order_id)
    way = scope(way, Order, principal)
    if filters.merchant_id is not None:
        way = way.where(Order.merchant_id == filters.merchant_id)
    return way


def _risk_limit(now: datetime | None) -> datetime:
    return (now or datetime.now(timezone.utc)) + timedelta(hours=at_risk_hours())


def at_risk(stmt: Select[Any], *, now: datetime | None = None) -> Select[Any]:
    """Open orders whose ship-by is within the at-risk window (or already past)."""
    return stmt.where(Order.status.in_(OPEN_STATES), Order.ship_by <= _risk_limit(now))


def is_at_risk(order: Order, now: datetime | None = None) -> bool:
    """The same rule for one order already loaded (the badges of the desk and the order page)."""
    return order.status in OPEN_STATES and order.ship_by <= _risk_limit(now)


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def desk_counts(db: Session, principal: Principal, merchant_id: int | None = None) -> dict[str, int]:
    """The figures above the list: open orders by state and those at risk (index-only work on open rows)."""
    stmt = scope(select(Order.status, func.count()).where(Order.status.in_(OPEN_STATES)), Order, principal)
    if merchant_id is not None:
        stmt = stmt.where(Order.merchant_id == merchant_id)
    counts = {status: 0 for status in OPEN_STATES}
    counts.update(dict(db.execute(stmt.group_by(Order.status)).tuples().all()))
    risk = at_risk(scope(select(func.count()).select_from(Order), Order, principal))
    if merchant_id is not None:
        risk = risk.where(Order.merchant_id == merchant_id)
    counts["at_risk"] = db.scalar(risk) or 0
    return counts


def history(db: Session, order: Order) -> list[OrderEvent]:
    """The order's transitions, oldest first."""
    return list(db.scalars(select(OrderEvent).where(OrderEvent.order_id == order.id)
                           .order_by(OrderEvent.at, OrderEvent.id)))


def merchant_slugs(db: Session, merchant_ids: set[int]) -> dict[int, str]:
    return dict(db.execute(select(Merchant.id, Merchant.slug).where(Merchant.id.in_(merchant_ids))).tuples().all())


def merchant_id_by_slug(db: Session, slug: str) -> int | None:
    return db.scalar(select(Merchant.id).where(Merchant.slug == slug))


def merchant_choices(db: Session) -> list[tuple[int, str]]:
    """Every merchant, for staff narrowing the desk to one."""
    return list(db.execute(select(Merchant.id, Merchant.name).order_by(Merchant.name)).tuples().all())
