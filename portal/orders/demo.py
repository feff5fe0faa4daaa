"""Months of believable order history for a demo merchant, made through intake and the state machine."""
from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from flask_babel import gettext
from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.accounts.models import ApiToken, Merchant, User
from portal.catalog.models import Product
from portal.db import utcnow
from portal.kpi.metrics import BY_KEY, status
from portal.orders.exceptions import OrderError, OrderNumberTaken, StockShort
from portal.orders.models import Order
from portal.orders.services import SYSTEM_PRINCIPAL, apply_transition, create_order
from portal.shipping.carriers import active_carriers, load_default_carriers
from portal.tenancy import Principal

# What becomes of an order. Accepted orders come in three kinds so that the at-risk list has something
# to show: one already past its ship-by, some due within the day, some with time to spare.
DELIVERED, RETURNED, REFUSED, EXPIRED = "delivered", "returned", "refused", "expired"
CANCELLED_BY_MERCHANT, CANCELLED_BY_MARKETPLACE = "cancelled_by_merchant", "cancelled_by_marketplace"
SHIPPED, AWAITING = "shipped", "awaiting"
ACCEPTED, ACCEPTED_AT_RISK, ACCEPTED_LATE = "accepted", "accepted_at_risk", "accepted_late"

# One of each first, so that seven orders show every state and eleven every way there; this order is
# also the priority when stock runs short (then the other open orders, the rarer fates, delivered last).
ESSENTIAL = (AWAITING, ACCEPTED_AT_RISK, SHIPPED, DELIVERED, REFUSED, CANCELLED_BY_MERCHANT, RETURNED, EXPIRED,
             CANCELLED_BY_MARKETPLACE, ACCEPTED_LATE, ACCEPTED)
# Shares of the rest; delivered takes what is left (about seven orders in ten).
SHARES = {AWAITING: 0.03, ACCEPTED_AT_RISK: 0.025, ACCEPTED: 0.02, SHIPPED: 0.07, REFUSED: 0.04, EXPIRED: 0.02,
          CANCELLED_BY_MERCHANT: 0.025, CANCELLED_BY_MARKETPLACE: 0.02, RETURNED: 0.05}
# The fates the merchant answers for in its cancellation rate.
MERCHANT_CANCELS = (REFUSED, CANCELLED_BY_MERCHANT, EXPIRED)
HISTORY_DAYS = 120
MAX_PRODUCTS = 300
ACCEPTANCE = timedelta(hours=24)
SHIPPING = timedelta(hours=48)
# How far past its ship-by a late order is handed over, at most.
MAX_LATENESS = timedelta(hours=30)
# The KPI windows the profiles are judged in: late shipments by handover, cancellations by arrival.
LATE_WINDOW = timedelta(days=BY_KEY["late_shipment_rate"].days or 30)
CANCEL_WINDOW = timedelta(days=BY_KEY["cancellation_rate"].days or 7)
# An order this close to the edge of a window is moved back out of it, so that the figures do not change
# while the seed runs or the first pages are looked at.
EDGE = timedelta(hours=1)
MSK = timezone(timedelta(hours=3))
# Orders by hour of the day, Moscow time: few at night, most in the evening.
HOURLY = (1.0, 0.6, 0.3, 0.2, 0.2, 0.3, 0.8, 1.5, 2.5, 3.0, 3.5, 4.0, 4.5, 4.5, 4.0, 4.0, 4.0, 4.5, 5.0, 6.0, 6.5,
          6.0, 4.5, 2.5)

FEMALE_NAMES = ("Анна", "Мария", "Елена", "Ольга", "Наталья", "Татьяна", "Ирина", "Екатерина", "Светлана", "Юлия",
                "Анастасия", "Дарья", "Ксения", "Полина", "Виктория", "Алина", "Марина", "Людмила")
MALE_NAMES = ("Александр", "Дмитрий", "Сергей", "Андрей", "Алексей", "Иван", "Михаил", "Максим", "Евгений",
              "Николай", "Артём", "Павел", "Владимир", "Роман", "Игорь", "Константин", "Денис", "Олег")
