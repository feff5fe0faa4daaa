"""`portal kpi show` prints what GET /api/v1/kpi answers; `portal kpi rollup` recounts the daily figures."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from portal.db import get_session
from portal.jobs.celery_app import BEAT_SCHEDULE, make_celery
from portal.kpi.models import KpiDaily
from tests.functional.test_kpi_api import get_kpi, known_history, without_times
from tests.support.kpi import History, days


def _json(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_show_json_prints_exactly_what_the_api_answers_for_the_same_merchant(app, factory, client, runner):
    known = known_history(app, factory)
    first, last = (known.now - days(12)).date().isoformat(), (known.now - days(9)).date().isoformat()
    printed = _json(runner.invoke(args=["kpi", "show", "--merchant", known.slug, "--from", first, "--to", last,
                                        "--json"]))
    answered = get_kpi(client, known.operator, merchant=known.slug, **{"from": first, "to": last}).get_json()
    assert printed == answered
    assert printed["late_shipment_rate"]["denominator"] == 30
    # Each metric over its own window: the same but for the windows' bounds, which follow the clock.
    printed = _json(runner.invoke(args=["kpi", "show", "--merchant", known.slug, "--json"]))
    answered = get_kpi(client, known.secret).get_json()
    assert without_times(printed) == without_times(answered)
    assert printed["warnings"][0]["order_numbers"] == [known.at_risk_number]
    week = _json(runner.invoke(args=["kpi", "show", "--merchant", known.slug, "--days", "7", "--json"]))
    assert without_times(week) == without_times(get_kpi(client, known.secret, days="7").get_json())


def test_show_prints_a_table_of_the_metrics_and_the_early_warnings(app, factory, runner):
    known = known_history(app, factory)
    result = runner.invoke(args=["kpi", "show", "--merchant", known.slug])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"KPI of {known.slug}"
    assert lines[1].split() == ["Metric", "Value", "Status", "Counted", "Threshold"]
    late = next(line for line in lines if line.startswith("Late shipment rate"))
    assert late.split("  ")[0] == "Late shipment rate"
    assert [cell.strip() for cell in late.split("  ") if cell.strip()] == [
        "Late shipment rate", "0.0 %", "Good", "0 / 30", "4.0 %"]
    cancel = next(line for line in lines if line.startswith("Merchant cancellation rate"))
    assert [cell.strip() for cell in cancel.split("  ") if cell.strip()] == [
        "Merchant cancellation rate", "33.3 %", "Below target", "1 / 3", "2.5 %"]
    acceptance = next(line for line in lines if line.startswith("Acceptance time"))
    assert [cell.strip() for cell in acceptance.split("  ") if cell.strip()] == [
        "Acceptance time", "10.0 h", "Good", "n = 31", "18.0 h"]
    revenue = next(line for line in lines if line.startswith("Revenue"))
    assert [cell.strip() for cell in revenue.split("  ") if cell.strip()] == ["Revenue", "3,100.00", "For information"]
    assert "Early warnings:" in lines
    assert lines[-1] == (f"  Late shipment rate: 1 order at risk ({known.at_risk_number}) would take it from 0.0 % "
                         "to 3.2 % (At risk).")


def test_show_for_an_unknown_merchant_says_so_and_exits_1(runner):
    result = runner.invoke(args=["kpi", "show", "--merchant", "ghost"])
    assert result.exit_code == 1
    assert "There is no merchant with the slug ghost." in result.output
    as_json = runner.invoke(args=["kpi", "show", "--merchant", "ghost", "--json"])
    assert as_json.exit_code == 1
    assert json.loads(as_json.stdout)["error"]["message"] == "There is no merchant with the slug ghost."


def test_show_refuses_a_period_it_cannot_answer(app, factory, runner):
    factory.merchant(slug="acme")
    half = runner.invoke(args=["kpi", "show", "--merchant", "acme", "--from", "2026-03-01", "--json"])
    assert half.exit_code == 1
    assert json.loads(half.stdout)["error"]["details"] == {"field": "--to"}
    backwards = runner.invoke(args=["kpi", "show", "--merchant", "acme", "--from", "2026-03-02", "--to", "2026-03-01"])
    assert backwards.exit_code == 1 and "--from (2026-03-02) is after --to (2026-03-01)." in backwards.output
    assert runner.invoke(args=["kpi", "show", "--merchant", "acme", "--days", "5"]).exit_code == 2  # click: bad usage


def test_rollup_recounts_the_daily_figures_and_prints_what_it_did(app, factory, runner):
    merchant = factory.merchant(slug="acme")
    now = datetime.now(timezone.utc)
    History(app, merchant.id).shipped(now - timedelta(days=2), late=True)
    result = _json(runner.invoke(args=["kpi", "rollup", "--days", "3", "--json"]))
    today = now.date()
    assert result == {"days": 3, "from": (today - timedelta(days=2)).isoformat(), "to": today.isoformat(),
                      "rows": result["rows"]}
    with app.app_context():
        found = get_session().scalars(select(KpiDaily).where(KpiDaily.merchant_id == merchant.id))
        rows = {row.day: row for row in found}
    shipped_day = (now - timedelta(days=2)).date()
    assert (rows[shipped_day].shipped, rows[shipped_day].shipped_late) == (1, 1)
    assert rows[today].active_products == 1  # today's catalog snapshot
    human = runner.invoke(args=["kpi", "rollup"])
    assert human.exit_code == 0
    assert human.output.startswith("KPI rollup: ") and (today - timedelta(days=7)).isoformat() in human.output
    assert runner.invoke(args=["kpi", "rollup", "--days", "801"]).exit_code == 2


def test_beat_recounts_the_rollups_every_hour_through_its_own_task(app, factory):
    entry = BEAT_SCHEDULE["kpi-rollup-hourly"]
    assert entry["task"] == "portal.kpi_rollup"
    assert entry["schedule"].minute == {15} and len(entry["schedule"].hour) == 24
    merchant = factory.merchant(slug="acme")
    History(app, merchant.id).shipped(datetime.now(timezone.utc) - timedelta(days=1))
    result = make_celery(app).tasks["portal.kpi_rollup"]()
    assert result["days"] == 8 and result["rows"] >= 1
    with app.app_context():
        assert get_session().scalar(select(KpiDaily.shipped).where(KpiDaily.merchant_id == merchant.id,
                                                                   KpiDaily.shipped == 1)) == 1
