"""The demo marketplace: merchants with their people, catalogs and order history, a category manager and an operator."""
from __future__ import annotations

import io
import random
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portal.accounts.models import Merchant, User
from portal.accounts.services import create_merchant, create_user
from portal.orders.demo import ESSENTIAL, HISTORY_DAYS, PROFILES, Alongside, Profile
from portal.shipping.demo import HANDED_OVER_ORDERS
from portal.shipping.demo import PLAN as SHIPMENT_PLAN

DEMO_PASSWORD = "demo12345"
DEMO_MERCHANTS = [
    ("technomir", "ТехноМир Электроника"),
    ("uyut-home", "Уютный Дом"),
    ("sportlife", "SportLife"),
    ("kids-planet", "Планета Детства"),
    ("green-garden", "Green Garden Supply"),
    ("modny-gardarob", "Модный Гардероб"),
    ("autoparts-pro", "АвтоЗапчасти Про"),
    ("book-corner", "Книжный Уголок"),
]
FIRST_NAMES = ["Анна", "Иван", "Мария", "Алексей", "Ольга", "Дмитрий", "Елена", "Сергей", "Kate", "John", "Laura", "Tom"]
LAST_NAMES = ["Смирнова", "Петров", "Иванова", "Кузнецов", "Попова", "Волков", "Новикова", "Соколов", "Miller", "Brown"]
STAFF = [
    ("operator@marketplace.example", "operator_admin"),
    ("cm@marketplace.example", "category_manager"),
]


def _merchant_slugs(count: int) -> list[tuple[str, str]]:
    slugs = list(DEMO_MERCHANTS)
    for n in range(len(slugs), count):
        slugs.append((f"demo-shop-{n + 1}", f"Demo Shop {n + 1}"))
    return slugs[:count]


DEMO_ORDERS = 120
SHIPMENT_ORDERS = sum(count for _, count in SHIPMENT_PLAN)
# Shipments only when the history keeps an order of every fate besides them.
MIN_ORDERS_WITH_SHIPMENTS = len(ESSENTIAL) + SHIPMENT_ORDERS


def seed_demo(db: Session, *, merchants: int = 3, products: int = 40, orders: int = DEMO_ORDERS, seed: int = 1,
              if_empty: bool = False) -> dict[str, Any]:
    """Create what is missing of the demo; run twice, it creates nothing the second time.

    The merchants take the order profiles in turn (healthy, at risk, below target), so that the KPI
    pages show every status; the daily KPI rollups are counted over the whole history for the charts.
    """
    rng = random.Random(seed)
    existing = db.scalar(select(func.count(Merchant.id))) or 0
    created = False
    wanted = _merchant_slugs(merchants)
    if not (if_empty and existing):
        created = _seed_taxonomy(db) or created
        created = _seed_carriers(db) or created
        for email, role in STAFF:
            if db.scalar(select(User.id).where(User.email == email)) is None:
                create_user(db, email=email, password=DEMO_PASSWORD, role=role, full_name=_name(rng))
                created = True
        made_orders = False
        for index, (slug, name) in enumerate(wanted):
            merchant = db.scalar(select(Merchant).where(Merchant.slug == slug))
            if merchant is None:
                merchant = create_merchant(db, slug=slug, name=name)
                created = True
            admin = None
            for prefix, role in (("admin", "merchant_admin"), ("staff", "merchant_staff")):
                email = f"{prefix}@{slug}.example"
                user = db.scalar(select(User).where(User.email == email))
                if user is None:
                    user = create_user(db, email=email, password=DEMO_PASSWORD, role=role, merchant=merchant,
                                       full_name=_name(rng))
                    created = True
                admin = admin or user
            if products and _seed_catalog(db, merchant, admin, products, seed):
                created = True
            if products and _seed_mapping(db, merchant, admin):
                created = True
            # Of the merchant's orders, a dozen of today's go into shipments in every state when there are
            # enough left for the history to show every state of an order.
            history = orders - SHIPMENT_ORDERS if orders >= MIN_ORDERS_WITH_SHIPMENTS else orders
            alongside = Alongside(SHIPMENT_ORDERS, HANDED_OVER_ORDERS) if history < orders else Alongside()
            if products and orders and _seed_orders(db, merchant, admin, history, seed,
                                                    PROFILES[index % len(PROFILES)], alongside):
                created = made_orders = True
            if products and history < orders and _seed_shipments(db, merchant, admin, seed):
                created = True
        created = _seed_category_manager(db) or created
        if made_orders:
            _seed_rollups(db)
    return {"created": created, "users": demo_logins(db)}


def demo_logins(db: Session) -> list[dict[str, Any]]:
    """The demo accounts present in the database (their password is the demo one unless changed)."""
    rows = db.execute(
        select(User.email, User.role, Merchant.slug)
        .outerjoin(Merchant, Merchant.id == User.merchant_id)
        .where(User.email.like("%.example"))
        .order_by(User.merchant_id.is_not(None), Merchant.slug, User.role)
    ).all()
    return [{"email": e, "role": r, "merchant": m, "password": DEMO_PASSWORD} for e, r, m in rows]


