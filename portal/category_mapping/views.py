"""The mapping pages: a merchant's categories with suggestions, the taxonomy picker, bulk confirmation."""
from __future__ import annotations

import io
import tempfile
from datetime import datetime, time, timezone

from flask import Blueprint, abort, flash, redirect, render_template, request, send_file, url_for
from flask_babel import get_locale, gettext
from flask_login import current_user

from portal.accounts.forms import ActionForm
from portal.accounts.models import Merchant
from portal.accounts.queries import merchant_names_by_id
from portal.auth import roles_required
from portal.catalog.exceptions import CatalogError
from portal.category_mapping import attributes, queries, requests, services, suggest, weak_spots
from portal.category_mapping.exceptions import MappingError
from portal.category_mapping.forms import BulkConfirmForm, ConfirmForm, FillUploadForm, ManualRequestForm
from portal.category_mapping.models import (
    ATTRIBUTE_TYPES, MAPPING_STATES, FillInRequest, MerchantCategory, TaxonomyCategory,
)
from portal.db import session as db
from portal.pagination import paginate
from portal.tenancy import current_principal, get_or_404

bp = Blueprint("category_mapping", __name__, url_prefix="/mapping", template_folder="templates")

MERCHANT = ("merchant_admin", "merchant_staff")
STAFF = ("operator_admin", "category_manager")
EVERYONE = (*MERCHANT, *STAFF)


@bp.get("/categories")
@roles_required(*EVERYONE)
def categories():
    filters = {"status": request.args.get("status", "") if request.args.get("status", "") in MAPPING_STATES else "",
               "q": request.args.get("q", "").strip()[:100],
               "merchant": request.args.get("merchant", type=int) if current_user.is_staff else None}
    stmt = queries.merchant_categories(current_principal(), status=filters["status"], merchant_id=filters["merchant"],
                                       q=filters["q"])
    page = paginate(db, stmt, request.args.get("page", 1, type=int), per_page=50)
    paths = queries.category_paths(db, {row.category_id for row in page.items if row.category_id})
    counts = services.mapped_count(db, current_user.merchant_id) if current_user.is_merchant_user else {}
    merchants = merchant_names_by_id(db, (row.merchant_id for row in page.items)) if current_user.is_staff else {}
    return render_template("category_mapping/categories.html", page=page, paths=paths, counts=counts,
                           filters={k: v for k, v in filters.items() if v}, merchants=merchants,
                           bulk=BulkConfirmForm(), action=ActionForm())


@bp.post("/categories/refresh")
@roles_required(*MERCHANT)
def refresh():
    found = services.refresh_merchant_categories(db, current_user.merchant_id)
    db.commit()
    flash(gettext("%(count)s new categories found in your catalog.", count=found), "success")
    return redirect(url_for("category_mapping.categories"))


@bp.post("/categories/bulk-confirm")
@roles_required(*MERCHANT)
def bulk_confirm():
    form = BulkConfirmForm()
    if not form.validate_on_submit():
        flash(gettext("Give a confidence between 1 and 100 %."), "danger")
        return redirect(url_for("category_mapping.categories"))
    done = services.bulk_confirm(db, current_principal(), current_user.merchant_id, form.min_confidence.data / 100)
    flash(gettext("%(count)s suggestions at or above %(level)s %% confirmed.", count=done, level=form.min_confidence.data),
          "success")
    return redirect(url_for("category_mapping.categories"))


@bp.get("/categories/<int:category_id>")
@roles_required(*EVERYONE)
def category(category_id: int):
    row = get_or_404(MerchantCategory, category_id)
    q = request.args.get("q", "").strip()[:200]
    found = suggest.engine(db).search(q) if q else []
    paths = queries.category_paths(db, {row.category_id} if row.category_id else set())
    merchant = merchant_names_by_id(db, [row.merchant_id]).get(row.merchant_id, "")
    return render_template("category_mapping/category.html", row=row, q=q, found=found, paths=paths,
                           merchant=merchant, form=ConfirmForm(), action=ActionForm(),
                           can_change=current_user.is_staff or not row.locked)


