"""Staff's KPI pages: merchants ranked by their health (page and CSV download) and the operators' thresholds."""
from __future__ import annotations

import csv
import io
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from flask import Response, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext, ngettext
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy.orm import Session
from werkzeug.datastructures import MultiDict

from portal.accounts.models import Merchant
from portal.auth import roles_required
from portal.db import session as db
from portal.kpi.forms import THRESHOLD_METRICS, RestoreDefaultsForm, ThresholdsForm
from portal.kpi.metrics import AMBER, BY_KEY, HEALTH, NO_DATA, RED, SEVERITY, STATUS_LABELS, Metric, display
from portal.kpi.queries import (Figure, Period, merchants_in_charge, merchants_named, overall_status, ranking,
                                thresholds, worst_first)
from portal.kpi.services import ThresholdError, reset_thresholds, set_thresholds
from portal.kpi.views import STATUS_COLOURS, bp
from portal.reports import safe_cell
from portal.tenancy import Principal, current_principal

STAFF = ("category_manager", "operator_admin")
# The periods a page may choose instead of each metric's own window (the merchant's KPI page offers the same).
PERIOD_DAYS = (7, 30, 90)
# "Any red" and "any amber or red": the statuses a merchant needs among its health metrics to be listed.
STATUS_FILTERS = {"red": (RED,), "amber": (AMBER, RED)}
STATUS_FILTER_LABELS = {"": _l("All merchants"), "red": _l("Any metric red"), "amber": _l("Any metric amber or red")}
HEALTH_METRICS: tuple[Metric, ...] = tuple(BY_KEY[key] for key in HEALTH)


# --- the ranking --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RankingFilters:
    """What the ranking is narrowed to and sorted by, read from the query string (links keep it)."""

    days: int | None = None
    status: str = ""
    q: str = ""
    mine: bool = False
    sort: str = ""  # a health metric's key; empty: the worst merchants first
    descending: bool = True

    @classmethod
    def from_args(cls, args: MultiDict, *, may_narrow_to_own: bool) -> RankingFilters:
        days = args.get("days", type=int)
        sort = args.get("sort", "")
        sort = sort if sort in HEALTH else ""
        direction = args.get("dir", "")
        if direction in ("asc", "desc"):
            descending = direction == "desc"
        else:  # each metric's worst values first: the highest of a lower-is-better one, the lowest otherwise
            descending = not sort or BY_KEY[sort].better == "lower"
        status = args.get("status", "")
        return cls(days=days if days in PERIOD_DAYS else None,
                   status=status if status in STATUS_FILTERS else "",
                   q=args.get("q", "").strip()[:100],
                   mine=may_narrow_to_own and args.get("mine") == "1",
                   sort=sort, descending=descending)

    def as_args(self, **changes: Any) -> dict[str, Any]:
        """The filters as query arguments, without the empty ones."""
        values = asdict(self) | changes
        args = {"days": values["days"], "status": values["status"], "q": values["q"],
                "mine": "1" if values["mine"] else None, "sort": values["sort"],
                "dir": ("desc" if values["descending"] else "asc") if values["sort"] else None}
        return {key: value for key, value in args.items() if value}

    def sort_link(self, key: str) -> dict[str, Any]:
        """Sorting by ``key``: worst first on the first click, the other way round on the next."""
        if key == self.sort:
            return self.as_args(descending=not self.descending)
        return self.as_args(sort=key, descending=BY_KEY[key].better == "lower")

    def period(self) -> Period | None:
        return Period.last(self.days) if self.days else None


@dataclass
class Row:
    """One merchant of the ranking with its figures."""

    merchant: Merchant
    figures: dict[str, Figure]

    def count(self, state: str) -> int:
        return sum(1 for key in HEALTH if self.figures[key].status == state)

    @property
    def status(self) -> str:
        return overall_status(self.figures)


def ranked_rows(db: Session, principal: Principal, filters: RankingFilters) -> list[Row]:
    """The merchants the filters keep, with their figures, in the order asked for."""
    merchant_ids: set[int] | None = None
    if filters.q:
        merchant_ids = merchants_named(db, filters.q)
    if filters.mine:
        own = merchants_in_charge(db, principal)
        if own is not None:
            merchant_ids = own if merchant_ids is None else merchant_ids & own
    if merchant_ids is not None and not merchant_ids:
        return []
    found = ranking(db, principal, period=filters.period(),
                    merchant_ids=None if merchant_ids is None else sorted(merchant_ids))
    rows = [Row(merchant, figures) for merchant, figures in found]
    if filters.status:
        wanted = STATUS_FILTERS[filters.status]
        rows = [row for row in rows if any(row.figures[key].status in wanted for key in HEALTH)]
    if filters.sort:
        by_id = {row.merchant.id: row for row in rows}
        ordered = worst_first([(row.merchant.id, row.figures) for row in rows], filters.sort, filters.descending)
        return [by_id[merchant_id] for merchant_id, _ in ordered]
    # The worst status first; among equals, more red metrics, then more amber ones, then by name.
    rows.sort(key=lambda row: (-SEVERITY[row.status], -row.count(RED), -row.count(AMBER),
                               row.merchant.name.casefold(), row.merchant.id))
    if not filters.descending:
        # The best first; merchants without data stay last either way.
        rows = [r for r in reversed(rows) if r.status != NO_DATA] + [r for r in rows if r.status == NO_DATA]
    return rows


