"""Orders: intake through the API under gunicorn, and the order desk's list of a merchant with 1,000,000 orders.

    PORTAL_BENCH_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/bench \\
        python bench/orders_api.py --orders 10000 --concurrency 16 --desk-orders 1000000

PostgreSQL only. Two measurements (``--part api|desk|both``; the desk's comes first):

desk  Writes one merchant's ``--desk-orders`` orders (1-2 lines each; statuses and times spread over two
      years as a live merchant's would be: the last days open, older ones shipped, delivered, refused,
      cancelled or returned) with COPY, then VACUUM ANALYZE (what autovacuum would soon do). Signs in as
      that merchant's admin through the real sign-in form (its CSRF token and all) with the Flask test
      client in this process, and times ``GET /orders``: the default page, pages 2 and 100, status
      filters, the at-risk filter, a week's dates, and searches by exact order number, SKU, part of the
      buyer's name and a text that matches nothing. ``--requests`` each after one untimed request:
      p50/p95/max of the request's round trip in process (server time, the page rendered), and how much
      of it the database took. ``--explain`` prints EXPLAIN (ANALYZE, BUFFERS) of each list query. No
      order events are written: the list does not read them.

api   Starts gunicorn with ``--workers`` processes in production mode and posts ``--orders`` orders
      (1-3 lines, for 20 merchants with plenty of stock) with an operator token, from a load generator in
      this process: asyncio streams speaking HTTP/1.1 themselves, every request built before the clock
      starts, ``--concurrency`` in flight (a comma list runs each level in turn). The generator keeps its
      connections alive; the default ``sync`` workers (the README's ``gunicorn -w 4``) close each one,
      so it connects again, and the latency includes the connect. ``--worker-class gthread`` (one thread
      each) keeps connections alive, but a worker accepts connections while it is busy, so a burst of
      connections often lands on two or three of the four workers: the per-worker CPU shows it. A warm-up
      of 50 orders per worker, for a merchant of its own, is not counted. Prints orders/s, latency
      p50/p95/p99/max, and the CPU used over the run by the load generator, each gunicorn worker, the
      database's backends and the whole machine (other people's work included); then checks that the
      database holds exactly the orders posted and that each product's reservation equals the units
      ordered of it. Nothing is turned off: gunicorn's access log is off by default, the login rate
      limit does not apply to the API, the app logs nothing per request. ``--app module:app`` serves
      something else (a module on PYTHONPATH that patches the app, to try a change). ``--profile N``
      then posts N more orders in this process with the Flask test client under cProfile (CPU time)
      and prints the statements one order runs and where the CPU goes.

Little's law ties the API's two targets together: mean latency = requests in flight / throughput, so
300 orders/s with p95 <= 100 ms needs well under 30 in flight; beyond two or three per worker more
concurrency only queues.

The database is wiped (its public schema is made again) unless ``--reuse`` is given: then the desk
merchant's orders stay if there are ``--desk-orders`` of them (they age: the open ones drift past their
deadlines), and the API merchants' orders of earlier runs are deleted first.
"""
from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import math
import os
import platform
import pstats
import random
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, event, func, select, text  # noqa: E402

from bench._database import create_database_if_missing, fresh_postgres  # noqa: E402
from portal import create_app  # noqa: E402
from portal.accounts.models import Merchant  # noqa: E402
from portal.accounts.services import create_merchant, create_token, create_user  # noqa: E402
from portal.catalog.models import Product  # noqa: E402
from portal.db import get_session, utcnow  # noqa: E402
from portal.migrate import upgrade  # noqa: E402
from portal.orders.models import Order  # noqa: E402
from portal.orders.queries import OrderFilters, orders as orders_query  # noqa: E402
from portal.tenancy import Principal  # noqa: E402

DESK_SLUG = "desk"
DESK_EMAIL = "admin@desk.bench"
PASSWORD = "bench-password-1"
DESK_PRODUCTS = 1000
API_MERCHANTS = 20
API_PRODUCTS = 500  # per merchant
WARM_SLUG = "api-warm"
STOCK = 10_000_000