# Male forms; the female form adds "а" (Иванов, Иванова).
SURNAMES = ("Иванов", "Смирнов", "Кузнецов", "Попов", "Васильев", "Петров", "Соколов", "Михайлов", "Новиков",
            "Фёдоров", "Морозов", "Волков", "Алексеев", "Лебедев", "Семёнов", "Егоров", "Павлов", "Козлов",
            "Степанов", "Николаев", "Орлов", "Андреев", "Макаров", "Никитин", "Захаров", "Зайцев", "Соловьёв",
            "Борисов", "Яковлев", "Григорьев", "Романов", "Воробьёв", "Сергеев", "Кузьмин", "Фролов", "Белов")
# City, weight (roughly its share of online orders), postal code range, streets.
CITIES = (
    ("Москва", 30, (101000, 129348), ("ул. Тверская", "Ленинский пр-т", "ул. Профсоюзная", "Кутузовский пр-т",
                                      "ул. Бутлерова", "Варшавское ш.", "ул. Миклухо-Маклая", "Дмитровское ш.")),
    ("Санкт-Петербург", 14, (190000, 199406), ("Невский пр-т", "ул. Савушкина", "Московский пр-т",
                                                "ул. Дыбенко", "пр-т Просвещения", "Лиговский пр-т")),
    ("Новосибирск", 5, (630000, 630132), ("Красный пр-т", "ул. Ленина", "ул. Кирова", "ул. Гоголя")),
    ("Екатеринбург", 5, (620000, 620149), ("ул. Малышева", "ул. 8 Марта", "ул. Мира", "ул. Белинского")),
    ("Казань", 4, (420000, 420140), ("ул. Баумана", "пр-т Победы", "ул. Чистопольская", "ул. Пушкина")),
    ("Нижний Новгород", 4, (603000, 603163), ("ул. Большая Покровская", "ул. Родионова", "пр-т Гагарина")),
    ("Самара", 3, (443000, 443125), ("ул. Ново-Садовая", "Московское ш.", "ул. Куйбышева")),
    ("Краснодар", 4, (350000, 350089), ("ул. Красная", "ул. Северная", "ул. Ставропольская")),
    ("Ростов-на-Дону", 3, (344000, 344113), ("ул. Большая Садовая", "пр-т Стачки", "ул. Пушкинская")),
    ("Воронеж", 2, (394000, 394095), ("пр-т Революции", "Московский пр-т", "ул. Кольцовская")),
    ("Пермь", 2, (614000, 614113), ("Комсомольский пр-т", "ул. Ленина", "ул. Куйбышева")),
    ("Уфа", 2, (450000, 450112), ("пр-т Октября", "ул. Ленина", "ул. Менделеева")),
    ("Челябинск", 2, (454000, 454139), ("пр-т Ленина", "ул. Кирова", "Комсомольский пр-т")),
    ("Тюмень", 1, (625000, 625062), ("ул. Республики", "ул. Мельникайте")),
    ("Владивосток", 1, (690000, 690106), ("ул. Светланская", "Океанский пр-т")),
    ("Калининград", 1, (236000, 236044), ("Ленинский пр-т", "ул. Черняховского")),
)
REFUSAL_REASONS = ("Нет в наличии на складе", "Товар повреждён при хранении", "Ошибка в цене на витрине",
                   "Остатки не обновились вовремя, товар продан в магазине", "Нет нужного цвета")
MERCHANT_CANCEL_REASONS = ("При упаковке обнаружен брак", "Пересорт на складе, товара нет",
                           "Не успеваем отгрузить в срок")
MARKETPLACE_CANCEL_REASONS = ("Покупатель отменил заказ", "Покупатель не подтвердил адрес доставки",
                              "Подозрение на мошенничество, заказ отменён службой безопасности")
RETURN_REASONS = ("Не подошёл размер", "Товар не соответствует описанию", "Брак, не включается",
                  "Передумал покупать", "Повреждена упаковка при доставке", "Цвет отличается от фото")


def _post_tracking(rng: random.Random) -> str:
    return "80" + "".join(rng.choice("0123456789") for _ in range(12))


def _cdek_tracking(rng: random.Random) -> str:
    return str(rng.randint(1_000_000_000, 1_999_999_999))


