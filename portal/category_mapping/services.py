"""Category mapping's rules: taxonomy and requirements loading, merchant categories and their mapping."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask_babel import gettext
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portal.audit import record
from portal.catalog.models import Product
from portal.category_mapping import queries, requests, suggest
from portal.category_mapping.exceptions import MappingError, MappingLocked
from portal.category_mapping.models import CategoryAttribute, MerchantCategory, TaxonomyCategory
from portal.category_mapping.taxonomy import Requirement, parse_requirements, parse_taxonomy
from portal.db import utcnow
from portal.tenancy import Principal

DEFAULT_TAXONOMY = Path(__file__).parent / "data" / "google-product-taxonomy.en-US.txt"
DEMO_REQUIREMENTS = Path(__file__).parent / "data" / "demo_requirements.csv"
SAMPLE_TITLES = 5


@dataclass
class TaxonomyReport:
    added: list[int] = field(default_factory=list)
    renamed: list[tuple[int, str, str]] = field(default_factory=list)  # id, old path, new path
    removed: list[int] = field(default_factory=list)
    unchanged: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"added": len(self.added), "renamed": len(self.renamed), "removed": len(self.removed),
                "unchanged": self.unchanged,
                "renamed_categories": [{"id": i, "from": old, "to": new} for i, old, new in self.renamed[:100]],
                "removed_ids": self.removed[:100]}


def import_taxonomy(db: Session, text: str, actor: Principal | None = None) -> TaxonomyReport:
    """Load a taxonomy file; ids stay stable, so mappings survive a newer version of the file.

    A category missing from the new file is deactivated, not deleted: products mapped onto it keep a
    readable mapping, and its merchants see it needs a new home.
    """
    nodes = parse_taxonomy(text)
    existing = {row.id: row for row in db.scalars(select(TaxonomyCategory))}
    report = TaxonomyReport()
    now = utcnow()
    for node in nodes:  # parents first, so a new child's parent row exists when it is flushed
        row = existing.get(node.id)
        if row is None:
            db.add(TaxonomyCategory(id=node.id, parent_id=node.parent_id, name=node.name, path=node.path,
                                    depth=node.depth, is_active=True, updated_at=now))
            report.added.append(node.id)
        elif (row.path, row.parent_id, row.is_active) != (node.path, node.parent_id, True):
            if row.path != node.path:
                report.renamed.append((node.id, row.path, node.path))
            elif not row.is_active:
                report.added.append(node.id)  # back after being removed
            else:
                report.unchanged += 1
            row.parent_id, row.name, row.path, row.depth, row.is_active, row.updated_at = (
                node.parent_id, node.name, node.path, node.depth, True, now)
        else:
            report.unchanged += 1
    db.flush()
    listed = {node.id for node in nodes}
    for row in existing.values():
        if row.id not in listed and row.is_active:
            row.is_active, row.updated_at = False, now
            report.removed.append(row.id)
    if report.removed or report.renamed:
        requests.refresh(db)  # products mapped onto a removed category are no longer ready
    record(db, "taxonomy.import", actor=actor, details=report.as_dict())
    db.commit()
    suggest.forget_index()
    return report


@dataclass
class RequirementsReport:
    categories: int = 0
    added: int = 0
    changed: int = 0
    removed: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"categories": self.categories, "added": self.added, "changed": self.changed, "removed": self.removed}


def load_requirements(db: Session, text: str, actor: Principal | None = None) -> RequirementsReport:
    """Replace the requirements of every category the file names; other categories keep theirs."""
    known = set(db.scalars(select(TaxonomyCategory.id).where(TaxonomyCategory.is_active)))
    parsed = parse_requirements(text, known)
    by_category: dict[int, list[Requirement]] = {}
    for requirement in parsed:
        by_category.setdefault(requirement.category_id, []).append(requirement)
    report = RequirementsReport(categories=len(by_category))
    for category_id, requirements in by_category.items():
        counts = replace_requirements(db, category_id, requirements)
        report.added += counts["added"]
        report.changed += counts["changed"]
        report.removed += counts["removed"]
    requests.refresh(db, kind="rules")  # merchants whose products lack a new requirement are told
    record(db, "taxonomy.requirements", actor=actor, details=report.as_dict())
    db.commit()
    return report


def replace_requirements(db: Session, category_id: int, requirements: list[Requirement]) -> dict[str, int]:
    """Make a category's own requirements exactly ``requirements``; counts of what changed. No commit."""
    current = {row.code: row for row in db.scalars(select(CategoryAttribute).where(CategoryAttribute.category_id == category_id))}
    counts = Counter(added=0, changed=0, removed=0)
    now = utcnow()
    wanted = {requirement.code for requirement in requirements}
    for requirement in requirements:
        values = {"name_en": requirement.name_en, "name_ru": requirement.name_ru, "type": requirement.type,
                  "unit": requirement.unit, "required": requirement.required, "allowed_values": requirement.allowed_values}
        row = current.get(requirement.code)
        if row is None:
            db.add(CategoryAttribute(category_id=category_id, code=requirement.code, updated_at=now, **values))
            counts["added"] += 1
        elif any(getattr(row, key) != value for key, value in values.items()):
            for key, value in values.items():
                setattr(row, key, value)
            row.updated_at = now
            counts["changed"] += 1
    for code, row in current.items():
        if code not in wanted:
            db.delete(row)
            counts["removed"] += 1
    db.flush()
    return dict(counts)