SURNAMES = ("Смирнов Иванов Кузнецов Соколов Попов Лебедев Козлов Новиков Морозов Петров Волков Соловьёв Васильев "
            "Зайцев Павлов Семёнов Голубев Виноградов Богданов Воробьёв Фёдоров Михайлов Беляев Тарасов Белов "
            "Комаров Орлов Киселёв Макаров Андреев").split()
NAMES = "Александр Мария Дмитрий Анна Сергей Елена Андрей Ольга Алексей Наталья Иван Татьяна Максим Ирина".split()
CITIES = [("Москва", "101"), ("Санкт-Петербург", "190"), ("Новосибирск", "630"), ("Екатеринбург", "620"),
          ("Казань", "420"), ("Нижний Новгород", "603"), ("Самара", "443"), ("Омск", "644"), ("Ростов-на-Дону", "344")]
STREETS = "Ленина Мира Гагарина Советская Садовая Лесная Школьная Центральная Молодёжная Набережная".split()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("both", "api", "desk"), default="both")
    parser.add_argument("--orders", type=int, default=10_000, help="orders posted through the API (per level)")
    parser.add_argument("--concurrency", default="16", help="requests in flight; a comma list runs each in turn")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn worker processes")
    parser.add_argument("--worker-class", choices=("sync", "gthread"), default="sync",
                        help="sync (the README's) closes each connection; gthread (one thread a worker) keeps them")
    parser.add_argument("--app", default="wsgi:app",
                        help="what gunicorn serves; another module (on PYTHONPATH) can try a change to the app")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="then post N orders in process under cProfile (statements and hot spots)")
    parser.add_argument("--desk-orders", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=50, help="timed requests per desk view")
    parser.add_argument("--explain", action="store_true", help="print EXPLAIN ANALYZE of each desk list query")
    parser.add_argument("--reuse", action="store_true",
                        help="keep the database (and the desk's orders when there are --desk-orders of them)")
    args = parser.parse_args()
    url = os.environ.get("PORTAL_BENCH_DATABASE_URL", "")
    if not url.startswith("postgresql"):
        raise SystemExit("set PORTAL_BENCH_DATABASE_URL to a PostgreSQL database, e.g. "
                         "postgresql+psycopg://postgres@127.0.0.1:5432/bench")
    if args.reuse:
        create_database_if_missing(url)
    else:
        fresh_postgres(url)
    with tempfile.TemporaryDirectory(prefix="portal-bench-") as folder:
        app = create_app({"DATABASE_URL": url, "SECRET_KEY": "bench", "STORAGE_URL": Path(folder).as_uri()})
        with app.app_context():
            upgrade(app)
            db = get_session()
            print(f"machine: {_machine()}; PostgreSQL {db.scalar(text('SHOW server_version'))}, "
                  f"shared_buffers {db.scalar(text('SHOW shared_buffers'))}, "
                  f"synchronous_commit {db.scalar(text('SHOW synchronous_commit'))}", flush=True)
            db.rollback()
            if args.part in ("both", "desk"):
                _desk_data(db, url, args.desk_orders)
                _desk(app, db, args)
            if args.part in ("both", "api"):
                _api(app, db, url, folder, args)
        app.extensions["portal.db"].dispose()


def _machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor() or "?")
    return f"{model}, {os.cpu_count()} cores, python {platform.python_version()}"


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def at(q: float) -> float:  # nearest rank
        return ordered[max(0, math.ceil(q * len(ordered)) - 1)]

    return {"p50": statistics.median(ordered), "p95": at(0.95), "p99": at(0.99), "max": ordered[-1]}


# -- the desk: 1,000,000 orders written with COPY, the list page timed in process ------------------------------