def _boxberry_tracking(rng: random.Random) -> str:
    return "BB" + str(rng.randint(10_000_000, 99_999_999))


# Default carriers (``portal.shipping.carriers``) by code, how often merchants use them, and numbers in their formats.
CARRIERS = (("cdek", 5, _cdek_tracking), ("russian_post", 3, _post_tracking), ("boxberry", 2, _boxberry_tracking))


@dataclass(frozen=True)
class Profile:
    """How well a demo merchant keeps its promises, and so what its KPI page shows.

    ``late`` and ``cancelled`` are the shares the KPI windows show at seed time (handovers of the last
    30 days that were late; the merchant's refusals, expiries and cancellations among the orders of the
    last 7 days). A few dozen orders allow only some shares: the seed picks counts that put the rate on
    the same side of every threshold as the share, with an order to spare either way, and makes the
    recent weeks busier when there are too few orders for that.
    """

    late: float = 0.0
    cancelled: float = 0.0
    # Late handovers in the history before the window, so that the trend has a past.
    late_before: float = 0.03
    # Hours from arrival to acceptance, at most; and from acceptance to an on-time handover.
    accept_within: float = 10.0
    hand_over_within: float = 30.0


HEALTHY = Profile()
AT_RISK = Profile(late=0.035, cancelled=0.02, late_before=0.05, accept_within=11.0)
FAILING = Profile(late=0.10, cancelled=0.08, late_before=0.08, accept_within=23.5, hand_over_within=47.0)
# The demo merchants in turn: the first healthy, the second amber, the third red.
PROFILES = (HEALTHY, AT_RISK, FAILING)


@dataclass(frozen=True)
class Alongside:
    """Orders the demo makes besides the history (those of the demo shipments) that the KPI windows count:
    received within the cancellation window, handed over on time within the late-shipment window."""

    received: int = 0
    shipped: int = 0


@dataclass
class _Stock:
    """A product the history may order from, and how many of it are still free to plan."""

    sku: str
    price: Decimal
    left: int


@dataclass
class _Plan:
    """One order to make: its fate, when it came in, its buyer and lines, and the transitions to fire."""

    fate: str
    created: datetime
    address: dict[str, str]
    steps: list[tuple[str, datetime, str, dict[str, Any]]] = field(default_factory=list)  # name, at, who, extra
    lines: list[dict[str, Any]] = field(default_factory=list)

    def at(self, step: str) -> datetime | None:
        return next((at for name, at, _, _ in self.steps if name == step), None)

    def shifted(self, delta: timedelta) -> _Plan:
        return _Plan(self.fate, self.created + delta, self.address,
                     [(name, at + delta, who, extra) for name, at, who, extra in self.steps], self.lines)