# --- merchant categories ------------------------------------------------------------------------------------------

def catalog_changed(db: Session, merchant_id: int) -> None:
    """After a merchant's catalog changed: their category list and its suggestions brought up to date."""
    refresh_merchant_categories(db, merchant_id)
    requests.refresh(db, [merchant_id])
    db.commit()


def refresh_merchant_categories(db: Session, merchant_id: int) -> int:
    """Bring a merchant's category list in line with their products: new paths, product counts, samples.

    Returns how many new paths were found; those get suggestions straight away. No commit.
    """
    counts = dict(db.execute(
        select(Product.category, func.count()).where(Product.merchant_id == merchant_id, Product.category != "")
        .group_by(Product.category)).all())
    rows = {row.path: row for row in db.scalars(select(MerchantCategory).where(MerchantCategory.merchant_id == merchant_id))}
    now = utcnow()
    new: list[MerchantCategory] = []
    for path, count in counts.items():
        row = rows.get(path)
        if row is None:
            row = MerchantCategory(merchant_id=merchant_id, path=path, products=count, status="unmapped", updated_at=now)
            db.add(row)
            new.append(row)
        elif row.products != count:
            row.products, row.updated_at = count, now
    for path, row in rows.items():
        if path not in counts and row.products:
            row.products, row.updated_at = 0, now
    db.flush()
    if new:
        _fill_titles(db, merchant_id, new)
        suggest_for(db, new)
    return len(new)


def _fill_titles(db: Session, merchant_id: int, rows: list[MerchantCategory]) -> None:
    """The first few product titles of each new path, in one query (not one per path)."""
    numbered = (select(Product.category, Product.title,
                       func.row_number().over(partition_by=Product.category, order_by=Product.id).label("n"))
                .where(Product.merchant_id == merchant_id, Product.category.in_([row.path for row in rows]))
                .subquery())
    titles: dict[str, list[str]] = {}
    for category, title in db.execute(select(numbered.c.category, numbered.c.title)
                                      .where(numbered.c.n <= SAMPLE_TITLES).order_by(numbered.c.category, numbered.c.n)):
        titles.setdefault(category, []).append(title)
    for row in rows:
        row.sample_titles = titles.get(row.path, [])


def suggest_for(db: Session, rows: list[MerchantCategory]) -> None:
    """Store the top suggestions of ``rows`` not yet decided. No commit."""
    pending = [row for row in rows if row.status in ("unmapped", "suggested", "rejected")]
    if not pending:
        return
    engine = suggest.engine(db)
    confirmed = suggest.confirmed_elsewhere(db, exclude_merchant=None)
    for row, found in zip(pending, engine.suggest_many(
            [(row.path, row.sample_titles) for row in pending], confirmed=confirmed,
            exclude=[(row.merchant_id, set(row.rejected_ids)) for row in pending])):
        row.suggestions = [item.as_dict() for item in found]
        if row.status == "unmapped" and found:
            row.status = "suggested"
        row.updated_at = utcnow()
    db.flush()