def summary(rows: list[Row]) -> dict[str, Counter[str]]:
    """How many of the listed merchants are red, amber and green on each health metric, and overall."""
    counts: dict[str, Counter[str]] = {key: Counter(row.figures[key].status for row in rows) for key in HEALTH}
    counts["overall"] = Counter(row.status for row in rows)
    return counts


def _filters() -> RankingFilters:
    return RankingFilters.from_args(request.args, may_narrow_to_own=current_user.role == "category_manager")


@bp.get("/ranking", endpoint="ranking")
@roles_required(*STAFF)
def ranking_page():
    filters = _filters()
    rows = ranked_rows(db, current_principal(), filters)
    return render_template(
        "kpi/ranking.html", rows=rows, filters=filters, metrics=HEALTH_METRICS, summary=summary(rows),
        period_days=PERIOD_DAYS, status_filters=STATUS_FILTER_LABELS,
        may_narrow_to_own=current_user.role == "category_manager", display=display,
        # Translated once per page, not once per cell of a 200-merchant table.
        status_label={state: str(label) for state, label in STATUS_LABELS.items()}.get,
        status_colour=STATUS_COLOURS.get,
    )


def _csv_value(metric: Metric, value: Any) -> Any:
    """Rates as fractions, times in hours, counts as they are; empty when there is no data."""
    if value is None:
        return ""
    if metric.unit == "rate":
        return round(float(value), 6)
    if metric.unit == "hours":
        return round(float(value), 2)
    return value


def _csv_header(metric: Metric) -> str:
    if metric.unit == "rate":
        return gettext("%(metric)s (fraction)", metric=metric.label)
    if metric.unit == "hours":
        return gettext("%(metric)s (hours)", metric=metric.label)
    return str(metric.label)


def ranking_csv_bytes(rows: list[Row]) -> bytes:
    """The ranking as CSV, UTF-8 with a BOM so that spreadsheets read the Cyrillic; each metric's value and
    its status; every text cell safe from formula injection."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    header = [gettext("Merchant ID"), gettext("Slug"), gettext("Merchant"), gettext("Overall status")]
    for metric in HEALTH_METRICS:
        header += [_csv_header(metric), gettext("%(metric)s: status", metric=metric.label)]
    writer.writerow([safe_cell(cell) for cell in header])
    for row in rows:
        cells: list[Any] = [row.merchant.id, row.merchant.slug, row.merchant.name, str(STATUS_LABELS[row.status])]
        for metric in HEALTH_METRICS:
            figure = row.figures[metric.key]
            cells += [_csv_value(metric, figure.value), str(STATUS_LABELS[figure.status])]
        writer.writerow([safe_cell(cell) for cell in cells])
    return buffer.getvalue().encode("utf-8-sig")


@bp.get("/ranking.csv", endpoint="ranking_csv")
@roles_required(*STAFF)
def ranking_csv():
    filters = _filters()
    rows = ranked_rows(db, current_principal(), filters)
    name = f"merchant-performance-{filters.days}d.csv" if filters.days else "merchant-performance.csv"
    return Response(ranking_csv_bytes(rows), mimetype="text/csv",
                    headers={"Content-Disposition": f"attachment; filename={name}"})


# --- the thresholds -----------------------------------------------------------------------------------------------

@bp.route("/thresholds", methods=["GET", "POST"], endpoint="thresholds")
@roles_required(*STAFF)
def edit_thresholds():
    """Operators set the lines; category managers may read them (the ranking's colours come from here)
    but not change them."""
    may_edit = current_user.role == "operator_admin"
    if request.method == "POST" and not may_edit:
        abort(403)
    form, restore = ThresholdsForm(), RestoreDefaultsForm()
    if request.method == "POST":
        if restore.restore.data:
            reset_thresholds(db, current_principal())
            flash(gettext("The default thresholds are back."), "success")
            return redirect(url_for("kpi.thresholds"))
        # An invalid form comes back with each mistake beside its field and listed above the table.
        if form.validate_on_submit():
            done = _save(form.values)
            if done is not None:
                return done
    else:
        form.fill(thresholds(db))
    return render_template("kpi/thresholds.html", form=form, restore=restore, may_edit=may_edit, display=display)


def _save(values: dict[str, tuple[float | None, float | None]]) -> Any:
    """Store the lines and go back to the page; on a refusal, None with the reason flashed (nothing stored)."""
    try:
        changed = set_thresholds(db, current_principal(), values)
    except ThresholdError as error:
        db.rollback()
        flash(gettext("Nothing was saved: %(reason)s", reason=error.message), "danger")
        return None
    if changed:
        flash(ngettext("Thresholds of %(num)d metric saved.", "Thresholds of %(num)d metrics saved.", changed),
              "success")
    else:
        flash(gettext("Nothing changed."), "info")
    return redirect(url_for("kpi.thresholds"))