def _seed_catalog(db: Session, merchant: Merchant, admin: User, count: int, seed: int) -> bool:
    """The merchant's catalog, uploaded through the same pipeline as a real file; once."""
    from portal.catalog.demo import catalog_csv
    from portal.catalog.models import Upload
    from portal.catalog.services import process_upload, receive_upload
    from portal.tenancy import Principal, scope

    principal = Principal(role="merchant_admin", merchant_id=merchant.id, user_id=admin.id)
    if db.scalar(scope(select(Upload.id), Upload, principal).limit(1)) is not None:
        return False
    upload = receive_upload(db, principal, stream=io.BytesIO(catalog_csv(merchant.slug, count, seed)),
                            filename=f"{merchant.slug}-catalog.csv", source="cli")
    process_upload(db, upload.id, dry_run=False)
    return True


def _seed_orders(db: Session, merchant: Merchant, admin: User, count: int, seed: int, profile: Profile,
                 alongside: Alongside) -> bool:
    """Months of the merchant's orders in every state, once (a merchant with orders gets none)."""
    from portal.orders.demo import seed_orders

    return seed_orders(db, merchant, count, seed, admin=admin, profile=profile, alongside=alongside)


def _seed_shipments(db: Session, merchant: Merchant, admin: User, seed: int) -> bool:
    """Shipments in every state, built from orders posted and accepted today, once per merchant."""
    from portal.shipping.demo import seed_shipments

    return seed_shipments(db, merchant, seed, admin=admin)


def _seed_rollups(db: Session) -> None:
    """The daily KPI figures of the whole order history, which the trend charts read (the job keeps only
    the last days up to date)."""
    from portal.kpi.services import rollup

    rollup(db, days=HISTORY_DAYS + 1)


def _seed_carriers(db: Session) -> bool:
    """The default carriers that are missing (the demo orders ship with them); edited ones stay as they are."""
    from portal.shipping.carriers import load_default_carriers

    return bool(load_default_carriers(db))


def _seed_taxonomy(db: Session) -> bool:
    """The shipped Google taxonomy and the demo requirements, when no taxonomy is loaded yet."""
    from portal.category_mapping import services
    from portal.category_mapping.models import TaxonomyCategory

    if db.scalar(select(TaxonomyCategory.id).limit(1)) is not None:
        return False
    services.import_taxonomy(db, services.DEFAULT_TAXONOMY.read_text(encoding="utf-8"))
    services.load_requirements(db, services.DEMO_REQUIREMENTS.read_text(encoding="utf-8"))
    return True


def _seed_mapping(db: Session, merchant: Merchant, admin: User) -> bool:
    """Half of a merchant's categories confirmed (their best suggestion), the rest left to the merchant.

    The demo then shows confirmed, suggested and unmapped categories, incomplete products and the
    requests opened for them.
    """
    from portal.category_mapping import services
    from portal.category_mapping.models import MerchantCategory
    from portal.tenancy import Principal

    rows = db.scalars(select(MerchantCategory).where(MerchantCategory.merchant_id == merchant.id)
                      .order_by(MerchantCategory.path)).all()
    if not rows or any(row.status != "suggested" and row.status != "unmapped" for row in rows):
        return False
    principal = Principal(role="merchant_admin", merchant_id=merchant.id, user_id=admin.id)
    placed = [row for row in rows if row.suggestions]
    for row in placed[: (len(placed) + 1) // 2]:
        services.confirm(db, row, row.suggestions[0]["category_id"], principal)
    return True


# Branches the demo category manager answers for.
MANAGED_ROOTS = (1, 222, 536, 988)  # Apparel & Accessories, Electronics, Home & Garden, Sporting Goods


def _seed_category_manager(db: Session) -> bool:
    """cm@ in charge of the demo's main branches, with one request of theirs already overdue."""
    from datetime import timedelta

    from portal.category_mapping.models import FillInRequest, ManagedCategory, TaxonomyCategory
    from portal.db import utcnow

    manager = db.scalar(select(User).where(User.email == "cm@marketplace.example"))
    if manager is None or db.scalar(select(ManagedCategory.user_id).where(ManagedCategory.user_id == manager.id)):
        return False
    for category_id in MANAGED_ROOTS:
        if db.get(TaxonomyCategory, category_id) is not None:
            db.add(ManagedCategory(user_id=manager.id, category_id=category_id))
    merchant = db.scalar(select(Merchant).order_by(Merchant.id).limit(1))
    if merchant is not None:
        db.add(FillInRequest(merchant_id=merchant.id, kind="manual", attributes=[], status="open",
                             text="Добавьте, пожалуйста, фото упаковки к товарам этой категории.",
                             created_by_id=manager.id, created_at=utcnow() - timedelta(days=10),
                             due_at=utcnow() - timedelta(days=3)))
    db.commit()
    return True


def _name(rng: random.Random) -> str:
    return f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