def seed_orders(db: Session, merchant: Merchant, count: int, seed: int, *, admin: User | None = None,
                now: datetime | None = None, profile: Profile = HEALTHY, alongside: Alongside = Alongside()) -> bool:
    """About ``count`` orders over the last four months, every state present; once per merchant.

    Orders go through intake and the state machine with their past times, so history, stock and the
    figures derived from them are what the portal itself would have produced. Lines come from the
    merchant's active products with stock to spare; a product that runs short is left out rather
    than failing the seed; with too little stock fewer orders are made, delivered history the first to go.
    The recent weeks follow the merchant's ``profile`` (busier when it needs more orders there), counting
    the orders made ``alongside``.
    """
    if count <= 0 or not merchant.is_active:
        return False
    if db.scalar(select(Order.id).where(Order.merchant_id == merchant.id).limit(1)) is not None:
        return False
    # The first few hundred products in stock: enough for a shop's best-sellers, and quick with a huge catalog.
    products = [_Stock(*row) for row in db.execute(
        select(Product.sku, Product.price, Product.stock - Product.reserved)
        .where(Product.merchant_id == merchant.id, Product.status == "active", Product.stock > Product.reserved)
        .order_by(Product.id).limit(MAX_PRODUCTS)).tuples()]
    if not products:
        return False
    now = (now or utcnow()).replace(microsecond=0)
    rng = random.Random(f"orders:{merchant.slug}:{seed}")
    admin = admin or db.scalar(select(User).where(User.merchant_id == merchant.id, User.role == "merchant_admin")
                               .order_by(User.id).limit(1))
    principals = {
        "merchant": Principal(role="merchant_admin", merchant_id=merchant.id, user_id=admin.id if admin else None),
        "marketplace": _marketplace(db),
        "system": SYSTEM_PRINCIPAL,
    }
    carriers = _demo_carriers(db)
    plans = _tune(rng, [_plan(rng, fate, now, carriers, profile) for fate in _fates(count)], now, carriers, profile,
                  alongside)
    _allocate_lines(rng, plans, products)
    plans = sorted((plan for plan in plans if plan.lines), key=lambda plan: plan.created)
    created = False
    for n, plan in enumerate(plans, start=1):
        data = {
            "order_number": _order_number(merchant, n), "merchant": merchant.slug, "lines": plan.lines,
            "shipping_address": plan.address, "created_at": plan.created,
            "acceptance_deadline": plan.created + ACCEPTANCE, "ship_by": plan.created + SHIPPING,
        }
        try:
            intake = create_order(db, data, principal=principals["marketplace"], now=plan.created)
        except (StockShort, OrderNumberTaken):
            continue
        if not intake.created:
            continue
        created = True
        for name, at, who, extra in plan.steps:
            apply_transition(db, intake.order.id, name, principal=principals[who], at=at, **extra)
    return created


def _demo_carriers(db: Session) -> tuple[tuple[str, int, Any], ...]:
    """The demo's carriers that are active, the default set loaded first (an operator's edits stay)."""
    load_default_carriers(db)
    active = {carrier.code for carrier in active_carriers(db)}
    usable = tuple(item for item in CARRIERS if item[0] in active)
    if not usable:
        raise OrderError(gettext("The demo orders are shipped with %(codes)s; activate one of these carriers.",
                                 codes=", ".join(c[0] for c in CARRIERS)), details={"field": "carrier"})
    return usable


def _marketplace(db: Session) -> Principal:
    """Who acts for the marketplace in the history: the demo operator, else an operator token.

    The order page names the user or the token of each event, so one of them is wanted.
    """
    operator = db.scalar(select(User.id).where(User.role == "operator_admin", User.merchant_id.is_(None))
                         .order_by(User.id).limit(1))
    if operator is not None:
        return Principal(role="operator_admin", merchant_id=None, user_id=operator)
    token = db.scalar(select(ApiToken.id).where(ApiToken.merchant_id.is_(None), ApiToken.revoked_at.is_(None))
                      .order_by(ApiToken.id).limit(1))
    return Principal(role="operator_admin", merchant_id=None, token_id=token)


def _order_number(merchant: Merchant, n: int) -> str:
    """The marketplace's number, unique across merchants: the slug's, or the id's when the slug is too long.

    Slugs have no dots, so the two forms never meet.
    """
    number = f"MP-{merchant.slug.upper()}-{n:05d}"
    return number if len(number) <= 64 else f"MP-{merchant.id}.{n:05d}"


def _fates(count: int) -> list[str]:
    if count <= len(ESSENTIAL):
        return list(ESSENTIAL[:count])
    fates = list(ESSENTIAL)
    for fate, share in SHARES.items():
        extra = min(max(0, round(count * share) - 1), count - len(fates))
        fates += [fate] * extra
    return fates + [DELIVERED] * (count - len(fates))


