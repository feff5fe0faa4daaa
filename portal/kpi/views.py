"""The KPI pages: a merchant's health and trends, staff's ranking and drill-down, operators' thresholds."""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("kpi", __name__, url_prefix="/kpi")
