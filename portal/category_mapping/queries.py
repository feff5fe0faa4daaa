"""Reusable selects of the category-mapping pages (tenant-scoped where they touch merchant data)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, select

from portal.category_mapping.models import CategoryAttribute, MerchantCategory, TaxonomyCategory
from portal.tenancy import Principal, scoped_select


def merchant_categories(principal: Principal | None = None, *, status: str = "", merchant_id: int | None = None,
                        q: str = "") -> Select[tuple[MerchantCategory]]:
    stmt = scoped_select(MerchantCategory, principal)
    if status:
        stmt = stmt.where(MerchantCategory.status == status)
    if merchant_id:
        stmt = stmt.where(MerchantCategory.merchant_id == merchant_id)
    if q:
        stmt = stmt.where(MerchantCategory.path.ilike(f"%{q}%"))
    return stmt.order_by(MerchantCategory.products.desc(), MerchantCategory.path, MerchantCategory.id)


def category_paths(db: Any, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    return dict(db.execute(select(TaxonomyCategory.id, TaxonomyCategory.path).where(TaxonomyCategory.id.in_(ids))).tuples().all())


@dataclass
class Code:
    """A marketplace attribute code with everything the categories say about it."""

    code: str
    name_en: str
    name_ru: str
    type: str
    allowed: list[str] = field(default_factory=list)

    def label(self, locale: str) -> str:
        return (self.name_ru if locale == "ru" and self.name_ru else self.name_en) or self.code


def codes(db: Any) -> dict[str, Code]:
    """Every attribute code any category asks for; enum values are the union over the categories."""
    result: dict[str, Code] = {}
    for row in db.scalars(select(CategoryAttribute).order_by(CategoryAttribute.code, CategoryAttribute.id)):
        entry = result.setdefault(row.code, Code(row.code, row.name_en, row.name_ru, row.type))
        entry.allowed += [value for value in row.allowed_values if value not in entry.allowed]
    return result


def ancestors(db: Any, category: TaxonomyCategory) -> list[TaxonomyCategory]:
    """The category's chain from its root down to itself."""
    chain = [category]
    while chain[-1].parent_id is not None and len(chain) < 20:
        parent = db.get(TaxonomyCategory, chain[-1].parent_id)
        if parent is None:
            break
        chain.append(parent)
    return list(reversed(chain))


def managers(db: Any, category_id: int) -> tuple[list[Any], list[Any]]:
    """The category managers in charge of a category itself, and the others who could be."""
    from portal.accounts.models import User
    from portal.category_mapping.models import ManagedCategory

    everyone = db.scalars(select(User).where(User.role == "category_manager").order_by(User.email)).all()
    chosen = set(db.scalars(select(ManagedCategory.user_id).where(ManagedCategory.category_id == category_id)))
    return [u for u in everyone if u.id in chosen], [u for u in everyone if u.id not in chosen]


def merchant_summary(db: Any, principal: Any) -> dict[str, Any]:
    """What a merchant's home page says of their catalog's way to sale (tenant-scoped counts)."""
    from sqlalchemy import func

    from portal.catalog.models import Product
    from portal.category_mapping.models import FillInRequest
    from portal.db import utcnow
    from portal.tenancy import scope

    readiness = dict(db.execute(scope(select(Product.readiness, func.count()).where(Product.status == "active"), Product,
                                      principal).group_by(Product.readiness)).tuples().all())
    waiting = db.scalar(scope(select(func.count(MerchantCategory.id)).where(
        MerchantCategory.status.in_(("unmapped", "suggested", "rejected")), MerchantCategory.products > 0),
        MerchantCategory, principal))
    open_requests = scope(select(func.count(FillInRequest.id)).where(FillInRequest.status == "open"), FillInRequest,
                          principal)
    return {"readiness": readiness, "ready": readiness.get("ready", 0), "active": sum(readiness.values()),
            "categories_waiting": waiting or 0, "open_requests": db.scalar(open_requests) or 0,
            "overdue_requests": db.scalar(open_requests.where(FillInRequest.due_at < utcnow())) or 0}


def merchant_choices(db: Any) -> list[tuple[int, str]]:
    from portal.accounts.models import Merchant

    return [(row.id, row.name) for row in db.scalars(select(Merchant).order_by(Merchant.name))]


def products_in(merchant_id: int, category_id: int) -> Select[Any]:
    """A merchant's products mapped onto a marketplace category, those not ready first (staff drill-down)."""
    from sqlalchemy import case

    from portal.catalog.models import Product

    return (select(Product).where(Product.merchant_id == merchant_id, Product.marketplace_category_id == category_id)
            .order_by(case((Product.readiness == "ready", 1), else_=0), Product.sku))


def taxonomy_roots(db: Any) -> list[tuple[int, str]]:
    return [(row.id, row.path) for row in db.scalars(select(TaxonomyCategory).where(
        TaxonomyCategory.parent_id.is_(None), TaxonomyCategory.is_active).order_by(TaxonomyCategory.path))]


def category_card(db: Any, category: TaxonomyCategory, chain: list[TaxonomyCategory]) -> tuple[list[Any], list[Any], list[Any]]:
    """A category's own requirements, those it inherits, and its subcategories."""
    own = db.scalars(select(CategoryAttribute).where(CategoryAttribute.category_id == category.id)
                     .order_by(CategoryAttribute.code)).all()
    inherited = db.scalars(select(CategoryAttribute).where(CategoryAttribute.category_id.in_([c.id for c in chain[:-1]]))
                           .order_by(CategoryAttribute.code)).all()
    children = db.scalars(select(TaxonomyCategory).where(TaxonomyCategory.parent_id == category.id,
                                                         TaxonomyCategory.is_active).order_by(TaxonomyCategory.name)).all()
    return list(own), list(inherited), list(children)