def suggest_merchant(db: Session, merchant_id: int) -> list[dict[str, Any]]:
    """Refresh a merchant's categories, suggest afresh for every undecided one, and list them all."""
    refresh_merchant_categories(db, merchant_id)
    rows = list(db.scalars(select(MerchantCategory).where(MerchantCategory.merchant_id == merchant_id)
                           .order_by(MerchantCategory.products.desc(), MerchantCategory.path)))
    suggest_for(db, rows)
    db.commit()
    return [{"merchant_category": row.path, "status": row.status, "products": row.products,
             "category_id": row.category_id,
             "suggestions": [{"category_id": s["category_id"], "path": s["path"], "confidence": s["confidence"]}
                             for s in row.suggestions]} for row in rows]


def confirm(db: Session, row: MerchantCategory, category_id: int, principal: Principal) -> MerchantCategory:
    """Map a merchant category onto a marketplace category (one of the suggestions or any other)."""
    _check_unlocked(row, principal)
    category = db.get(TaxonomyCategory, category_id)
    if category is None or not category.is_active:
        raise MappingError(gettext("There is no marketplace category %(id)s.", id=category_id), code="unknown_category")
    _decide(row, "confirmed", category_id, principal)
    requests.refresh(db, [row.merchant_id], paths=[row.path])
    record(db, "mapping.confirm", actor=principal, merchant_id=row.merchant_id,
           details={"merchant_category": row.path, "category_id": category_id})
    db.commit()
    return row


def reject(db: Session, row: MerchantCategory, principal: Principal) -> MerchantCategory:
    """Turn down the current mapping or top suggestion; the next suggestions leave it out."""
    _check_unlocked(row, principal)
    turned_down = row.category_id if row.status == "confirmed" else (
        row.suggestions[0]["category_id"] if row.suggestions else None)
    if turned_down is not None and turned_down not in row.rejected_ids:
        row.rejected_ids = [*row.rejected_ids, turned_down]
    _decide(row, "rejected", None, principal)
    row.suggestions = [item for item in row.suggestions if item["category_id"] not in row.rejected_ids]
    suggest_for(db, [row])
    row.status = "rejected"
    requests.refresh(db, [row.merchant_id], paths=[row.path])
    record(db, "mapping.reject", actor=principal, merchant_id=row.merchant_id,
           details={"merchant_category": row.path, "category_id": turned_down})
    db.commit()
    return row


def bulk_confirm(db: Session, principal: Principal, merchant_id: int, min_confidence: float) -> int:
    """Confirm the top suggestion of every suggested, unlocked category at or above ``min_confidence``."""
    if not 0 < min_confidence <= 1:
        raise MappingError(gettext("The confidence must be between 1 and 100 %."), code="bad_confidence")
    rows = db.scalars(queries.merchant_categories(principal, status="suggested", merchant_id=merchant_id)
                      .where(MerchantCategory.locked.is_(False))).all()
    done: list[str] = []
    for row in rows:
        top = row.suggestions[0] if row.suggestions else None
        if top and top["confidence"] >= min_confidence:
            _decide(row, "confirmed", top["category_id"], principal)
            done.append(row.path)
    if done:
        requests.refresh(db, [merchant_id], paths=done)
    record(db, "mapping.bulk_confirm", actor=principal, merchant_id=merchant_id,
           details={"min_confidence": min_confidence, "confirmed": len(done)})
    db.commit()
    return len(done)


def set_lock(db: Session, row: MerchantCategory, locked: bool, principal: Principal) -> MerchantCategory:
    """Category managers lock a mapping they have checked, so the merchant cannot change it."""
    if principal.is_merchant:
        raise MappingLocked(gettext("Only marketplace staff can lock a mapping."))
    row.locked = locked
    row.updated_at = utcnow()
    record(db, "mapping.lock" if locked else "mapping.unlock", actor=principal, merchant_id=row.merchant_id,
           details={"merchant_category": row.path})
    db.commit()
    return row