def _desk_data(db, url: str, count: int) -> None:
    merchant = db.scalar(select(Merchant).where(Merchant.slug == DESK_SLUG))
    if merchant is not None:
        have = db.scalar(select(func.count()).select_from(Order).where(Order.merchant_id == merchant.id))
        if have == count:
            print(f"desk: reusing the {count:,} orders already written", flush=True)
            return
        db.rollback()
        # Another size: start the order tables again (the API merchants' orders go too; their run deletes them anyway).
        db.execute(text("TRUNCATE order_requests, order_events, order_lines, orders RESTART IDENTITY"))
        db.execute(text("UPDATE products SET reserved = 0"))
        db.commit()
    else:
        merchant = create_merchant(db, slug=DESK_SLUG, name="Desk Bench")
        create_user(db, email=DESK_EMAIL, password=PASSWORD, role="merchant_admin", merchant=merchant)
        rng = random.Random(3)
        db.add_all(Product(merchant_id=merchant.id, sku=f"DESK-{n:05d}", title=f"Товар {n}",
                           price=Decimal(rng.randint(200, 20000)), stock=STOCK) for n in range(DESK_PRODUCTS))
        db.commit()
    started = time.perf_counter()
    products = db.execute(select(Product.id, Product.sku, Product.title, Product.price)
                          .where(Product.merchant_id == merchant.id).order_by(Product.id)).tuples().all()
    first_id = (db.scalar(select(func.max(Order.id))) or 0) + 1
    db.rollback()
    raw = db.connection().connection.driver_connection
    chunk = 100_000
    lines_written = 0
    for start in range(0, count, chunk):
        orders, lines = _desk_rows(merchant.id, products, first_id, start, min(start + chunk, count), count)
        with raw.cursor() as cursor:
            with cursor.copy(f"COPY orders ({', '.join(ORDER_COLUMNS)}) FROM STDIN") as copy:
                copy.write(orders)
            with cursor.copy(f"COPY order_lines ({', '.join(LINE_COLUMNS)}) FROM STDIN") as copy:
                copy.write(lines)
        raw.commit()
        lines_written += lines.count("\n")
    db.execute(text("SELECT setval(pg_get_serial_sequence('orders', 'id'), (SELECT max(id) FROM orders))"))
    db.commit()
    copied = time.perf_counter() - started
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:  # what autovacuum would do soon after: statistics and the visibility map
        conn.execute(text("VACUUM ANALYZE orders"))
        conn.execute(text("VACUUM ANALYZE order_lines"))
    engine.dispose()
    statuses = dict(db.execute(text("SELECT status, count(*) FROM orders WHERE merchant_id = :m GROUP BY status"),
                               {"m": merchant.id}).tuples().all())
    db.rollback()
    print(f"desk: {count:,} orders and {lines_written:,} lines written with COPY in {copied:.0f} s, "
          f"VACUUM ANALYZE {time.perf_counter() - started - copied:.0f} s; "
          + ", ".join(f"{status} {n:,}" for status, n in sorted(statuses.items(), key=lambda kv: -kv[1])), flush=True)


ORDER_COLUMNS = ("id", "merchant_id", "order_number", "request_hash", "status", "currency", "total", "units",
                 "created_at", "acceptance_deadline", "ship_by", "received_at", "updated_at", "accepted_at",
                 "shipped_at", "delivered_at", "closed_at", "closed_by", "reason", "buyer_name", "buyer_phone",
                 "country", "city", "postal_code", "line1", "carrier", "tracking_number")
LINE_COLUMNS = ("order_id", "product_id", "sku", "title", "quantity", "unit_price")
HOUR = 3600.0
DAY = 24 * HOUR


def _stamp(ts: float | None) -> str:
    return r"\N" if ts is None else datetime.fromtimestamp(ts, timezone.utc).isoformat(sep=" ")


