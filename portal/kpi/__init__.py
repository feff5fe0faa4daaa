"""Block 5: KPI and reports — merchant health, early warnings, rankings and downloadable reports."""
