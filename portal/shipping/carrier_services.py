"""Operators' changes to the carriers: every value checked, codes unique, each change in the audit log."""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask_babel import gettext
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal import audit
from portal.db import utcnow
from portal.errors import PortalError
from portal.shipping.carriers import CUTOFF_RE, load_default_carriers, recheck_tracking
from portal.shipping.models import Carrier
from portal.tenancy import Principal

CODE_RE = re.compile(r"[a-z0-9_]{2,32}")
MAX_WEIGHT_GRAMS = 100_000
MAX_PATTERNS = 20
MAX_PATTERN_LENGTH = 200
WEEKDAYS = range(7)  # 0 = Monday, as ``date.weekday()`` counts


class CarrierError(PortalError):
    """A carrier's value is not valid, or its code is taken (422); ``details.field`` names the form field."""

    status = 422
    code = "invalid_carrier"


@dataclass
class CarrierValues:
    """What an operator sets on a carrier (the code only when creating it: orders refer to it)."""

    name: str
    tracking_patterns: list[str] = field(default_factory=list)
    tracking_url: str = ""
    pickup_days: list[int] = field(default_factory=list)
    cutoff_time: str = "16:00"
    timezone: str = "Europe/Moscow"
    max_weight_grams: int = 30_000
    is_active: bool = True

    @classmethod
    def of(cls, carrier: Carrier) -> CarrierValues:
        return cls(**{name: getattr(carrier, name) for name in cls.__dataclass_fields__})


def _invalid(message: str, field_name: str, **details: Any) -> CarrierError:
    return CarrierError(message, details={"field": field_name, **details})


def _patterns(lines: list[str]) -> list[str]:
    """The non-blank lines, each a regular expression; a bad one is named by its line number as typed."""
    patterns = []
    for number, line in enumerate(lines, start=1):
        pattern = line.strip()
        if not pattern:
            continue
        if len(pattern) > MAX_PATTERN_LENGTH:
            raise _invalid(gettext("Line %(line)d of the formats is longer than %(max)d characters.", line=number,
                                   max=MAX_PATTERN_LENGTH), "tracking_patterns", line=number)
        try:
            re.compile(pattern)
        except re.error as exc:
            raise _invalid(gettext("Line %(line)d of the formats is not a valid regular expression: %(pattern)s "
                                   "(%(error)s).", line=number, pattern=pattern, error=exc.msg),
                           "tracking_patterns", line=number) from None
        patterns.append(pattern)
    if len(patterns) > MAX_PATTERNS:
        raise _invalid(gettext("A carrier has at most %(max)d formats.", max=MAX_PATTERNS), "tracking_patterns")
    return patterns


def _checked(values: CarrierValues) -> CarrierValues:
    """The values cleaned up, or the first problem as a :class:`CarrierError` naming its field."""
    name = values.name.strip()
    if not name or len(name) > 100:
        raise _invalid(gettext("The carrier needs a name of at most 100 characters."), "name")
    url = values.tracking_url.strip()
    if url:
        if "{tracking}" not in url:
            raise _invalid(gettext("The tracking URL must contain {tracking} where the number goes, or be empty."),
                           "tracking_url")
        # The URL becomes a link on order pages: only web addresses, never javascript: or the like.
        if not re.match(r"https?://[^\s/]+", url, re.IGNORECASE) or len(url) > 300:
            raise _invalid(gettext("The tracking URL must be an http(s) address of at most 300 characters."),
                           "tracking_url")
    days = sorted(set(values.pickup_days))
    if any(day not in WEEKDAYS for day in days):
        raise _invalid(gettext("Pickup days are weekdays from Monday to Sunday."), "pickup_days")
    cutoff = values.cutoff_time.strip()
    if not CUTOFF_RE.fullmatch(cutoff):
        raise _invalid(gettext("%(value)s is not a time of day: write the cut-off as HH:MM, e.g. 16:00.",
                               value=cutoff), "cutoff_time")
    zone = values.timezone.strip()
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise _invalid(gettext("%(value)s is not a time zone: use a name such as Europe/Moscow.", value=zone),
                       "timezone") from None
    weight = values.max_weight_grams
    if isinstance(weight, bool) or not isinstance(weight, int) or not 1 <= weight <= MAX_WEIGHT_GRAMS:
        raise _invalid(gettext("The maximum package weight is a whole number of grams from 1 to %(max)d.",
                               max=MAX_WEIGHT_GRAMS), "max_weight_grams")
    return CarrierValues(name=name, tracking_patterns=_patterns(values.tracking_patterns), tracking_url=url,
                         pickup_days=days, cutoff_time=cutoff, timezone=zone, max_weight_grams=weight,
                         is_active=bool(values.is_active))


def _code_taken(code: str) -> CarrierError:
    return _invalid(gettext("A carrier with the code %(code)s already exists.", code=code), "code")


def list_carriers(db: Session) -> list[Carrier]:
    """Every carrier, the active ones first, by name."""
    return list(db.scalars(select(Carrier).order_by(Carrier.is_active.desc(), Carrier.name, Carrier.code)))


def create_carrier(db: Session, code: str, values: CarrierValues, *, actor: Principal | None = None) -> Carrier:
    code = code.strip()
    if not CODE_RE.fullmatch(code):
        raise _invalid(gettext("The code %(code)s is not valid: use 2-32 lowercase letters, digits and underscores.",
                               code=code), "code")
    checked = _checked(values)
    if db.scalar(select(Carrier.id).where(Carrier.code == code)) is not None:
        raise _code_taken(code)
    carrier = Carrier(code=code, **asdict(checked))
    db.add(carrier)
    try:
        db.flush()
    except IntegrityError:  # the same code created at the same moment
        db.rollback()
        raise _code_taken(code) from None
    audit.record(db, "carrier.created", actor=actor, target=carrier, details={"code": code, **asdict(checked)})
    recheck_tracking(db, [code])  # orders of history may already name the code
    db.commit()
    return carrier


def update_carrier(db: Session, carrier: Carrier, values: CarrierValues, *,
                   actor: Principal | None = None) -> dict[str, list[Any]]:
    """Apply the values; the changes made, field by field as [before, after] (recorded only when some)."""
    checked = asdict(_checked(values))
    changes = {name: [getattr(carrier, name), value] for name, value in checked.items()
               if getattr(carrier, name) != value}
    if changes:
        for name, (_before, after) in changes.items():
            setattr(carrier, name, after)
        carrier.updated_at = utcnow()
        audit.record(db, "carrier.updated", actor=actor, target=carrier, details={"code": carrier.code, **changes})
        if "tracking_patterns" in changes:
            recheck_tracking(db, [carrier.code])
    db.commit()
    return changes


def load_defaults(db: Session, *, actor: Principal | None = None) -> list[str]:
    """The default carriers that are missing, added; the codes added (none: nothing is recorded)."""
    added = load_default_carriers(db)
    if added:
        audit.record(db, "carrier.defaults_loaded", actor=actor, details={"added": added})
        recheck_tracking(db, added)
        db.commit()
    return added
