"""KPI speed: a merchant's Performance page and the staff ranking over 1,000,000 orders of 200 merchants.

    PORTAL_BENCH_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/bench_kpi \\
        .venv/bin/python bench/kpi.py [--orders 1000000] [--merchants 200] [--requests 20] [--reuse]

PostgreSQL only. Loads the history with ``bench/_kpi_data.py`` (orders, lines, products, fill-in requests and
uploads written in SQL; the database's public schema is recreated), times the rollup job over the whole
history and over its usual 8 days, then signs in through the form and times, in process (server time):
``GET /kpi/`` for merchant admins of merchants large and small, ``GET /api/v1/kpi`` with a merchant token,
``GET /kpi/merchants/<id>`` and ``GET /kpi/ranking`` for an operator. Prints p50/p95/max and the SQL part.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, select  # noqa: E402

from bench import _kpi_data  # noqa: E402
from bench.orders_api import _login, _machine, _percentiles, _sql_timer  # noqa: E402
from portal import create_app  # noqa: E402
from portal.accounts.models import Merchant, User  # noqa: E402
from portal.accounts.services import create_token, create_user  # noqa: E402
from portal.db import get_session  # noqa: E402
from portal.kpi.services import rollup  # noqa: E402
from portal.orders.models import Order  # noqa: E402
from portal.shipping.carriers import recheck_tracking  # noqa: E402

PASSWORD = "bench-password-1"
OPERATOR = "operator@bench.example"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--merchants", type=int, default=200)
    parser.add_argument("--days", type=int, default=120, help="days of history")
    parser.add_argument("--requests", type=int, default=20, help="timed requests per page")
    parser.add_argument("--reuse", action="store_true", help="keep the loaded history (times drift as it ages)")
    args = parser.parse_args()
    url = os.environ.get("PORTAL_BENCH_DATABASE_URL")
    if not url or not url.startswith("postgresql"):
        raise SystemExit("set PORTAL_BENCH_DATABASE_URL to a PostgreSQL database (it is wiped)")
    print(f"machine: {_machine()}", flush=True)
    if not args.reuse:
        loaded = _kpi_data.load(url, merchants=args.merchants, orders=args.orders, days=args.days)
        print(f"loaded {loaded['orders']:,} orders of {args.merchants} merchants in "
              f"{loaded['seconds']:.0f} s", flush=True)
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "bench", "ENV_NAME": "testing", "STORAGE_URL": "file:///tmp/bench-kpi",
                      "LOGIN_RATE_LIMIT": "100000 per minute", "RATELIMIT_STORAGE_URI": "memory://"})
    with app.app_context():
        db = get_session()
        total = db.scalar(select(func.count(Order.id)))
        if not args.reuse:
            # The history was written straight to the table: check its tracking numbers as an import would (and
            # as an operator's change of a carrier's formats does), which times that check over all of them.
            started = time.perf_counter()
            checked = recheck_tracking(db)
            db.commit()
            print(f"tracking numbers of {checked:,} shipped orders checked: {time.perf_counter() - started:.1f} s",
                  flush=True)
            # What autovacuum does after such a rewrite, now rather than during the timed requests.
            with db.get_bind().connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM ANALYZE orders")
            started = time.perf_counter()
            recheck_tracking(db, ["cdek"])
            db.commit()
            print(f"a carrier's formats changed (CDEK, nothing flips): its orders checked again in "
                  f"{time.perf_counter() - started:.1f} s", flush=True)
        for days in (args.days + 1, 8):
            started = time.perf_counter()
            result = rollup(db, days=days)
            print(f"rollup of {days} days: {time.perf_counter() - started:.1f} s ({result['rows']:,} merchant-days)",
                  flush=True)
        sizes = dict(db.execute(select(Order.merchant_id, func.count(Order.id)).group_by(Order.merchant_id)).tuples().all())
        ordered = sorted(sizes, key=lambda m: sizes[m])
        sample = [ordered[-1], ordered[-2], ordered[len(ordered) // 2], ordered[0]]
        logins = {}
        for merchant_id in sample:
            merchant = db.get(Merchant, merchant_id)
            email = f"admin@{merchant.slug}.example"
            if db.scalar(select(User).where(User.email == email)) is None:
                create_user(db, email=email, password=PASSWORD, role="merchant_admin", merchant=merchant)
            _, secret = create_token(db, name="bench", merchant=merchant)
            logins[merchant_id] = (email, secret)
        if db.scalar(select(User).where(User.email == OPERATOR)) is None:
            create_user(db, email=OPERATOR, password=PASSWORD, role="operator_admin", merchant=None)
        db.commit()
    print(f"{total:,} orders; server time in process, {args.requests} timed requests each (ms)", flush=True)
    sql = _sql_timer(app)

    def timed(client, label: str, path: str, **kwargs) -> None:
        client.get(path, **kwargs)  # untimed: caches, buffers
        times, sql_times = [], []
        for _ in range(args.requests):
            sql.update(ms=0.0, n=0)
            started = time.perf_counter()
            response = client.get(path, **kwargs)
            times.append((time.perf_counter() - started) * 1000)
            sql_times.append(sql["ms"])
            if response.status_code != 200:
                raise SystemExit(f"GET {path} answered {response.status_code}")
        stats = _percentiles(times)
        print(f"  {label:<48} p50 {stats['p50']:7.1f}  p95 {stats['p95']:7.1f}  max {stats['max']:7.1f}   "
              f"SQL p50 {statistics.median(sql_times):7.1f}", flush=True)

    for merchant_id in sample:
        email, secret = logins[merchant_id]
        client = app.test_client()
        _login(client, email, PASSWORD)
        what = f"merchant {merchant_id} ({sizes[merchant_id]:,} orders)"
        timed(client, f"GET /kpi/ {what}", "/kpi/")
        timed(client, f"GET /kpi/?days=90 {what}", "/kpi/", query_string={"days": 90})
        timed(app.test_client(), f"GET /api/v1/kpi {what}", "/api/v1/kpi",
              headers={"Authorization": f"Bearer {secret}"})
    staff = app.test_client()
    _login(staff, OPERATOR, PASSWORD)
    timed(staff, f"GET /kpi/merchants/{sample[0]} (operator)", f"/kpi/merchants/{sample[0]}")
    timed(staff, f"GET /kpi/ranking ({len(sizes)} merchants)", "/kpi/ranking")
    timed(staff, "GET /kpi/ranking?days=90", "/kpi/ranking", query_string={"days": 90})
    app.extensions["portal.db"].dispose()


if __name__ == "__main__":
    main()