def _desk_rows(merchant_id: int, products: list[tuple[int, str, str, Decimal]], first_id: int, start: int, stop: int,
               count: int) -> tuple[str, str]:
    """COPY text for orders ``start``..``stop`` of ``count``: two years of them, one a minute or so, the newest now.

    The status follows the order's age: under a day awaiting acceptance or accepted (a few refused), under two
    days mostly accepted or shipped, under a week shipped or delivered, older ones delivered but for some
    refusals, cancellations and returns.
    """
    rng = random.Random(start)
    now = time.time()
    step = 2 * 365 * DAY / count
    orders, lines = io.StringIO(), io.StringIO()
    for n in range(start, stop):
        order_id = first_id + n
        created = now - (count - n) * step + rng.uniform(-step / 3, step / 3)
        age = now - created
        roll = rng.random()
        if age < DAY:
            status = "awaiting_acceptance" if roll < 0.7 else "accepted" if roll < 0.96 else "refused"
        elif age < 2 * DAY:
            status = ("accepted" if roll < 0.3 else "shipped" if roll < 0.9 else "refused" if roll < 0.95
                      else "cancelled")
        elif age < 7 * DAY:
            status = ("shipped" if roll < 0.5 else "delivered" if roll < 0.9 else "cancelled" if roll < 0.95
                      else "refused")
        else:
            status = ("delivered" if roll < 0.9 else "returned" if roll < 0.93 else "cancelled" if roll < 0.96
                      else "refused")
        accepted = created + rng.uniform(0.2, 20) * HOUR if status in ("accepted", "shipped", "delivered", "returned",
                                                                       "cancelled") else None
        shipped = accepted + rng.uniform(2, 20) * HOUR if status in ("shipped", "delivered", "returned") else None
        delivered = min(now, shipped + rng.uniform(1, 5) * DAY) if status in ("delivered", "returned") else None
        closed = by = reason = None
        if status == "refused":
            closed, by, reason = created + rng.uniform(0.5, 23) * HOUR, "merchant", "Нет в наличии"
        elif status == "cancelled":
            closed, by, reason = accepted + rng.uniform(0.5, 10) * HOUR, "marketplace", "Покупатель отменил заказ"
        elif status == "returned":
            closed, by, reason = delivered + rng.uniform(1, 10) * DAY, "marketplace", "Возврат покупателем"
        if closed is not None:
            closed = min(closed, now)
        updated = max(t for t in (created, accepted, shipped, delivered, closed) if t is not None)
        units, total = 0, Decimal(0)
        for product_id, sku, title, price in rng.sample(products, 1 if rng.random() < 0.7 else 2):
            quantity = 1 if rng.random() < 0.8 else rng.randint(2, 3)
            units += quantity
            total += price * quantity
            lines.write(f"{order_id}\t{product_id}\t{sku}\t{title}\t{quantity}\t{price}\n")
        city, postal = rng.choice(CITIES)
        orders.write("\t".join((
            str(order_id), str(merchant_id), f"MP{n + 1:010d}", f"{n:064x}", status, "RUB", str(total), str(units),
            _stamp(created), _stamp(created + DAY), _stamp(created + 2 * DAY), _stamp(created), _stamp(updated),
            _stamp(accepted), _stamp(shipped), _stamp(delivered), _stamp(closed), by or r"\N", reason or r"\N",
            f"{rng.choice(SURNAMES)} {rng.choice(NAMES)}", f"+79{rng.randrange(10**9):09d}", "RU", city,
            f"{postal}{rng.randrange(1000):03d}", f"ул. {rng.choice(STREETS)}, д. {rng.randint(1, 120)}, "
                                                  f"кв. {rng.randint(1, 300)}",
            "cdek" if shipped else r"\N", f"CD{rng.randrange(10**10):010d}" if shipped else r"\N",
        )) + "\n")
    return orders.getvalue(), lines.getvalue()


