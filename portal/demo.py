"""The demo marketplace: merchants with their people, a category manager and an operator."""
from __future__ import annotations

import io
import random
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portal.accounts.models import Merchant, User
from portal.accounts.services import create_merchant, create_user

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


def seed_demo(db: Session, *, merchants: int = 3, products: int = 40, seed: int = 1,
              if_empty: bool = False) -> dict[str, Any]:
    """Create what is missing of the demo; run twice, it creates nothing the second time."""
    rng = random.Random(seed)
    existing = db.scalar(select(func.count(Merchant.id))) or 0
    created = False
    wanted = _merchant_slugs(merchants)
    if not (if_empty and existing):
        for email, role in STAFF:
            if db.scalar(select(User.id).where(User.email == email)) is None:
                create_user(db, email=email, password=DEMO_PASSWORD, role=role, full_name=_name(rng))
                created = True
        for slug, name in wanted:
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


def _name(rng: random.Random) -> str:
    return f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