def _tune(rng: random.Random, plans: list[_Plan], now: datetime, carriers: tuple[tuple[str, int, Any], ...],
          profile: Profile, alongside: Alongside) -> list[_Plan]:
    """The recent weeks as ``profile`` has them, with as many orders as planned.

    Cancellations first: some of the merchant's refusals and cancellations move into the window, and
    when the orders received there are too few for the share, a busy week (a promotion) brings more,
    handed over on time. Then lateness: some handovers of the window become late ones, with more orders
    from the weeks before when needed. Each order added takes the place of one of the oldest delivered
    ones (the shop grows), so there are no more than those to trade. The windows are those of the KPI
    page at seed time.
    """
    plans = [_clear_of_edges(plan, now) for plan in plans]
    # Delivered long before any window, even when shipped late.
    old = now - LATE_WINDOW - SHIPPING - MAX_LATENESS - timedelta(days=1)
    spare = sorted((n for n, plan in enumerate(plans) if plan.fate == DELIVERED and plan.created < old),
                   key=lambda n: plans[n].created)
    limit = len(spare)
    added = 0

    def this_week() -> datetime:  # in the cancellation window, with time to refuse, expire or cancel
        return _day_moment(rng, now, 2.5, CANCEL_WINDOW.days - 0.5)

    received = sum(_in(plan.created, now, CANCEL_WINDOW) for plan in plans) + alongside.received
    cancels, total = _counts("cancellation_rate", profile.cancelled, received, limit,
                             extra_needed=lambda cancels: cancels)
    movable = [n for n, plan in enumerate(plans) if plan.fate in MERCHANT_CANCELS]
    moved = rng.sample(movable, min(cancels, len(movable)))
    for n in moved:
        plans[n] = _plan(rng, plans[n].fate, now, carriers, profile, created=this_week())
    for n in range(cancels - len(moved)):
        plans.append(_plan(rng, MERCHANT_CANCELS[n % len(MERCHANT_CANCELS)], now, carriers, profile,
                           created=this_week()))
    for n in range(total - received - cancels):
        plans.append(_plan(rng, SHIPPED if n % 4 == 3 else DELIVERED, now, carriers, profile,
                           created=this_week(), late=False))
    added += total - received - len(moved)

    # Orders that came in a week to four weeks ago: handed over within the window, even late, and not
    # received within the cancellation window.
    def could_be_late(plan: _Plan) -> bool:
        return (plan.at("ship") is not None
                and now - LATE_WINDOW + timedelta(days=3) <= plan.created <= now - CANCEL_WINDOW - timedelta(days=1))

    shipped = sum(_in(plan.at("ship"), now, LATE_WINDOW) for plan in plans) + alongside.shipped
    eligible = sum(could_be_late(plan) for plan in plans)
    late, total = _counts("late_shipment_rate", profile.late, shipped, limit - added,
                          extra_needed=lambda late: late - eligible)
    for _ in range(total - shipped):
        plans.append(_plan(rng, DELIVERED, now, carriers, profile, late=False, created=_day_moment(
            rng, now, CANCEL_WINDOW.days + 1, LATE_WINDOW.days - 3)))
    candidates = [n for n, plan in enumerate(plans) if could_be_late(plan)]
    for n in rng.sample(candidates, min(late, len(candidates))):
        plans[n] = _plan(rng, plans[n].fate, now, carriers, profile, created=plans[n].created, late=True)
    added += total - shipped
    traded = set(spare[:added])
    return [plan for n, plan in enumerate(plans) if n not in traded]


def _counts(key: str, share: float, base: int, limit: int, *, extra_needed: Callable[[int], int]
            ) -> tuple[int, int]:
    """How many orders of how many (at least ``base``, at most ``limit`` more) give a rate with the status
    ``share`` has, whether the window holds one order more or one fewer. ``extra_needed(k)``: the orders
    that must be added for ``k`` of them to be counted. (0, base) when no count does."""
    metric = BY_KEY[key]
    wanted = status(metric, share, metric.warning, metric.threshold)
    if share <= 0:
        return 0, base
    for total in range(max(base, 1), base + max(limit, 0) + 1):
        for count in sorted({round(share * total), math.floor(share * total), math.ceil(share * total)}):
            if not 0 < count <= total or total - base < extra_needed(count):
                continue
            if all(status(metric, count / t, metric.warning, metric.threshold) == wanted
                   for t in (total - 1, total, total + 1) if t >= count):
                return count, total
    return 0, base


def _in(moment: datetime | None, now: datetime, window: timedelta) -> bool:
    return moment is not None and now - window <= moment < now