def _desk(app, db, args: argparse.Namespace) -> None:
    merchant = db.scalar(select(Merchant).where(Merchant.slug == DESK_SLUG))
    total = db.scalar(select(func.count()).select_from(Order).where(Order.merchant_id == merchant.id))
    newest = db.scalar(select(Order.order_number).where(Order.merchant_id == merchant.id)
                       .order_by(Order.created_at.desc()).limit(1))
    middle = f"MP{total // 2:010d}"
    sku = f"DESK-{DESK_PRODUCTS // 2:05d}"
    db.rollback()
    views = [
        ("default (newest first)", {}),
        ("page 2", {"page": 2}),
        ("page 100", {"page": 100}),
        ("status accepted", {"status": "accepted"}),
        ("status delivered", {"status": "delivered"}),
        ("status open", {"status": "open"}),
        ("at risk", {"at_risk": 1}),
        ("created in one week", {"date_from": _days_ago(60), "date_to": _days_ago(54)}),
        (f"search order number (newest, {newest})", {"q": newest}),
        (f"search order number (a year old, {middle})", {"q": middle}),
        (f"search SKU ({sku})", {"q": sku}),
        ("search buyer part (Смирн)", {"q": "Смирн"}),
        ("search buyer part, rare (Тарасов Мария)", {"q": "Тарасов Мария"}),
        ("search matching nothing (Щукин)", {"q": "Щукин"}),
    ]
    sql = _sql_timer(app)
    client = app.test_client()
    _login(client, DESK_EMAIL, PASSWORD)
    print(f"desk: GET /orders as the merchant's admin, {total:,} orders; {args.requests} timed requests each, "
          "server time in process (ms)", flush=True)
    width = max(len(name) for name, _ in views)
    for name, params in views:
        client.get("/orders", query_string=params)  # untimed: caches, buffers
        times, sql_times, statements = [], [], []
        rows = 0
        for _ in range(args.requests):
            sql.update(ms=0.0, n=0)
            started = time.perf_counter()
            response = client.get("/orders", query_string=params)
            times.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200:
                raise SystemExit(f"GET /orders {params} answered {response.status_code}")
            sql_times.append(sql["ms"])
            statements.append(sql["n"])
            rows = response.get_data().count(b"<tr data-order=")
        stats = _percentiles(times)
        print(f"  {name:<{width}}  {rows:>2} rows  p50 {stats['p50']:7.1f}  p95 {stats['p95']:7.1f}  "
              f"max {stats['max']:7.1f}   SQL p50 {statistics.median(sql_times):7.1f} "
              f"({statistics.median(statements):.0f} statements)", flush=True)
    if args.explain:
        principal = Principal(role="merchant_admin", merchant_id=merchant.id)
        for name, params in views:
            _explain(db, name, params, principal)


def _days_ago(days: int) -> str:
    return (datetime.now(timezone.utc) - timedelta(days=days)).date().isoformat()


