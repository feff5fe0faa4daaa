"""KPI API: a merchant's figures against their thresholds, as ``portal kpi show`` prints them."""
from __future__ import annotations

from portal.api import api_blueprint

blp = api_blueprint("kpi_api", __name__, description="KPI: a merchant's health against the marketplace's thresholds")