@bp.post("/categories/<int:category_id>/confirm")
@roles_required(*EVERYONE)
def confirm(category_id: int):
    row = get_or_404(MerchantCategory, category_id)
    form = ConfirmForm()
    if not form.validate_on_submit():
        flash(gettext("Choose a marketplace category."), "danger")
        return redirect(url_for("category_mapping.category", category_id=row.id))
    try:
        services.confirm(db, row, form.category_id.data, current_principal())
    except MappingError as exc:
        db.rollback()
        flash(exc.message, "danger")
        return redirect(url_for("category_mapping.category", category_id=row.id))
    flash(gettext("“%(path)s” is mapped.", path=row.path), "success")
    if request.form.get("back") == "list":
        return redirect(url_for("category_mapping.categories"))
    return redirect(url_for("category_mapping.category", category_id=row.id))


@bp.post("/categories/<int:category_id>/reject")
@roles_required(*EVERYONE)
def reject(category_id: int):
    row = get_or_404(MerchantCategory, category_id)
    if ActionForm().validate_on_submit():
        try:
            services.reject(db, row, current_principal())
            flash(gettext("Suggestion turned down; here are the next ones."), "info")
        except MappingError as exc:
            db.rollback()
            flash(exc.message, "danger")
    return redirect(url_for("category_mapping.category", category_id=row.id))


@bp.post("/categories/<int:category_id>/lock")
@roles_required(*STAFF)
def lock(category_id: int):
    row = get_or_404(MerchantCategory, category_id)
    if ActionForm().validate_on_submit():
        services.set_lock(db, row, not row.locked, current_principal())
        flash(gettext("Mapping locked.") if row.locked else gettext("Mapping unlocked."), "success")
    return redirect(url_for("category_mapping.category", category_id=row.id))


# --- attribute names and values -------------------------------------------------------------------------------------

@bp.get("/attributes")
@roles_required(*MERCHANT)
def attribute_names():
    known = queries.codes(db)
    locale = str(get_locale() or "en")
    return render_template("category_mapping/attributes.html", rows=attributes.attribute_names(db, current_user.merchant_id),
                           known=known, labels={code: entry.label(locale) for code, entry in known.items()},
                           action=ActionForm())


@bp.post("/attributes")
@roles_required(*MERCHANT)
def map_attribute():
    if ActionForm().validate_on_submit():
        name, code = request.form.get("name", ""), request.form.get("code", "")
        try:
            attributes.set_attribute_mapping(db, current_principal(), current_user.merchant_id, name, code)
            flash(gettext("“%(name)s” saved.", name=name), "success")
        except MappingError as exc:
            db.rollback()
            flash(exc.message, "danger")
    return redirect(url_for("category_mapping.attribute_names"))


@bp.get("/values/<code>")
@roles_required(*MERCHANT)
def enum_values(code: str):
    entry = queries.codes(db).get(code)
    if entry is None or entry.type != "enum":
        abort(404)
    rows = attributes.enum_values(db, current_user.merchant_id, code)
    return render_template("category_mapping/values.html", entry=entry, rows=rows, action=ActionForm(),
                           label=entry.label(str(get_locale() or "en")))


@bp.post("/values/<code>")
@roles_required(*MERCHANT)
def map_value(code: str):
    if ActionForm().validate_on_submit():
        source, value = request.form.get("source", ""), request.form.get("value", "")
        try:
            attributes.set_value_mapping(db, current_principal(), current_user.merchant_id, code, source, value)
            flash(gettext("“%(source)s” saved.", source=source), "success")
        except MappingError as exc:
            db.rollback()
            flash(exc.message, "danger")
    return redirect(url_for("category_mapping.enum_values", code=code))