def _check_unlocked(row: MerchantCategory, principal: Principal) -> None:
    if row.locked and principal.is_merchant:
        raise MappingLocked(gettext("A category manager has locked this mapping; ask them to change it."))


def _decide(row: MerchantCategory, status: str, category_id: int | None, principal: Principal) -> None:
    row.status, row.category_id = status, category_id
    row.decided_by_id, row.decided_at = principal.user_id, utcnow()
    row.updated_at = row.decided_at


def mapped_count(db: Session, merchant_id: int) -> dict[str, int]:
    return dict(db.execute(select(MerchantCategory.status, func.count()).where(
        MerchantCategory.merchant_id == merchant_id).group_by(MerchantCategory.status)).all())



# --- requirements edited in the browser, and who is in charge -------------------------------------------------------

def check_can_edit(db: Session, principal: Principal, category_id: int) -> None:
    from portal.category_mapping.weak_spots import categories_in_charge

    allowed = categories_in_charge(db, principal)
    if principal.is_merchant or (allowed is not None and category_id not in allowed):
        raise MappingLocked(gettext("Only the category managers in charge of this category (and operators) can "
                                    "change its requirements."), code="not_in_charge")


def save_requirement(db: Session, principal: Principal, category_id: int, cells: dict[str, str]) -> Requirement:
    """Add or change one requirement from the browser, checked like a line of the requirements file."""
    check_can_edit(db, principal, category_id)
    import csv
    import io

    from portal.category_mapping.taxonomy import REQUIREMENT_COLUMNS

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(REQUIREMENT_COLUMNS)
    writer.writerow([str(category_id)] + [cells.get(name, "") for name in REQUIREMENT_COLUMNS[1:]])
    (requirement,) = parse_requirements(buffer.getvalue(), {category_id})
    current = [Requirement(row.category_id, row.code, row.name_en, row.name_ru, row.type, row.unit, row.required,
                           list(row.allowed_values))
               for row in db.scalars(select(CategoryAttribute).where(CategoryAttribute.category_id == category_id))
               if row.code != requirement.code]
    replace_requirements(db, category_id, [*current, requirement])
    record(db, "taxonomy.requirement_saved", actor=principal, details={"category_id": category_id, "code": requirement.code})
    db.commit()
    _refresh_later(principal)
    return requirement


def delete_requirement(db: Session, principal: Principal, category_id: int, code: str) -> None:
    check_can_edit(db, principal, category_id)
    row = db.scalar(select(CategoryAttribute).where(CategoryAttribute.category_id == category_id,
                                                    CategoryAttribute.code == code))
    if row is not None:
        db.delete(row)
        record(db, "taxonomy.requirement_deleted", actor=principal, details={"category_id": category_id, "code": code})
    db.commit()
    _refresh_later(principal)


def _refresh_later(principal: Principal) -> None:
    """Readiness of every merchant follows the new rules in a background job, not in the request."""
    from portal.jobs.services import enqueue

    enqueue("mapping.refresh", {"kind": "rules"}, user_id=principal.user_id)


def assign_manager(db: Session, principal: Principal, category_id: int, user_id: int, assigned: bool) -> None:
    """Operators put a category manager in charge of a category (with its subtree), or take them off it."""
    from portal.accounts.models import User
    from portal.category_mapping.models import ManagedCategory

    if principal.role != "operator_admin":
        raise MappingLocked(gettext("Only operators decide who is in charge of a category."), code="not_operator")
    user = db.get(User, user_id)
    if user is None or user.role != "category_manager":
        raise MappingError(gettext("Choose a category manager."), code="not_a_category_manager")
    row = db.get(ManagedCategory, (user_id, category_id))
    if assigned and row is None:
        db.add(ManagedCategory(user_id=user_id, category_id=category_id))
    elif not assigned and row is not None:
        db.delete(row)
    record(db, "taxonomy.manager_assigned" if assigned else "taxonomy.manager_removed", actor=principal,
           details={"category_id": category_id, "user_id": user_id})
    db.commit()
