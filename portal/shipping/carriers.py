"""Carriers as configured data: the default set, tracking-number checks and the next pickup cut-off."""
from __future__ import annotations

import re
from urllib.parse import quote
from datetime import date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from flask_babel import gettext
from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from portal.orders.models import Order
from portal.shipping.models import Carrier

# Orders read and written at a time when tracking numbers are checked again.
RECHECK_BATCH = 5000

# A realistic starting set (operators edit it): formats as the carriers publish them.
DEFAULT_CARRIERS: tuple[dict[str, Any], ...] = (
    {"code": "russian_post", "name": "Почта России",
     # Domestic 14 digits; international S10 (two letters, 9 digits, country code).
     "tracking_patterns": [r"\d{14}", r"[A-Z]{2}\d{9}[A-Z]{2}"],
     "tracking_url": "https://www.pochta.ru/tracking?barcode={tracking}",
     "pickup_days": [0, 1, 2, 3, 4, 5], "cutoff_time": "14:00", "max_weight_grams": 20_000},
    {"code": "cdek", "name": "СДЭК", "tracking_patterns": [r"\d{10}"],
     "tracking_url": "https://www.cdek.ru/ru/tracking?order_id={tracking}",
     "pickup_days": [0, 1, 2, 3, 4], "cutoff_time": "16:00", "max_weight_grams": 30_000},
    {"code": "boxberry", "name": "Boxberry", "tracking_patterns": [r"[A-Z]{2,4}\d{6,12}", r"\d{10,13}"],
     "tracking_url": "https://boxberry.ru/tracking-page?id={tracking}",
     "pickup_days": [0, 1, 2, 3, 4], "cutoff_time": "15:00", "max_weight_grams": 15_000},
    {"code": "dpd", "name": "DPD", "tracking_patterns": [r"RU\d{9}", r"\d{14}"],
     "tracking_url": "https://www.dpd.ru/ru/private/tracking.html?orderNum={tracking}",
     "pickup_days": [0, 1, 2, 3, 4], "cutoff_time": "17:00", "max_weight_grams": 31_500},
    {"code": "own_courier", "name": "Собственный курьер продавца",
     "tracking_patterns": [r"[A-Za-z0-9][A-Za-z0-9-]{3,39}"], "tracking_url": "",
     "pickup_days": [0, 1, 2, 3, 4, 5, 6], "cutoff_time": "20:00", "max_weight_grams": 50_000},
)


def load_default_carriers(db: Session) -> list[str]:
    """Add the default carriers that are missing (by code); edited ones stay as they are. The codes added."""
    have = set(db.scalars(select(Carrier.code)))
    added = [item["code"] for item in DEFAULT_CARRIERS if item["code"] not in have]
    db.add_all(Carrier(**item) for item in DEFAULT_CARRIERS if item["code"] in added)
    db.commit()
    return added


def active_carriers(db: Session) -> list[Carrier]:
    return list(db.scalars(select(Carrier).where(Carrier.is_active).order_by(Carrier.name)))


def carrier_by_code(db: Session, code: str) -> Carrier | None:
    return db.scalar(select(Carrier).where(Carrier.code == code))


def tracking_is_valid(carrier: Carrier, number: str | None) -> bool:
    number = (number or "").strip()
    if not number:
        return False
    return not carrier.tracking_patterns or any(re.fullmatch(p, number) for p in carrier.tracking_patterns)


def tracking_problem(carrier: Carrier, number: str | None) -> str | None:
    """Why ``number`` is not a tracking number of ``carrier`` (None when it is)."""
    if tracking_is_valid(carrier, number):
        return None
    if not (number or "").strip():
        return gettext("A tracking number of %(carrier)s is required.", carrier=carrier.name)
    return gettext("%(number)s is not a tracking number of %(carrier)s (expected: %(formats)s).",
                   number=number, carrier=carrier.name, formats=describe_patterns(carrier))


def describe_patterns(carrier: Carrier) -> str:
    return " | ".join(carrier.tracking_patterns) or "—"


def tracking_link(carrier: Carrier, number: str | None) -> str | None:
    if not number or "{tracking}" not in (carrier.tracking_url or ""):
        return None
    return carrier.tracking_url.replace("{tracking}", quote(number, safe=""))


def next_cutoff(carrier: Carrier, now: datetime | None = None) -> datetime | None:
    """The next moment by which a shipment must be ready for this carrier's pickup (UTC), within a week."""
    if not carrier.pickup_days:
        return None
    zone = ZoneInfo(carrier.timezone or "UTC")
    local = (now or datetime.now(timezone.utc)).astimezone(zone)
    hours, minutes = (int(part) for part in carrier.cutoff_time.split(":"))
    for ahead in range(8):
        day = local.date() + timedelta(days=ahead)
        moment = datetime(day.year, day.month, day.day, hours, minutes, tzinfo=zone)
        if day.weekday() in carrier.pickup_days and moment > local:
            return moment.astimezone(timezone.utc)
    return None


def next_pickup_day(carrier: Carrier, day: date) -> date:
    """The first of the carrier's pickup days on or after ``day``."""
    for ahead in range(7):
        candidate = day + timedelta(days=ahead)
        if not carrier.pickup_days or candidate.weekday() in carrier.pickup_days:
            return candidate
    return day


def cutoff_on(carrier: Carrier, day: date) -> datetime:
    """The cut-off of a pickup on ``day`` (UTC): by then the shipment must be ready."""
    hours, minutes = (int(part) for part in carrier.cutoff_time.split(":"))
    zone = ZoneInfo(carrier.timezone or "UTC")
    return datetime(day.year, day.month, day.day, hours, minutes, tzinfo=zone).astimezone(timezone.utc)


CUTOFF_RE = re.compile(r"([01]\d|2[0-3]):[0-5]\d")


def recheck_tracking(db: Session, codes: list[str] | None = None) -> int:
    """Check the shipped orders' tracking numbers of the carriers ``codes`` (all: None) against the carriers'
    formats as they are now, into ``orders.tracking_valid`` (the KPI's valid tracking rate counts it). A
    handover stores the check; this runs when operators change a carrier and for imported history.

    In Python with ``tracking_is_valid``, the handover's own check: the formats are Python regular expressions,
    which the database's engine would read differently (``\\b``, inline flags, named groups). Only the answers
    that change are written, in batches. Marketplace-wide maintenance, like the expiry job: every merchant's
    orders, no tenant to confine it to. Adds to the caller's transaction; returns how many orders changed."""
    carriers = {c.code: c for c in db.scalars(select(Carrier))}
    stmt = select(Order.id, Order.carrier, Order.tracking_number, Order.tracking_valid).where(
        Order.shipped_at.is_not(None)).order_by(Order.id)
    if codes is not None:
        stmt = stmt.where(Order.carrier.in_(codes))
    changed = 0
    for rows in db.execute(stmt.execution_options(yield_per=RECHECK_BATCH)).partitions():
        flips = [{"order_id": id_, "valid": valid} for id_, code, number, stored in rows
                 if (valid := code in carriers and tracking_is_valid(carriers[code], number)) is not stored]
        if flips:
            db.connection().execute(
                update(Order.__table__).where(Order.__table__.c.id == bindparam("order_id"))
                .values(tracking_valid=bindparam("valid")), flips)
            changed += len(flips)
    return changed