def _clear_of_edges(plan: _Plan, now: datetime) -> _Plan:
    """The plan, moved back a little when its arrival or handover lies on the edge of a KPI window."""
    shipped = plan.at("ship")
    close = abs(plan.created - (now - CANCEL_WINDOW)) < EDGE or (
        shipped is not None and abs(shipped - (now - LATE_WINDOW)) < EDGE)
    return plan.shifted(-2 * EDGE) if close else plan


def _between(rng: random.Random, start: datetime, end: datetime) -> datetime:
    """A moment in [start, end], to the second."""
    seconds = max(0, int((end - start).total_seconds()))
    return start + timedelta(seconds=rng.randint(0, seconds))


def _hours(value: float) -> timedelta:
    return timedelta(hours=value)


def _day_moment(rng: random.Random, now: datetime, min_days: float, max_days: float) -> datetime:
    """When a past order came in: more of them lately (the shop grows), in the daytime and evening, Moscow time."""
    earliest, latest = now - timedelta(days=max_days), now - timedelta(days=min_days)
    for _ in range(20):
        day = (now - timedelta(days=rng.triangular(min_days, max_days, min_days))).astimezone(MSK).date()
        hour = rng.choices(range(24), weights=HOURLY)[0]
        moment = datetime(day.year, day.month, day.day, hour, rng.randint(0, 59), rng.randint(0, 59), tzinfo=MSK)
        moment = moment.astimezone(timezone.utc)
        if earliest <= moment <= latest:
            return moment
    return _between(rng, earliest, latest)


def _address(rng: random.Random) -> dict[str, str]:
    female = rng.random() < 0.55
    first = rng.choice(FEMALE_NAMES if female else MALE_NAMES)
    surname = rng.choice(SURNAMES) + ("а" if female else "")
    city, _, (low, high), streets = rng.choices(CITIES, weights=[c[1] for c in CITIES])[0]
    line1 = f"{rng.choice(streets)}, д. {rng.randint(1, 120)}"
    if rng.random() < 0.2:
        line1 += f", корп. {rng.randint(1, 4)}"
    if rng.random() < 0.85:
        line1 += f", кв. {rng.randint(1, 280)}"
    return {
        "name": f"{first} {surname}",
        "phone": f"+7 9{rng.randint(0, 99):02d} {rng.randint(0, 999):03d}-{rng.randint(0, 99):02d}-"
                 f"{rng.randint(0, 99):02d}",
        "country": "RU", "city": city, "postal_code": str(rng.randint(low, high)), "line1": line1,
    }


def _tracking(rng: random.Random, carriers: tuple[tuple[str, int, Any], ...] = CARRIERS) -> dict[str, Any]:
    carrier, _, make = rng.choices(carriers, weights=[c[1] for c in carriers])[0]
    return {"carrier": carrier, "tracking_number": make(rng)}


def _arrival(rng: random.Random, fate: str, now: datetime) -> datetime:
    """When an order of this fate came in."""
    if fate == AWAITING:
        return _between(rng, now - _hours(20), now - timedelta(minutes=10))
    if fate == ACCEPTED:
        return _between(rng, now - _hours(22), now - _hours(3))
    if fate == ACCEPTED_AT_RISK:
        return _between(rng, now - _hours(46), now - _hours(25))
    if fate == ACCEPTED_LATE:
        return _between(rng, now - _hours(60), now - _hours(50))
    if fate == SHIPPED:
        return _between(rng, now - timedelta(days=6), now - timedelta(days=2))
    if fate == RETURNED:
        return _day_moment(rng, now, 15, HISTORY_DAYS)
    if fate in MERCHANT_CANCELS:
        return _day_moment(rng, now, CANCEL_WINDOW.days + 1, HISTORY_DAYS)
    return _day_moment(rng, now, 4, HISTORY_DAYS)


