"""Catalog API: uploads, the product list and quick offer updates (price, stock)."""
from __future__ import annotations

from flask import request, url_for
from flask.views import MethodView
from flask_babel import gettext, get_locale
from flask_smorest.fields import Upload as UploadField
from marshmallow import Schema, fields, validate

from portal.api import api_blueprint
from portal.catalog import services
from portal.catalog.exceptions import CatalogError
from portal.catalog.models import Product, Upload
from portal.catalog.queries import products as products_query
from portal.db import session as db
from portal.errors import PortalError
from portal.extensions import ErrorSchema
from portal.tenancy import current_principal, get_or_404

blp = api_blueprint("catalog_api", __name__, description="Catalog uploads, products and quick offer updates")


class UploadFileSchema(Schema):
    file = UploadField(required=True, metadata={"description": "CSV, XLSX or YML file"})


class UploadOptionsSchema(Schema):
    dry_run = fields.Boolean(load_default=False, metadata={"description": "preview only: report what would change"})
    deactivate_missing = fields.Boolean(load_default=False, metadata={
        "description": "the file is the whole catalog: deactivate products not in it"})


class UploadErrorSchema(Schema):
    row = fields.Integer(allow_none=True)
    column = fields.String(allow_none=True)
    code = fields.String()
    message = fields.String()


class UploadResultSchema(Schema):
    upload_id = fields.Integer()
    status = fields.String(metadata={"description": "uploaded, queued, running, previewed, applied or failed"})
    dry_run = fields.Boolean()
    rows = fields.Integer()
    created = fields.Integer()
    updated = fields.Integer()
    unchanged = fields.Integer()
    rejected = fields.Integer()
    warnings = fields.Integer()
    deactivated = fields.Integer()
    errors = fields.List(fields.Nested(UploadErrorSchema))


class UploadAcceptedSchema(Schema):
    upload_id = fields.Integer()
    status = fields.String()
    job_id = fields.String()


class ProductSchema(Schema):
    id = fields.Integer()
    sku = fields.String()
    title = fields.String()
    price = fields.String(metadata={"description": "decimal as a string, e.g. \"1299.00\""})
    currency = fields.String()
    stock = fields.Integer(metadata={"description": "stock on hand"})
    reserved = fields.Integer(metadata={"description": "held by open orders"})
    available = fields.Integer(metadata={"description": "stock - reserved"})
    status = fields.String()
    brand = fields.String()
    gtin = fields.String()
    category = fields.String()
    description = fields.String()
    images = fields.List(fields.String())
    attributes = fields.Dict(keys=fields.String(), values=fields.String())
    last_error = fields.String(allow_none=True)
    updated_at = fields.String()


class ProductListSchema(Schema):
    items = fields.List(fields.Nested(ProductSchema))
    next = fields.String(allow_none=True)


class ProductQuerySchema(Schema):
    q = fields.String(load_default="")
    status = fields.String(load_default="", validate=validate.OneOf(["", "active", "inactive"]))
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))
    after = fields.Integer(load_default=0, metadata={"description": "id of the last product of the previous page"})


class OfferPatchSchema(Schema):
    price = fields.Decimal(allow_nan=False, metadata={"description": "new price, e.g. \"1299.00\""})
    stock = fields.Integer(strict=True, metadata={"description": "new stock on hand"})


@blp.route("/catalog/uploads")
class Uploads(MethodView):
    @blp.arguments(UploadFileSchema, location="files")
    @blp.arguments(UploadOptionsSchema, location="form")
    @blp.response(202, UploadAcceptedSchema)
    @blp.alt_response(422, schema=ErrorSchema, description="The file cannot be read, or it has no SKU column")
    def post(self, files, options):
        """Upload a catalog file; it is processed in the background (poll the upload for its result)."""
        principal = current_principal()
        if principal.merchant_id is None:
            raise CatalogError(gettext("Only a merchant token can upload a catalog."), status=403, code="merchant_only")
        file = files["file"]
        upload = services.receive_upload(db, principal, stream=file.stream, filename=file.filename or "catalog",
                                         source="api", locale=str(get_locale() or "en"))
        if upload.status == "failed":
            raise PortalError(upload.error or "", status=422, code=upload.error_code or "unreadable_file",
                              details=services.upload_result(db, upload))
        if options["deactivate_missing"]:
            services.update_mapping(db, upload, upload.mapping, principal=principal, deactivate_missing_products=True)
        job = services.start_processing(db, upload, dry_run=options["dry_run"], principal=principal)
        return {"upload_id": upload.id, "status": upload.status, "job_id": job.id}


@blp.route("/catalog/uploads/<int:upload_id>")
class UploadResult(MethodView):
    @blp.response(200, UploadResultSchema)
    @blp.alt_response(404, schema=ErrorSchema)
    def get(self, upload_id: int):
        """The upload's status and counts, with its first errors (row, column, code, message)."""
        return services.upload_result(db, get_or_404(Upload, upload_id))


@blp.route("/products")
class Products(MethodView):
    @blp.arguments(ProductQuerySchema, location="query")
    @blp.response(200, ProductListSchema)
    def get(self, query):
        """The token's products, oldest first, a page at a time (follow `next`)."""
        stmt = products_query(query["q"], query["status"]).order_by(None).order_by(Product.id)
        stmt = stmt.where(Product.id > query["after"]).limit(query["limit"])
        items = list(db.scalars(stmt))
        next_url = None
        if len(items) == query["limit"]:
            args = {k: v for k, v in request.args.items() if k != "after"}
            next_url = url_for("catalog_api.Products", after=items[-1].id, _external=True, **args)
        return {"items": [services.product_dict(p) for p in items], "next": next_url}


@blp.route("/products/<path:sku>")
class ProductOffer(MethodView):
    @blp.response(200, ProductSchema)
    @blp.alt_response(404, schema=ErrorSchema)
    def get(self, sku: str):
        """One product by its SKU."""
        return services.product_dict(_product(sku))

    @blp.arguments(OfferPatchSchema)
    @blp.response(200, ProductSchema)
    @blp.alt_response(404, schema=ErrorSchema)
    @blp.alt_response(422, schema=ErrorSchema)
    def patch(self, changes, sku: str):
        """Change price and/or stock on hand; reservations by orders are kept."""
        product = _product(sku)
        updated = services.update_offer(db, product, principal=current_principal(), price=changes.get("price"),
                                        stock=changes.get("stock"))
        return services.product_dict(updated)


def _product(sku: str) -> Product:
    principal = current_principal()
    if principal.merchant_id is None:
        raise CatalogError(gettext("Products are addressed by SKU with a merchant token."), status=403, code="merchant_only")
    product = services.product_by_sku(db, sku)
    if product is None:
        raise PortalError(gettext("There is no product with the SKU %(sku)s.", sku=sku), status=404, code="not_found")
    return product