def _sql_timer(app) -> dict[str, float]:
    """Time spent in the database driver by this process's requests, summed into the returned dict."""
    if "bench.sql" in app.extensions:
        return app.extensions["bench.sql"]
    totals: dict[str, float] = app.extensions.setdefault("bench.sql", {"ms": 0.0, "n": 0})
    engine = app.extensions["portal.db"].engine

    @event.listens_for(engine, "before_cursor_execute")
    def _before(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        conn.info["bench_started"] = time.perf_counter()

    @event.listens_for(engine, "after_cursor_execute")
    def _after(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        totals["ms"] += (time.perf_counter() - conn.info.pop("bench_started")) * 1000
        totals["n"] += 1

    return totals


def _login(client, email: str, password: str) -> None:
    """The real sign-in form: its CSRF token from the page, then the POST."""
    page = client.get("/login").get_data(as_text=True)
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
    if match is None:
        raise SystemExit("no CSRF token on the sign-in page")
    response = client.post("/login", data={"csrf_token": match.group(1), "email": email, "password": password})
    if response.status_code != 302:
        raise SystemExit(f"sign-in failed: {response.status_code}")


def _explain(db, name: str, params: dict[str, Any], principal: Principal) -> None:
    filters = OrderFilters.from_args({k: str(v) for k, v in params.items()})
    page = int(params.get("page", 1))
    stmt = orders_query(filters, principal, db=db).limit(51).offset((page - 1) * 50)
    compiled = stmt.compile(dialect=db.get_bind().dialect, compile_kwargs={"render_postcompile": True})
    plan = db.connection().exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + compiled.string, compiled.params)
    print(f"\n-- {name}\n" + "\n".join(row[0] for row in plan), flush=True)
    db.rollback()


# -- the API: orders posted to gunicorn -----------------------------------------------------------------------


def _api(app, db, url: str, folder: str, args: argparse.Namespace) -> None:
    skus = _api_merchants(db)
    _, secret = create_token(db, name="bench", merchant=None)
    in_table = db.scalar(select(func.count()).select_from(Order))
    db.rollback()
    port = _free_port()
    env = {**os.environ, "PORTAL_ENV": "production", "PORTAL_SECRET_KEY": "bench-" + "x" * 40,
           "PORTAL_DATABASE_URL": url, "PORTAL_INSTANCE_DIR": folder, "PORTAL_STORAGE_URL": Path(folder).as_uri()}
    env.pop("PORTAL_BROKER_URL", None)
    command = [sys.executable, "-m", "gunicorn", "--workers", str(args.workers), "--worker-class", args.worker_class,
               *(("--threads", "1", "--keep-alive", "10") if args.worker_class == "gthread" else ()),
               "--bind", f"127.0.0.1:{port}", args.app]
    log = open(Path(folder) / "gunicorn.log", "w+")
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_for(port, server, log)
        workers = _children(server.pid)
        while len(workers) < args.workers:
            time.sleep(0.2)
            workers = _children(server.pid)
        print(f"api: gunicorn {' '.join(command[3:])}; {len(skus) - API_PRODUCTS:,} products of {API_MERCHANTS} "
              f"merchants; {in_table:,} orders in the table before", flush=True)
        stamp = time.strftime("%H%M%S")
        warm = _bodies(skus, WARM_SLUG, 50 * args.workers, f"W{stamp}", secret, port, seed=0)
        statuses = asyncio.run(_drive(port, [body for body, _ in warm], 8))[1]
        if set(statuses) != {201}:
            raise SystemExit(f"the warm-up's orders were not all created: {dict(statuses)}")
        ordered: Counter = Counter()  # units of each SKU posted by this run, all levels together
        for level, concurrency in enumerate(int(c) for c in args.concurrency.split(",")):
            _api_level(db, port, skus, secret, args.orders, concurrency, f"L{stamp}{level}", workers, ordered, level)
    finally:
        server.terminate()
        server.wait(30)
        log.close()
    if args.profile:
        _profile(app, db, skus, secret, args.profile)


def _api_merchants(db) -> dict[str, tuple[str, str]]:
    """The API merchants and their products (made once; with --reuse their orders of earlier runs go first).

    Returns sku -> (merchant slug, price); the warm-up merchant's products are among them.
    """
    slugs = [f"api-{m:02d}" for m in range(API_MERCHANTS)] + [WARM_SLUG]
    existing = db.scalars(select(Merchant).where(Merchant.slug.in_(slugs))).all()
    if existing:
        ids = [m.id for m in existing]
        db.execute(text("DELETE FROM orders WHERE merchant_id = ANY(:ids)"), {"ids": ids})
        db.execute(text("UPDATE products SET reserved = 0 WHERE merchant_id = ANY(:ids)"), {"ids": ids})
        db.commit()
    else:
        rng = random.Random(7)
        for slug in slugs:
            merchant = create_merchant(db, slug=slug, name=slug.title())
            db.add_all(Product(merchant_id=merchant.id, sku=f"{slug.upper()}-{n:04d}", title=f"Товар {slug} {n}",
                               price=Decimal(rng.randint(200, 20000)), stock=STOCK) for n in range(API_PRODUCTS))
            db.commit()
    rows = db.execute(select(Merchant.slug, Product.sku, Product.price)
                      .join(Product, Product.merchant_id == Merchant.id).where(Merchant.slug.in_(slugs))).tuples().all()
    db.rollback()
    return {sku: (slug, f"{price:.2f}") for slug, sku, price in rows}


def _bodies(skus: dict[str, tuple[str, str]], slug: str | None, count: int, tag: str, secret: str, port: int,
            seed: int) -> list[tuple[bytes, dict[str, int]]]:
    """``count`` complete HTTP requests (merchant ``slug``, or any API merchant), each with its units per SKU."""
    rng = random.Random(seed)
    by_merchant: dict[str, list[tuple[str, str]]] = {}
    for sku, (owner, price) in skus.items():
        by_merchant.setdefault(owner, []).append((sku, price))
    merchants = [s for s in sorted(by_merchant) if s != WARM_SLUG]
    now = utcnow()
    requests = []
    for n in range(count):
        merchant = slug or rng.choice(merchants)
        chosen = rng.sample(by_merchant[merchant], rng.choice((1, 1, 1, 2, 2, 3)))
        lines = [{"sku": sku, "quantity": rng.choice((1, 1, 1, 2, 3)), "unit_price": price} for sku, price in chosen]
        city, postal = rng.choice(CITIES)
        created = now - timedelta(seconds=rng.randint(0, 600))
        body = json.dumps({
            "order_number": f"{tag}-{n:07d}", "merchant": merchant, "lines": lines,
            "shipping_address": {"name": f"{rng.choice(SURNAMES)} {rng.choice(NAMES)}",
                                 "phone": f"+79{rng.randrange(10**9):09d}", "country": "RU", "city": city,
                                 "postal_code": f"{postal}{rng.randrange(1000):03d}",
                                 "line1": f"ул. {rng.choice(STREETS)}, д. {rng.randint(1, 120)}"},
            "created_at": created.isoformat(), "acceptance_deadline": (created + timedelta(hours=24)).isoformat(),
            "ship_by": (created + timedelta(hours=48)).isoformat(),
        }, ensure_ascii=False).encode()
        head = (f"POST /api/v1/orders HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {secret}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
        requests.append((head + body, {line["sku"]: line["quantity"] for line in lines}))
    return requests


async def _drive(port: int, requests: list[bytes], concurrency: int) -> tuple[list[float], Counter, float, list[bytes]]:
    """Send every request with ``concurrency`` connections; a connection the server closes is opened again.

    Returns the latencies (ms), the answers' statuses, the wall time and the first few unexpected answers.
    """
    pending = iter(requests)
    latencies: list[float] = []
    statuses: Counter = Counter()
    odd: list[bytes] = []

    async def connection() -> None:
        reader = writer = None
        for request in pending:
            started = time.perf_counter()
            if writer is None:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = int(re.search(rb"(?i)\r\ncontent-length: *(\d+)", head).group(1))
            body = await reader.readexactly(length)
            latencies.append((time.perf_counter() - started) * 1000)
            statuses[status] += 1
            if status != 201 and len(odd) < 3:
                odd.append(body[:500])
            if re.search(rb"(?i)\r\nconnection: *close", head):
                writer.close()
                reader = writer = None
        if writer is not None:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(concurrency)))
    return latencies, statuses, time.perf_counter() - started, odd