def _plan(rng: random.Random, fate: str, now: datetime, carriers: tuple[tuple[str, int, Any], ...] = CARRIERS,
          profile: Profile = HEALTHY, *, created: datetime | None = None, late: bool | None = None) -> _Plan:
    """The order's times: accepted within hours, shipped by its ship-by (now and then after), delivered days later.

    Every moment stays before ``now``; open orders are recent enough that their deadlines are still
    ahead, except the one accepted order left past its ship-by on purpose. The merchant's refusals and
    cancellations arrived before the cancellation window, and only orders handed over before the
    late-shipment window may be late: ``_tune`` places those the windows show (``created`` and ``late``).
    """
    if created is None:
        created = _arrival(rng, fate, now)
    plan = _Plan(fate=fate, created=created, address=_address(rng))
    deadline, ship_by = created + ACCEPTANCE, created + SHIPPING
    latest = now - timedelta(minutes=5)

    if fate == AWAITING:
        return plan
    if fate == REFUSED:
        plan.steps.append(("refuse", _between(rng, created + _hours(0.3), created + _hours(20)), "merchant",
                           {"reason": rng.choice(REFUSAL_REASONS)}))
        return plan
    if fate == EXPIRED:
        # The expiry job runs every quarter of an hour.
        plan.steps.append(("expire", deadline + timedelta(seconds=rng.randint(30, 900)), "system", {}))
        return plan

    accepted = _between(rng, created + _hours(0.2), min(created + _hours(profile.accept_within), latest, deadline))
    plan.steps.append(("accept", accepted, "merchant", {}))
    if fate in (ACCEPTED, ACCEPTED_AT_RISK, ACCEPTED_LATE):
        return plan
    if fate in (CANCELLED_BY_MERCHANT, CANCELLED_BY_MARKETPLACE):
        who, reasons = (("merchant", MERCHANT_CANCEL_REASONS) if fate == CANCELLED_BY_MERCHANT
                        else ("marketplace", MARKETPLACE_CANCEL_REASONS))
        plan.steps.append(("cancel", _between(rng, accepted + _hours(1), accepted + _hours(30)), who,
                           {"reason": rng.choice(reasons)}))
        return plan

    if late is None:
        late = rng.random() < profile.late_before and ship_by + MAX_LATENESS < now - LATE_WINDOW - EDGE
    if late:
        shipped = _between(rng, ship_by + _hours(1), ship_by + MAX_LATENESS)
    else:
        shipped = _between(rng, accepted + _hours(2),
                           max(accepted + _hours(2), min(accepted + _hours(profile.hand_over_within),
                                                         ship_by - _hours(0.5))))
    shipped = max(accepted + _hours(1), min(shipped, latest - _hours(1)))
    plan.steps.append(("ship", shipped, "merchant", _tracking(rng, carriers)))
    if fate == SHIPPED:
        return plan

    delivered = _between(rng, shipped + _hours(20), shipped + timedelta(days=6))
    delivered = min(delivered, _between(rng, shipped + (latest - shipped) / 2, latest))
    plan.steps.append(("deliver", delivered, "marketplace", {}))
    if fate == RETURNED:
        returned = min(_between(rng, delivered + timedelta(days=1), delivered + timedelta(days=12)), latest)
        plan.steps.append(("return", returned, "marketplace", {"reason": rng.choice(RETURN_REASONS)}))
    return plan


def _allocate_lines(rng: random.Random, plans: list[_Plan], products: list[_Stock]) -> None:
    """One to three lines for each order from what is in stock, in the priority of ``ESSENTIAL``.

    Every planned unit is counted as gone for good (even those a refusal gives back later), so intake
    never finds a product short whatever order the orders are made in. Products with more stock sell
    more, as best-sellers do.
    """
    seen: Counter[str] = Counter()
    ranked = []
    for plan in plans:
        extra = seen[plan.fate] > 0
        ranked.append((extra, extra and plan.fate == DELIVERED, ESSENTIAL.index(plan.fate), len(ranked), plan))
        seen[plan.fate] += 1
    for *_, plan in sorted(ranked, key=lambda item: item[:4]):
        for _ in range(rng.choices((1, 2, 3), weights=(70, 22, 8))[0]):
            quantity = rng.choices((1, 2, 3), weights=(85, 11, 4))[0]
            taken = {line["sku"] for line in plan.lines}
            candidates = [p for p in products if p.left >= quantity and p.sku not in taken]
            if not candidates:
                continue
            product = rng.choices(candidates, weights=[p.left for p in candidates])[0]
            product.left -= quantity
            plan.lines.append({"sku": product.sku, "quantity": quantity, "unit_price": product.price})
