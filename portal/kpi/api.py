"""KPI API: a merchant's figures against their thresholds, as ``portal kpi show`` prints them."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import jsonify
from flask.views import MethodView
from flask_babel import gettext
from marshmallow import Schema, fields, validate
from sqlalchemy.orm import Session

from portal.api import api_blueprint
from portal.db import session as db
from portal.extensions import ErrorSchema
from portal.kpi.metrics import METRICS
from portal.kpi.queries import Health, Period, health
from portal.kpi.reports import DAY_CHOICES, ReportError, check_period, period_of
from portal.orders.queries import merchant_id_by_slug, merchant_slugs
from portal.tenancy import Principal, current_principal

blp = api_blueprint("kpi_api", __name__, description="KPI: a merchant's health against the marketplace's thresholds")


class KpiQuerySchema(Schema):
    merchant = fields.String(load_default=None, metadata={"description": "operator tokens: the merchant's slug "
                                                                         "(required); merchant tokens: ignored"})
    days = fields.Integer(load_default=None, validate=validate.OneOf(DAY_CHOICES),
                          metadata={"description": "every windowed metric over the last 7, 30 or 90 days; default: "
                                                   "each metric over its own window (late shipment 30 days, "
                                                   "cancellations 7, …)"})
    date_from = fields.Date(data_key="from", load_default=None,
                            metadata={"description": "YYYY-MM-DD, with `to`: whole UTC days, both included, at most "
                                                     "366 days; not with `days`"})
    date_to = fields.Date(data_key="to", load_default=None, metadata={"description": "YYYY-MM-DD, with `from`"})


class FigureSchema(Schema):
    value = fields.Raw(allow_none=True, metadata={"description": "rates as fractions (0.04, not 4), times in hours "
                                                                 "(the 90th percentile), counts, money as a decimal "
                                                                 "string; null: nothing to count"})
    threshold = fields.Float(allow_none=True, metadata={"description": "red from here (null: no threshold)"})
    warning = fields.Float(allow_none=True, metadata={"description": "amber from here"})
    status = fields.String(metadata={"description": "green, amber, red, no_data, or none (no threshold)"})
    numerator = fields.Raw(allow_none=True)
    denominator = fields.Integer(allow_none=True)
    unit = fields.String(metadata={"description": "rate, hours, count or money"})
    from_ = fields.String(data_key="from", allow_none=True, metadata={"description": "the window's start (ISO 8601); "
                                                                                     "null for the catalog as it is"})
    to = fields.String(allow_none=True, metadata={"description": "the window's end, excluded"})
    median = fields.Float(allow_none=True, metadata={"description": "times only"})
    p90 = fields.Float(allow_none=True, metadata={"description": "times only: the same as value"})


class KpiWarningSchema(Schema):
    metric = fields.String(metadata={"description": "the metric the at-risk orders would push across a line"})
    orders = fields.Integer(metadata={"description": "how many orders are at risk"})
    order_numbers = fields.List(fields.String(), metadata={"description": "the first five of them"})
    value = fields.Float(metadata={"description": "the metric now"})
    projected = fields.Float(metadata={"description": "the metric if they all went wrong"})
    status = fields.String()
    projected_status = fields.String()


KpiSchema = Schema.from_dict(
    {"merchant": fields.String(metadata={"description": "the merchant's slug"}),
     **{m.key: fields.Nested(FigureSchema, metadata={"description": str(m.formula)}) for m in METRICS},
     "warnings": fields.List(fields.Nested(KpiWarningSchema), metadata={"description": "early warnings"})},
    name="Kpi",
)


def kpi_payload(session: Session, principal: Principal, merchant_id: int, slug: str, *,
                period: Period | None = None, now: datetime | None = None) -> dict[str, Any]:
    """What ``GET /api/v1/kpi`` answers and ``portal kpi show --json`` prints: every metric, the warnings."""
    found: Health = health(session, principal, merchant_id, period=period, now=now)
    return {
        "merchant": slug,
        **{m.key: found.figures[m.key].as_dict() for m in METRICS},
        "warnings": [{"metric": w.metric.key, "orders": w.orders, "order_numbers": w.order_numbers, "value": w.value,
                      "projected": w.projected, "status": w.status, "projected_status": w.projected_status}
                     for w in found.warnings],
    }


@blp.route("/kpi")
class Kpi(MethodView):
    @blp.arguments(KpiQuerySchema(), location="query")
    @blp.response(200, KpiSchema)
    @blp.alt_response(404, schema=ErrorSchema, description="No merchant has that slug")
    @blp.alt_response(422, schema=ErrorSchema, description="An operator token without `merchant`, `days` not 7, 30 "
                                                           "or 90, a bad date, `from` after `to`, a period longer "
                                                           "than 366 days (details.field names it)")
    def get(self, query):
        """A merchant's KPI: each metric's value, what it was counted from and its status, and early warnings.

        A merchant token gets its own merchant's; an operator token names one with `merchant`.
        """
        principal = current_principal()
        if principal.is_merchant:
            merchant_id = principal.merchant_id
            slug = merchant_slugs(db, {merchant_id})[merchant_id]
        else:
            slug = (query["merchant"] or "").strip()
            if not slug:
                raise ReportError(gettext("Name the merchant: ?merchant=<slug>."), details={"field": "merchant"},
                                  code="merchant_required")
            merchant_id = merchant_id_by_slug(db, slug)
            if merchant_id is None:
                raise ReportError(gettext("There is no merchant %(slug)s.", slug=slug), details={"field": "merchant"},
                                  status=404, code="not_found")
        period = period_of(check_period(query["days"], query["date_from"], query["date_to"]))
        return jsonify(kpi_payload(db, principal, merchant_id, slug, period=period))