# --- fill-in requests -----------------------------------------------------------------------------------------------

@bp.get("/requests")
@roles_required(*EVERYONE)
def inbox():
    status = request.args.get("status", "open")
    page = paginate(db, requests.inbox(current_principal(), status), request.args.get("page", 1, type=int), per_page=50)
    paths = queries.category_paths(db, {row.category_id for row in page.items if row.category_id})
    known = queries.codes(db)
    merchants = merchant_names_by_id(db, (row.merchant_id for row in page.items)) if current_user.is_staff else {}
    return render_template("category_mapping/inbox.html", page=page, paths=paths, status=status, merchants=merchants,
                           labels=requests.labels(known, str(get_locale() or "en")), overdue=requests.overdue)


@bp.get("/requests/<int:request_id>")
@roles_required(*EVERYONE)
def show_request(request_id: int):
    row = get_or_404(FillInRequest, request_id)
    page = max(1, request.args.get("page", 1, type=int))
    found, more = requests.lines(db, row, limit=50, offset=(page - 1) * 50)
    known = queries.codes(db)
    locale = str(get_locale() or "en")
    paths = queries.category_paths(db, {row.category_id} if row.category_id else set())
    merchant = merchant_names_by_id(db, [row.merchant_id]).get(row.merchant_id, "")
    return render_template("category_mapping/request.html", row=row, lines=found, more=more, page=page, known=known,
                           labels=requests.labels(known, locale), paths=paths, merchant=merchant,
                           overdue=requests.overdue(row), action=ActionForm(), upload=FillUploadForm())


@bp.post("/requests/<int:request_id>/fill")
@roles_required(*MERCHANT)
def fill_request(request_id: int):
    row = get_or_404(FillInRequest, request_id)
    if ActionForm().validate_on_submit():
        values: dict[tuple[int, str], str] = {}
        for name, value in request.form.items():
            parts = name.split(":")
            if len(parts) == 3 and parts[0] == "v" and parts[1].isdigit() and value.strip():
                values[(int(parts[1]), parts[2])] = value
        try:
            saved = requests.fill(db, current_principal(), row, values)
            flash(gettext("%(count)s products updated.", count=saved), "success")
        except MappingError as exc:
            db.rollback()
            flash(exc.message, "danger")
    return redirect(url_for("category_mapping.show_request", request_id=row.id))