def _api_level(db, port: int, skus: dict[str, tuple[str, str]], secret: str, count: int, concurrency: int, tag: str,
               workers: list[int], ordered: Counter, level: int) -> None:
    """Post ``count`` orders with ``concurrency`` in flight, print the figures and check the database."""
    prepared = _bodies(skus, None, count, tag, secret, port, seed=level + 1)
    backends = [pid for (pid,) in db.execute(text(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"))]
    db.rollback()
    before = _cpu(workers, backends)
    latencies, statuses, wall, odd = asyncio.run(_drive(port, [request for request, _ in prepared], concurrency))
    after = _cpu(workers, backends)
    stats = _percentiles(latencies)
    use = {k: (after[k] - before[k]) / wall * 100 for k in before}
    print(f"api: {count:,} orders, {concurrency} in flight: {count / wall:,.0f} orders/s; "
          f"latency p50 {stats['p50']:.1f} ms, p95 {stats['p95']:.1f} ms, p99 {stats['p99']:.1f} ms, "
          f"max {stats['max']:.1f} ms; answers "
          + ", ".join(f"{s}: {n:,}" for s, n in sorted(statuses.items())), flush=True)
    print(f"     CPU (% of one core) over {wall:.1f} s: load generator {use['generator']:.0f}, gunicorn workers "
          f"{use['workers']:.0f} ({' + '.join(f'{use[k]:.0f}' for k in use if k.startswith('worker '))}), "
          f"database backends {use['backends']:.0f}, whole machine {use['machine']:.0f} of "
          f"{100 * (os.cpu_count() or 1)} (others' work included)", flush=True)
    for body in odd:
        print(f"     unexpected answer: {body.decode(errors='replace')}", flush=True)
    # The database holds exactly what was posted, and each product's reservation equals its units ordered.
    units = Counter()
    for _, lines in prepared:
        units.update(lines)
    ordered.update(units)
    stored = db.scalar(select(func.count()).select_from(Order).where(Order.order_number.like(f"{tag}-%")))
    reserved = dict(db.execute(select(Product.sku, Product.reserved).where(Product.sku.in_(
        [sku for sku, (slug, _) in skus.items() if slug != WARM_SLUG]))).tuples().all())
    db.rollback()
    wrong = sum(1 for sku, value in reserved.items() if value != ordered.get(sku, 0))
    print(f"     check: {stored:,} orders stored of {count:,} posted; {sum(reserved.values()):,} units reserved, "
          f"{sum(ordered.values()):,} ordered (this level {sum(units.values()):,}); products whose reservation "
          f"differs from the units ordered of them: {wrong}", flush=True)


def _cpu(workers: list[int], backends: list[int]) -> dict[str, float]:
    """CPU seconds so far: this process, the gunicorn workers, the database backends, the whole machine."""
    tick = os.sysconf("SC_CLK_TCK")

    def of(pids: list[int]) -> float:
        return sum(each(pid) for pid in pids)

    def each(pid: int) -> float:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / tick

    busy = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = busy[3] + busy[4]
    return {"generator": time.process_time(), "workers": of(workers), "backends": of(backends),
            "machine": (sum(busy[:8]) - idle) / tick, **{f"worker {pid}": each(pid) for pid in workers}}


def _children(parent: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1]) == parent:
                    pids.append(int(entry))
            except OSError:
                continue
    return pids


def _profile(app, db, skus: dict[str, tuple[str, str]], secret: str, count: int) -> None:
    """Post ``count`` orders in this process through the test client under cProfile: statements and hot spots."""
    prepared = _bodies(skus, None, count, f"P{time.strftime('%H%M%S')}", secret, 0, seed=99)
    bodies = [request.split(b"\r\n\r\n", 1)[1] for request, _ in prepared]
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
    client = app.test_client()
    sql = _sql_timer(app)
    client.post("/api/v1/orders", data=bodies[0], headers=headers)
    statements: list[str] = []
    engine = app.extensions["portal.db"].engine
    event.listen(engine, "before_cursor_execute", lambda conn, cur, statement, *rest: statements.append(statement))
    sql.update(ms=0.0, n=0)
    profiler = cProfile.Profile(time.process_time)  # CPU time: what 2 cores run out of; waits show as SQL time
    started, cpu = time.perf_counter(), time.process_time()
    profiler.enable()
    for body in bodies[1:]:
        response = client.post("/api/v1/orders", data=body, headers=headers)
        if response.status_code != 201:
            raise SystemExit(f"profile: {response.status_code} {response.get_data(as_text=True)[:300]}")
    profiler.disable()
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    done = len(bodies) - 1
    print(f"\nprofile: {done} orders in process (test client, one at a time, cProfile on): {wall / done * 1000:.1f} ms "
          f"each, of which {cpu / done * 1000:.1f} ms CPU of this process; {sql['ms'] / done:.1f} ms in the database "
          f"driver, {sql['n'] / done:.1f} statements (and a commit); statements per order:", flush=True)
    for statement, n in Counter(" ".join(s.split())[:150] for s in statements).most_common(15):
        print(f"  {n / done:4.1f}  {statement}")
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(40)
    print(out.getvalue())
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(25)
    print(out.getvalue(), flush=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(port: int, server: subprocess.Popen, log) -> None:
    import urllib.request

    for _ in range(300):
        if server.poll() is not None:
            log.seek(0)
            raise SystemExit(f"gunicorn stopped:\n{log.read()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("gunicorn did not answer /healthz")


if __name__ == "__main__":
    main()
