"""The catalog pages: uploads with their mapping, preview and results; products and their history."""
from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext, get_locale
from flask_login import current_user
from sqlalchemy import distinct, select

from portal.accounts.forms import ActionForm
from portal.accounts.queries import emails_by_id, merchant_names_by_id
from portal.auth import roles_required
from portal.catalog import services
from portal.catalog.exceptions import CatalogError
from portal.catalog.fields import FIELDS
from portal.catalog.forms import MappingForm, UploadForm
from portal.catalog.models import Product, ProductEvent, Upload, UploadIssue
from portal.catalog.queries import products as products_query
from portal.catalog.queries import uploads as uploads_query
from portal.catalog.validation import message
from portal.category_mapping.models import TaxonomyCategory
from portal.category_mapping.queries import codes
from portal.category_mapping.requests import labels as requests_labels
from portal.db import session as db
from portal.jobs.models import Job
from portal.pagination import paginate
from portal.storage_access import send_stored
from portal.tenancy import current_principal, get_or_404, scope

bp = Blueprint("catalog", __name__, url_prefix="/catalog", template_folder="templates")

MERCHANT = ("merchant_admin", "merchant_staff")
READERS = (*MERCHANT, "operator_admin", "category_manager")


@bp.get("/uploads")
@roles_required(*READERS)
def uploads():
    page = paginate(db, uploads_query(), request.args.get("page", 1, type=int), per_page=25)
    uploaders = emails_by_id(db, (u.uploaded_by_id for u in page.items))
    return render_template("catalog/uploads.html", page=page, form=UploadForm(), uploaders=uploaders,
                           merchants=_merchant_names(page.items))


def _merchant_names(items: list) -> dict[int, str]:
    """Names of the merchants of a page's rows, for marketplace staff who see every merchant."""
    if not current_user.is_staff:
        return {}
    return merchant_names_by_id(db, (item.merchant_id for item in items))


@bp.post("/uploads")
@roles_required(*MERCHANT)
def create_upload():
    form = UploadForm()
    if not form.validate_on_submit():
        flash(gettext("Choose a file to upload."), "danger")
        return redirect(url_for("catalog.uploads"))
    file = form.file.data
    upload = services.receive_upload(db, current_principal(), stream=file.stream, filename=file.filename or "catalog",
                                     source="web", locale=str(get_locale() or "en"))
    if upload.status == "failed":
        flash(gettext("The file could not be read: %(error)s Nothing was changed.", error=upload.error), "danger")
        return redirect(url_for("catalog.show_upload", upload_id=upload.id))
    return redirect(url_for("catalog.mapping", upload_id=upload.id))


@bp.route("/uploads/<int:upload_id>/mapping", methods=["GET", "POST"])
@roles_required(*MERCHANT)
def mapping(upload_id: int):
    upload = get_or_404(Upload, upload_id)
    form = MappingForm()
    if form.validate_on_submit():
        chosen = {column: request.form.get(f"map-{i}", "") for i, column in enumerate(upload.columns)}
        try:
            services.update_mapping(db, upload, chosen, principal=current_principal(),
                                    save_template=bool(request.form.get("save_template")),
                                    deactivate_missing_products=bool(request.form.get("deactivate_missing")))
            services.start_processing(db, upload, dry_run=request.form.get("action") != "apply", principal=current_principal())
        except CatalogError as exc:
            flash(exc.message, "danger")
        else:
            return redirect(url_for("catalog.show_upload", upload_id=upload.id))
    return render_template("catalog/mapping.html", upload=upload, form=form, fields=FIELDS)


@bp.get("/uploads/<int:upload_id>")
@roles_required(*READERS)
def show_upload(upload_id: int):
    upload = get_or_404(Upload, upload_id)
    job = db.get(Job, upload.job_id) if upload.job_id else None
    issues = db.scalars(select(UploadIssue).where(UploadIssue.upload_id == upload.id)
                        .order_by(UploadIssue.severity, UploadIssue.row, UploadIssue.id).limit(200)).all()
    return render_template("catalog/upload.html", upload=upload, job=job, issues=issues, message=message,
                           action_form=ActionForm())


@bp.post("/uploads/<int:upload_id>/apply")
@roles_required(*MERCHANT)
def apply_upload(upload_id: int):
    upload = get_or_404(Upload, upload_id)
    if ActionForm().validate_on_submit():
        try:
            services.start_processing(db, upload, dry_run=False, principal=current_principal())
        except CatalogError as exc:
            flash(exc.message, "danger")
    return redirect(url_for("catalog.show_upload", upload_id=upload.id))


@bp.get("/uploads/<int:upload_id>/file")
@roles_required(*READERS)
def original_file(upload_id: int):
    upload = get_or_404(Upload, upload_id)
    if not upload.storage_key:
        abort(404)
    return send_stored(upload.storage_key, upload.filename, "application/octet-stream")


@bp.get("/uploads/<int:upload_id>/errors")
@roles_required(*READERS)
def error_report(upload_id: int):
    upload = get_or_404(Upload, upload_id)
    if not upload.error_report_key:
        abort(404)
    extension = upload.error_report_key.rsplit(".", 1)[-1]
    stem = upload.filename.rsplit(".", 1)[0]
    mimetype = "text/csv" if extension == "csv" else (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    return send_stored(upload.error_report_key, f"{stem}-errors.{extension}", mimetype)


@bp.get("/products")
@roles_required(*READERS)
def products():
    args = request.args
    stmt = products_query(args.get("q", ""), args.get("status", ""), args.get("category", ""), bool(args.get("has_errors")),
                          args.get("readiness", ""))
    page = paginate(db, stmt, args.get("page", 1, type=int), per_page=50)
    categories = db.scalars(scope(select(distinct(Product.category)).where(Product.category != ""), Product)
                            .order_by(Product.category).limit(500)).all()
    filters = {k: args.get(k, "") for k in ("q", "status", "category", "has_errors", "readiness")}
    return render_template("catalog/products.html", page=page, categories=categories, filters=filters,
                           merchants=_merchant_names(page.items))


@bp.get("/products/<int:product_id>")
@roles_required(*READERS)
def product(product_id: int):
    item = get_or_404(Product, product_id)
    events = db.scalars(select(ProductEvent).where(ProductEvent.product_id == item.id)
                        .order_by(ProductEvent.at.desc(), ProductEvent.id.desc()).limit(100)).all()
    marketplace = db.get(TaxonomyCategory, item.marketplace_category_id) if item.marketplace_category_id else None
    names = requests_labels(codes(db), str(get_locale() or "en"))
    return render_template("catalog/product.html", product=item, events=events, marketplace=marketplace, names=names,
                           is_owner=current_user.merchant_id == item.merchant_id)