@bp.get("/requests/<int:request_id>/workbook")
@roles_required(*MERCHANT)
def request_workbook(request_id: int):
    row = get_or_404(FillInRequest, request_id)
    with tempfile.TemporaryDirectory(prefix="portal-fill-") as folder:
        path = f"{folder}/request-{row.id}.xlsx"
        requests.fill_workbook(db, row, current_user.merchant.slug, str(get_locale() or "en"), path)
        with open(path, "rb") as handle:
            data = handle.read()
    return send_file(io.BytesIO(data), as_attachment=True, download_name=f"fill-in-request-{row.id}.xlsx",
                     mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")


@bp.post("/requests/<int:request_id>/workbook")
@roles_required(*MERCHANT)
def return_workbook(request_id: int):
    row = get_or_404(FillInRequest, request_id)
    form = FillUploadForm()
    if not form.validate_on_submit():
        flash(gettext("Choose the filled-in file to upload."), "danger")
        return redirect(url_for("category_mapping.show_request", request_id=row.id))
    file = form.file.data
    try:
        upload = requests.receive_fill_file(db, current_principal(), row, current_user.merchant.slug, file.stream,
                                            file.filename or "fill-in.xlsx", str(get_locale() or "en"))
    except (MappingError, CatalogError) as exc:
        db.rollback()
        flash(exc.message, "danger")
        return redirect(url_for("category_mapping.show_request", request_id=row.id))
    flash(gettext("The file is being applied to your catalog; the request closes once the data is complete."), "success")
    return redirect(url_for("catalog.show_upload", upload_id=upload.id))


@bp.post("/requests/<int:request_id>/close")
@roles_required(*EVERYONE)
def close_request(request_id: int):
    row = get_or_404(FillInRequest, request_id)
    if ActionForm().validate_on_submit():
        if row.kind != "manual" and current_user.is_merchant_user:
            flash(gettext("This request closes by itself once the products are complete."), "warning")
        else:
            requests.close(db, current_principal(), row)
            flash(gettext("Request closed."), "success")
    return redirect(url_for("category_mapping.show_request", request_id=row.id))


@bp.route("/requests/new", methods=["GET", "POST"])
@roles_required(*STAFF)
def new_request():
    form = ManualRequestForm()
    form.merchant_id.choices = queries.merchant_choices(db)
    if form.validate_on_submit():
        due = datetime.combine(form.due_date.data, time(23, 59), tzinfo=timezone.utc) if form.due_date.data else None
        codes = [code.strip() for code in (form.attributes.data or "").replace(";", ",").split(",") if code.strip()]
        try:
            row = requests.open_manual(db, current_principal(), merchant_id=form.merchant_id.data, text=form.text.data or "",
                                       attributes=codes, category_id=form.category_id.data, sku=form.sku.data or None,
                                       due_at=due)
        except MappingError as exc:
            db.rollback()
            flash(exc.message, "danger")
        else:
            flash(gettext("Request sent to the merchant."), "success")
            return redirect(url_for("category_mapping.show_request", request_id=row.id))
    return render_template("category_mapping/new_request.html", form=form, known=queries.codes(db))


# --- weak spots -----------------------------------------------------------------------------------------------------

def _spot_labels() -> dict[str, str]:
    return {"key": gettext("Id"), "path": gettext("Category"), "products": gettext("Products"),
            "merchants": gettext("Merchants"), "completeness": gettext("Average completeness"),
            "ready_share": gettext("Ready"), "open_requests": gettext("Open requests"),
            "overdue_requests": gettext("Overdue requests"), "pending_categories": gettext("Unmapped merchant categories"),
            "missing": gettext("Most often missing")}


def _spots_page(rows, *, category=None, endpoint="category_mapping.weak_spots", **route):
    sort_key = request.args.get("sort", "products")
    descending = request.args.get("dir", "desc") != "asc"
    rows = weak_spots.sort(rows, sort_key, descending)
    fmt = request.args.get("format")
    labels = _spot_labels()
    if category is not None:
        labels["path"] = gettext("Merchant")
    if fmt in ("csv", "xlsx"):
        data, mimetype = weak_spots.export(rows, fmt, labels)
        name = f"weak-spots{'-' + str(category.id) if category is not None else ''}.{fmt}"
        return send_file(io.BytesIO(data), as_attachment=True, download_name=name, mimetype=mimetype)
    known = queries.codes(db)
    return render_template("category_mapping/weak_spots.html", rows=rows, category=category, sort=sort_key,
                           descending=descending, labels=labels, endpoint=endpoint, route=route,
                           names=requests.labels(known, str(get_locale() or "en")))


@bp.get("/weak-spots")
@roles_required(*STAFF)
def weak_spots_view():
    return _spots_page(weak_spots.spots(db, current_principal()), endpoint="category_mapping.weak_spots_view")


@bp.get("/weak-spots/<int:category_id>")
@roles_required(*STAFF)
def weak_spot(category_id: int):
    category = db.get(TaxonomyCategory, category_id)
    allowed = weak_spots.categories_in_charge(db, current_principal())
    if category is None or (allowed is not None and category_id not in allowed):
        abort(404)
    return _spots_page(weak_spots.spots(db, current_principal(), category_id=category_id), category=category,
                       endpoint="category_mapping.weak_spot", category_id=category_id)


@bp.get("/weak-spots/<int:category_id>/merchants/<int:merchant_id>")
@roles_required(*STAFF)
def weak_spot_products(category_id: int, merchant_id: int):
    category = db.get(TaxonomyCategory, category_id)
    allowed = weak_spots.categories_in_charge(db, current_principal())
    merchant = db.get(Merchant, merchant_id)
    if category is None or merchant is None or (allowed is not None and category_id not in allowed):
        abort(404)
    page = paginate(db, queries.products_in(merchant_id, category_id), request.args.get("page", 1, type=int), per_page=50)
    known = queries.codes(db)
    return render_template("category_mapping/weak_spot_products.html", page=page, category=category, merchant=merchant,
                           names=requests.labels(known, str(get_locale() or "en")))


# --- the taxonomy, its requirements and who is in charge ------------------------------------------------------------

@bp.get("/taxonomy")
@roles_required(*STAFF)
def taxonomy():
    q = request.args.get("q", "").strip()[:200]
    if q:
        found = suggest.engine(db).search(q, limit=50)
    else:
        found = queries.taxonomy_roots(db)
    allowed = weak_spots.categories_in_charge(db, current_principal())
    return render_template("category_mapping/taxonomy.html", q=q, found=found, allowed=allowed)


@bp.get("/taxonomy/<int:category_id>")
@roles_required(*STAFF)
def taxonomy_category(category_id: int):
    category = db.get(TaxonomyCategory, category_id)
    if category is None:
        abort(404)
    chain = queries.ancestors(db, category)
    own, inherited, children = queries.category_card(db, category, chain)
    allowed = weak_spots.categories_in_charge(db, current_principal())
    managers, candidates = queries.managers(db, category_id)
    return render_template("category_mapping/taxonomy_category.html", category=category, chain=chain, own=own,
                           inherited=inherited, children=children, managers=managers, candidates=candidates,
                           can_edit=allowed is None or category_id in allowed, types=ATTRIBUTE_TYPES,
                           action=ActionForm())


@bp.post("/taxonomy/<int:category_id>/requirements")
@roles_required(*STAFF)
def save_requirement(category_id: int):
    if db.get(TaxonomyCategory, category_id) is None:
        abort(404)
    if ActionForm().validate_on_submit():
        cells = {name: request.form.get(name, "") for name in ("code", "name_en", "name_ru", "type", "unit", "allowed_values")}
        cells["required"] = "yes" if request.form.get("required") else "no"
        try:
            saved = services.save_requirement(db, current_principal(), category_id, cells)
            flash(gettext("“%(code)s” saved; readiness is being recomputed for every merchant.", code=saved.code), "success")
        except MappingError as exc:
            db.rollback()
            flash(" ".join([exc.message, *(exc.details or [])]), "danger")
    return redirect(url_for("category_mapping.taxonomy_category", category_id=category_id))


@bp.post("/taxonomy/<int:category_id>/requirements/<code>/delete")
@roles_required(*STAFF)
def delete_requirement(category_id: int, code: str):
    if db.get(TaxonomyCategory, category_id) is None:
        abort(404)
    if ActionForm().validate_on_submit():
        try:
            services.delete_requirement(db, current_principal(), category_id, code)
            flash(gettext("“%(code)s” removed.", code=code), "success")
        except MappingError as exc:
            db.rollback()
            flash(exc.message, "danger")
    return redirect(url_for("category_mapping.taxonomy_category", category_id=category_id))


@bp.post("/taxonomy/<int:category_id>/managers")
@roles_required("operator_admin")
def assign_manager(category_id: int):
    if db.get(TaxonomyCategory, category_id) is None:
        abort(404)
    if ActionForm().validate_on_submit():
        try:
            services.assign_manager(db, current_principal(), category_id, request.form.get("user_id", type=int) or 0,
                                    request.form.get("assigned", "1") == "1")
            flash(gettext("Saved."), "success")
        except MappingError as exc:
            db.rollback()
            flash(exc.message, "danger")
    return redirect(url_for("category_mapping.taxonomy_category", category_id=category_id))
