"""The KPI benchmark's data: merchants, their catalogs and a million orders, written by PostgreSQL itself.

``load(url)`` wipes the database (``fresh_postgres``), migrates it, loads the default carriers and the
shipped taxonomy, then writes everything else with ``INSERT … SELECT`` over ``generate_series``: no row
goes through Python. Each merchant gets a quality profile (a "badness" between 0 and 1 drawn once, and
each rate placed in its range by it, with some noise of its own) so that the KPIs differ between merchants:

- late shipments (shipped after ship-by) 0-9.5 %; tracking numbers that fail the carrier's patterns 0-7.5 %;
- refusals by the merchant, automatic refusals (deadline passed), cancellations after acceptance (by the
  merchant or the marketplace), returns; acceptance and handling times;
- catalog: the share of ready / incomplete / unmapped products and how much of the required attributes the
  incomplete ones hold, fill-in requests (open, overdue, closed), catalog uploads and their rejected rows.

Every draw is a hash of (row number, draw, seed) (``hashint8extended``), not ``random()``: the same seed
gives the same data whatever the plan or the order of the rows. Which orders are late, have a bad tracking
number or end refused or cancelled follows a Weyl sequence over the merchant's orders in time instead, so
that a merchant's rate over any month is its profile's rate, not a small sample's. Times are relative to
the moment of the load (``now`` in the result), so the "last 30 days" of the KPIs always hold 30 days of
orders; orders get their ids in the order of their ``created_at``, as intake would give them. No users,
``order_events``, shipments or ``kpi_daily`` rows are written: the KPIs' live figures read none of them
(the rollup job writes ``kpi_daily``).

    PORTAL_BENCH_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/bench_kpi \\
        .venv/bin/python bench/_kpi_data.py [--orders 1000000] [--merchants 200]
"""
from __future__ import annotations

import json
import math
import os
import random
import re
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, text  # noqa: E402

from bench._database import fresh_postgres  # noqa: E402
from portal import create_app  # noqa: E402
from portal.category_mapping import services as mapping  # noqa: E402
from portal.db import get_session  # noqa: E402
from portal.migrate import upgrade  # noqa: E402
from portal.shipping.carriers import DEFAULT_CARRIERS, load_default_carriers  # noqa: E402

# The carriers orders ship with (own_courier, the fifth default, accepts nearly anything: left out).
CARRIERS = ("russian_post", "cdek", "boxberry", "dpd")
ATTRIBUTES = ("color", "size", "material", "gender", "power", "volume", "weight", "country_of_origin")
SURNAMES = ("Смирнов", "Иванов", "Кузнецов", "Соколов", "Попов", "Лебедев", "Козлов", "Новиков", "Морозов",
            "Петров", "Волков", "Соловьёв", "Васильев", "Зайцев", "Павлов", "Семёнов")
NAMES = ("Александр", "Мария", "Дмитрий", "Анна", "Сергей", "Елена", "Андрей", "Ольга", "Иван", "Татьяна")
CITIES = ("Москва", "Санкт-Петербург", "Новосибирск", "Екатеринбург", "Казань", "Нижний Новгород", "Самара",
          "Омск", "Ростов-на-Дону")
STREETS = ("Ленина", "Мира", "Гагарина", "Советская", "Садовая", "Лесная", "Школьная", "Центральная")

# One profile per merchant: (column, lowest, highest, curve). A merchant's badness b in [0, 1] (most merchants
# near 0) puts each rate at lowest + (highest - lowest) * clamp(b + noise) ** curve: good merchants low, bad
# ones high, not all in lock step. The curves put roughly the best 60 % of the merchants on the green side
# of the KPI block's default thresholds and a fifth or so on the red side.
RATES = (
    ("late_share", 0.0, 0.095, 1.3),            # shipped after ship_by, of the shipped
    ("invalid_share", 0.0, 0.075, 1.3),         # tracking number not in the carrier's format, of the shipped
    ("refuse_share", 0.002, 0.027, 2),          # refused by the merchant, of all orders
    ("expire_share", 0.0, 0.015, 2),            # refused automatically (deadline passed), of all orders
    ("cancel_share", 0.01, 0.04, 1),            # cancelled after acceptance, of all orders
    ("merchant_cancel_share", 0.05, 0.65, 2),   # of the cancellations, those by the merchant (else the marketplace)
    ("accept_hours", 0.5, 12.0, 1),             # mean hours from created to accepted (truncated at 23.5 h)
    ("handling_hours", 4.0, 40.0, 1.3),         # mean hours from accepted to shipped (truncated before ship_by)
    ("return_share", 0.01, 0.06, 1),            # returned, of the delivered
    ("not_ready_share", 0.03, 0.75, 1.3),       # products not ready (incomplete 70 %, unmapped 30 %)
    ("missing_share", 0.1, 0.7, 1.3),           # of an incomplete product's required attributes, the share missing
    ("overdue_share", 0.0, 0.8, 1.3),           # of the open fill-in requests, those past due
    ("reject_rate", 0.002, 0.12, 2),            # rejected rows of an upload
)


def load(url: str, *, merchants: int = 200, orders: int = 1_000_000, products_per_merchant: int = 200,
         days: int = 120, seed: int = 1) -> dict[str, Any]:
    """Wipe and migrate the database at ``url``, then write the KPI benchmark's data; counts and times.

    The result: ``now`` (the moment every time is relative to), ``seconds`` (the whole load), ``timings``
    (each step), the row counts of each table written, ``statuses`` (orders per status) and ``profiles``
    (each merchant's intended rates, by merchant id, for a benchmark to set the KPIs it computes against).
    """
    if not url.startswith("postgresql"):
        raise ValueError("the KPI data are written by PostgreSQL: give a postgresql+psycopg:// URL")
    started = step = time.perf_counter()
    timings: dict[str, float] = {}

    def lap(name: str) -> None:
        nonlocal step
        timings[name], step = round(time.perf_counter() - step, 2), time.perf_counter()

    fresh_postgres(url)
    with tempfile.TemporaryDirectory(prefix="portal-bench-") as folder:
        app = create_app({"DATABASE_URL": url, "SECRET_KEY": "bench", "STORAGE_URL": Path(folder).as_uri()})
        with app.app_context():
            upgrade(app)
            lap("migrate")
            db = get_session()
            load_default_carriers(db)
            mapping.import_taxonomy(db, mapping.DEFAULT_TAXONOMY.read_text(encoding="utf-8"))
            db.commit()
            categories = list(db.scalars(text(
                "SELECT id FROM taxonomy_categories WHERE depth >= 3 AND is_active ORDER BY id")))
            db.rollback()
            lap("carriers and taxonomy")
        app.extensions["portal.db"].dispose()

    now = datetime.now(timezone.utc).replace(microsecond=0)
    rng = random.Random(seed)
    profiles = _profiles(rng, merchants, orders)
    params = {"t0": now, "days": days, "ppm": products_per_merchant, "cats": categories,
              "carriers": list(CARRIERS), "attrs": list(ATTRIBUTES), "surnames": list(SURNAMES),
              "names": list(NAMES), "cities": list(CITIES), "streets": list(STREETS)}
    engine = create_engine(url)
    with engine.connect() as conn:
        # Temporary tables and functions live in this one session; temp_buffers only counts before their first use.
        for setting in ("synchronous_commit = off", "work_mem = '256MB'", "maintenance_work_mem = '1GB'",
                        "temp_buffers = '512MB'"):
            conn.execute(text(f"SET {setting}"))
        _functions(conn, seed)
        _profile_table(conn, profiles)
        conn.commit()
        _merchants(conn, params)
        _products(conn, params)
        conn.commit()
        lap("merchants and products")
        _fill_in_requests(conn, params)
        _uploads(conn, params)
        conn.commit()
        lap("fill-in requests and uploads")
        _stage_orders(conn, params)
        conn.commit()
        lap("orders drawn (temporary table)")
        restore = _set_aside(conn, ("orders", "order_lines"))
        conn.commit()
        _orders(conn, params)
        conn.commit()
        lap("orders inserted")
        _lines(conn)
        conn.commit()
        lap("order lines inserted")
        _restore(engine, restore)
        lap("indexes and foreign keys restored")
        _reservations(conn)
        for table in ("merchants", "products", "orders", "order_lines", "fill_in_requests", "catalog_uploads"):
            conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                              f"(SELECT coalesce(max(id), 0) + 1 FROM {table}), false)"))
        conn.execute(text("DROP TABLE kpi_stage"))
        conn.commit()
        lap("reservations and sequences")
    # VACUUM as well as ANALYZE: it sets the hint bits and the visibility map now, or the KPI's first timed
    # queries would (writing a million rows' pages) and index-only scans would not be chosen.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
    lap("VACUUM ANALYZE")
    with engine.connect() as conn:
        counts = {table: conn.scalar(text(f"SELECT count(*) FROM {table}")) for table in (
            "merchants", "products", "orders", "order_lines", "fill_in_requests", "catalog_uploads", "carriers",
            "taxonomy_categories")}
        statuses = dict(conn.execute(text(
            "SELECT status, count(*) FROM orders GROUP BY 1 ORDER BY 2 DESC")).tuples().all())
    engine.dispose()
    internal = ("merchant_id", "first_n", "main_carrier")
    intended = {p["merchant_id"]: {**{k: v for k, v in p.items() if k not in internal},
                                   "main_carrier": CARRIERS[p["main_carrier"]]} for p in profiles}
    return {"now": now, "seconds": round(time.perf_counter() - started, 1), "timings": timings, **counts,
            "statuses": statuses, "profiles": intended}


def _profiles(rng: random.Random, merchants: int, orders: int) -> list[dict[str, Any]]:
    """Each merchant's rates and its share of the orders (a log-normal weight: a few big, many small)."""
    weights = [math.exp(rng.gauss(0, 0.8)) for _ in range(merchants)]
    total = sum(weights)
    exact = [orders * w / total for w in weights]
    counts = [int(x) for x in exact]
    for i in sorted(range(merchants), key=lambda i: counts[i] - exact[i])[:orders - sum(counts)]:
        counts[i] += 1  # largest remainders: the counts add up to ``orders`` exactly
    profiles, first = [], 1
    for n in range(merchants):
        badness = rng.random() ** 1.8  # most merchants good, a tail of bad ones
        profile: dict[str, Any] = {"merchant_id": n + 1, "first_n": first, "n_orders": counts[n],
                                   "badness": round(badness, 3)}
        for name, low, high, curve in RATES:
            place = min(1.0, max(0.0, badness + rng.gauss(0, 0.12)))
            profile[name] = round(low + (high - low) * place ** curve, 4)
        profile["main_carrier"] = rng.randrange(len(CARRIERS))
        profile["requests"] = round(2 + 25 * badness * rng.uniform(0.5, 1.5))
        profile["uploads"] = rng.randint(3, 15)
        profiles.append(profile)
        first += counts[n]
    return profiles


def _functions(conn, seed: int) -> None:
    """Deterministic draws: u(n, k) uniform in [0, 1), weyl(…) evenly spread, digits(n, k, d) d decimal digits;
    pick(words, u) one of the words, category(…) one of a merchant's categories.

    Plain SQL functions, inlined by the planner: no call overhead per row.
    """
    conn.execute(text(f"""
        CREATE FUNCTION pg_temp.u(n bigint, k integer) RETURNS double precision LANGUAGE sql IMMUTABLE AS
        $$ SELECT (hashint8extended(n, k::bigint * 1000003 + {int(seed)}) & 9007199254740991)::double precision
                  / 9007199254740992.0 $$"""))
    # The merchant's n-th order (by created_at) in a Weyl sequence frac(n * alpha + offset): a share s of any run
    # of orders, a month's as well as the whole period's, is within an order or two of s (a hash would scatter).
    conn.execute(text("""
        CREATE FUNCTION pg_temp.weyl(n bigint, alpha double precision, merchant integer, k integer)
        RETURNS double precision LANGUAGE sql IMMUTABLE AS
        $$ SELECT (n * alpha + pg_temp.u(merchant, k)) - floor(n * alpha + pg_temp.u(merchant, k)) $$"""))
    # Hours with the given mean, cut at ``most`` (draw u by the inverse of the distribution): most orders are
    # handled soon, a long tail is not, none after the limit. A quarter of an hour at least.
    conn.execute(text("""
        CREATE FUNCTION pg_temp.truncated_exp(mean double precision, u double precision, most double precision)
        RETURNS double precision LANGUAGE sql IMMUTABLE AS
        $$ SELECT 0.25 - mean * ln(1 - u * (1 - exp(-(most - 0.25) / mean))) $$"""))
    conn.execute(text("""
        CREATE FUNCTION pg_temp.pick(words anyarray, u double precision) RETURNS anyelement LANGUAGE sql IMMUTABLE AS
        $$ SELECT words[1 + floor(cardinality(words) * u)::int] $$"""))
    # Each merchant's products and requests sit in five marketplace categories of its own (some shared).
    conn.execute(text("""
        CREATE FUNCTION pg_temp.category(ids integer[], merchant integer, n bigint) RETURNS integer
        LANGUAGE sql IMMUTABLE AS $$ SELECT ids[1 + (merchant * 7 + n % 5) % cardinality(ids)] $$"""))
    conn.execute(text(f"""
        CREATE FUNCTION pg_temp.digits(n bigint, k integer, d integer) RETURNS text LANGUAGE sql IMMUTABLE AS
        $$ SELECT lpad(((hashint8extended(n, k::bigint * 1000003 + {int(seed)}) & 9223372036854775807)
                        % (10 ^ d)::bigint)::text, d, '0') $$"""))


def _profile_table(conn, profiles: list[dict[str, Any]]) -> None:
    columns = ["merchant_id", "first_n", "n_orders", "badness", *(rate[0] for rate in RATES), "main_carrier",
               "requests", "uploads"]
    types = {"merchant_id": "integer", "first_n": "bigint", "n_orders": "bigint", "main_carrier": "integer",
             "requests": "integer", "uploads": "integer"}
    declared = ", ".join(f"{c} {types.get(c, 'double precision')}" for c in columns)
    conn.execute(text(f"CREATE TEMP TABLE kpi_profile ({declared})"))
    placeholders = ", ".join(f":{c}" for c in columns)
    conn.execute(text(f"INSERT INTO kpi_profile ({', '.join(columns)}) VALUES ({placeholders})"), profiles)
    conn.execute(text("ANALYZE kpi_profile"))


def _merchants(conn, params: dict[str, Any]) -> None:
    conn.execute(text("""
        INSERT INTO merchants (id, slug, name, is_active, created_at)
        SELECT merchant_id, 'kpi-' || lpad(merchant_id::text, 3, '0'),
               'KPI Merchant ' || lpad(merchant_id::text, 3, '0'), true,
               :t0 - (:days + 30 + 300 * pg_temp.u(merchant_id, 900)) * interval '1 day'
        FROM kpi_profile ORDER BY merchant_id"""), params)


def _products(conn, params: dict[str, Any]) -> None:
    """``ppm`` products a merchant (ids (merchant - 1) * ppm + 1 …): ready, incomplete or unmapped by its profile.

    Ready and incomplete products sit in one of five marketplace categories of their merchant and need 3-8
    attributes; incomplete ones lack some (``missing`` names them). Unmapped ones need nothing yet
    (required_count 0: their completeness is undefined, as ``Product.completeness`` has it).
    """
    conn.execute(text("""
        INSERT INTO products (id, merchant_id, sku, title, brand, gtin, description, category, price, currency, stock,
                              reserved, images, attributes, status, content_hash, source_hash, created_at, updated_at,
                              readiness, marketplace_category_id, required_count, filled_required, missing,
                              readiness_at)
        SELECT x.id, x.merchant_id, x.sku, 'Товар ' || x.merchant_id || '-' || x.k, 'Бренд ' || (x.k % 17), '', '',
               'Раздел ' || (x.k % 5), round((200 + 19800 * pg_temp.u(x.id, 101) ^ 2)::numeric, 0), 'RUB',
               0, 0, '[]'::json, '{}'::json, 'active', md5(x.sku), '',
               x.created, x.created + (:t0 - x.created) * pg_temp.u(x.id, 102), x.readiness,
               CASE WHEN x.readiness <> 'unmapped'
                    THEN pg_temp.category(CAST(:cats AS integer[]), x.merchant_id, x.k) END,
               x.required, x.filled,
               to_json(CASE WHEN x.readiness = 'incomplete' THEN (CAST(:attrs AS text[]))[x.filled + 1 : x.required]
                            ELSE ARRAY[]::text[] END),
               :t0 - 2 * interval '1 day' * pg_temp.u(x.id, 103)
        FROM (
            SELECT r.*,
                   CASE WHEN r.readiness = 'unmapped' THEN 0 ELSE r.need END AS required,
                   CASE WHEN r.readiness = 'unmapped' THEN 0 WHEN r.readiness = 'ready' THEN r.need
                        ELSE greatest(0, least(r.need - 1,
                                               floor(r.need * (1 - r.missing_share * 2 * pg_temp.u(r.id, 105)))::int))
                   END AS filled
            FROM (
                SELECT q.*,
                       :t0 - (:days + 200 * pg_temp.u(q.id, 100)) * interval '1 day' AS created,
                       3 + floor(6 * pg_temp.u(q.id, 104))::int AS need,
                       CASE WHEN pg_temp.u(q.id, 106) >= q.not_ready_share THEN 'ready'
                            WHEN pg_temp.u(q.id, 107) < 0.7 THEN 'incomplete'
                            ELSE 'unmapped' END AS readiness
                FROM (
                    SELECT (p.merchant_id - 1) * :ppm + k + 1 AS id, p.merchant_id, k, p.missing_share,
                           p.not_ready_share,
                           'M' || lpad(p.merchant_id::text, 3, '0') || '-' || lpad(k::text, 5, '0') AS sku
                    FROM kpi_profile p CROSS JOIN generate_series(0, :ppm - 1) AS k
                ) q
            ) r
        ) x
        ORDER BY x.id"""), params)


def _fill_in_requests(conn, params: dict[str, Any]) -> None:
    """A merchant's requests: 35 % closed, the open ones due 14 days after they were made, some of them overdue.

    Four in five are the portal's own (kind auto, for a marketplace category), the rest a category manager's
    (kind manual, about one product, with a text).
    """
    conn.execute(text("""
        INSERT INTO fill_in_requests (merchant_id, product_id, category_id, kind, attributes, text, status, due_at,
                                      created_at, closed_at)
        SELECT x.merchant_id,
               CASE WHEN x.manual THEN (x.merchant_id - 1) * :ppm + 1 + floor(:ppm * pg_temp.u(x.n, 203))::int END,
               CASE WHEN NOT x.manual THEN pg_temp.category(CAST(:cats AS integer[]), x.merchant_id, x.n) END,
               CASE WHEN x.manual THEN 'manual' ELSE 'auto' END,
               to_json((CAST(:attrs AS text[]))[1 : 1 + floor(3 * pg_temp.u(x.n, 204))::int]),
               CASE WHEN x.manual THEN 'Заполните, пожалуйста, характеристики товара.' ELSE '' END,
               CASE WHEN x.closed THEN 'closed' ELSE 'open' END,
               x.created + interval '14 days', x.created,
               CASE WHEN x.closed THEN x.created + (0.5 + 12 * pg_temp.u(x.n, 205)) * interval '1 day' END
        FROM (
            SELECT r.*,
                   CASE WHEN r.closed THEN :t0 - (13 + (:days - 13) * pg_temp.u(r.n, 206)) * interval '1 day'
                        WHEN r.overdue THEN :t0 - (14.1 + 45 * pg_temp.u(r.n, 207)) * interval '1 day'
                        ELSE :t0 - 13.9 * pg_temp.u(r.n, 208) * interval '1 day' END AS created
            FROM (
                SELECT p.merchant_id, p.merchant_id * 1000 + i AS n,
                       pg_temp.u(p.merchant_id * 1000 + i, 200) < 0.2 AS manual,
                       pg_temp.u(p.merchant_id * 1000 + i, 201) < 0.35 AS closed,
                       pg_temp.u(p.merchant_id * 1000 + i, 202) < p.overdue_share AS overdue
                FROM kpi_profile p CROSS JOIN generate_series(1, p.requests) AS i
            ) r
        ) x
        ORDER BY x.created"""), params)


def _uploads(conn, params: dict[str, Any]) -> None:
    """A merchant's applied uploads over the period; one in eight is preceded by a dry run (status previewed)."""
    conn.execute(text("""
        INSERT INTO catalog_uploads (merchant_id, source, filename, format, size_bytes, storage_key, columns, samples,
                                     mapping, deactivate_missing, status, dry_run, rows, created, updated, unchanged,
                                     rejected, warnings, deactivated, locale, created_at, finished_at)
        SELECT y.merchant_id, y.source, 'catalog-' || y.n || '.csv', 'csv', y.rows * 140,
               'uploads/' || y.merchant_id || '/' || y.n || '-' || y.status || '.csv',
               '[]'::json, '{}'::json, '{}'::json, false, y.status, y.status = 'previewed', y.rows, y.created,
               y.updated, y.rows - y.rejected - y.created - y.updated, y.rejected,
               floor(y.rows * 0.02 * pg_temp.u(y.n, 305))::int, 0, 'ru',
               y.finished - (5 + 300 * pg_temp.u(y.n, 306)) * interval '1 second', y.finished
        FROM (
            SELECT x.*, s.status,
                   CASE WHEN s.status = 'previewed'
                        THEN x.applied_at - (60 + 3000 * pg_temp.u(x.n, 307)) * interval '1 second'
                        ELSE x.applied_at END AS finished,
                   floor((x.rows - x.rejected - x.created) * 0.5 * pg_temp.u(x.n, 304))::int AS updated
            FROM (
                -- The first upload of a merchant creates most of its rows; later ones mostly update.
                SELECT q.*, floor((q.rows - q.rejected) * (CASE WHEN q.i = 1 THEN 0.9 ELSE 0.1 END)
                                  * pg_temp.u(q.n, 303))::int AS created
                FROM (
                    SELECT r.*, least(r.rows, round(r.rows * r.reject_rate
                                                    * (0.3 + 1.4 * pg_temp.u(r.n, 302)))::int) AS rejected
                    FROM (
                        SELECT p.merchant_id, p.reject_rate, i, p.merchant_id * 1000 + i AS n,
                               CASE WHEN pg_temp.u(p.merchant_id * 1000 + i, 308) < 0.8 THEN 'web' ELSE 'api' END
                                   AS source,
                               20 + floor(:ppm * 2 * pg_temp.u(p.merchant_id * 1000 + i, 301))::int AS rows,
                               :t0 - :days * pg_temp.u(p.merchant_id * 1000 + i, 300) * interval '1 day' AS applied_at
                        FROM kpi_profile p CROSS JOIN generate_series(1, p.uploads) AS i
                    ) r
                ) q
            ) x
            CROSS JOIN LATERAL (VALUES ('applied'), ('previewed')) AS s (status)
            WHERE s.status = 'applied' OR pg_temp.u(x.n, 309) < 0.125
        ) y
        ORDER BY y.finished"""), params)


def _stage_orders(conn, params: dict[str, Any]) -> None:
    """Draw every order into a temporary table: its planned times, then its status as of ``t0``.

    Each order is one of: refused by the merchant (before the deadline), refused automatically (a few minutes
    after it, as the expiry job runs), cancelled after acceptance, or shipped (then delivered, and maybe
    returned). What is planned after ``t0`` has not happened yet: the order stays in the state before.
    Accepted within 24 h (a truncated exponential around the merchant's mean); ship_by is created + 72 h;
    a late order ships 0.5-60 h after ship_by, the others between acceptance and ship_by; delivered 1-8
    days after shipping, returned 1-14 days after delivery. Ids follow ``created_at``.
    """
    conn.execute(text("""
        CREATE TEMP TABLE kpi_stage AS
        SELECT row_number() OVER (ORDER BY d.created_at, d.g) AS id, d.*,
               CASE d.kind
                   WHEN 'refuse' THEN CASE WHEN d.refuse_at <= :t0 THEN 'refused' ELSE 'awaiting_acceptance' END
                   WHEN 'expire' THEN CASE WHEN d.expire_at <= :t0 THEN 'refused' ELSE 'awaiting_acceptance' END
                   WHEN 'cancel' THEN CASE WHEN d.cancel_at <= :t0 THEN 'cancelled'
                                           WHEN d.accept_at <= :t0 THEN 'accepted' ELSE 'awaiting_acceptance' END
                   ELSE CASE WHEN d.returns AND d.return_at <= :t0 THEN 'returned'
                             WHEN d.deliver_at <= :t0 THEN 'delivered'
                             WHEN d.ship_at <= :t0 THEN 'shipped'
                             WHEN d.accept_at <= :t0 THEN 'accepted' ELSE 'awaiting_acceptance' END
               END AS status
        FROM (
            SELECT s.*,
                   s.accept_at + (0.5 + 40 * pg_temp.u(s.g, 14)) * interval '1 hour' AS cancel_at,
                   s.ship_at + (1 + 7 * pg_temp.u(s.g, 23)) * interval '1 day' AS deliver_at,
                   s.ship_at + (2 + 7 * pg_temp.u(s.g, 23) + 13 * pg_temp.u(s.g, 31)) * interval '1 day' AS return_at
            FROM (
                SELECT t.*,
                       CASE WHEN t.late THEN t.ship_by + (0.5 + 59.5 * pg_temp.u(t.g, 21) ^ 2) * interval '1 hour'
                            ELSE t.accept_at + interval '1 hour' * pg_temp.truncated_exp(
                                t.handling_hours, pg_temp.u(t.g, 22),
                                extract(epoch FROM t.ship_by - t.accept_at) / 3600 - 0.75)
                       END AS ship_at
                FROM (
                    SELECT c.*,
                           c.created_at + interval '72 hours' AS ship_by,
                           c.created_at + pg_temp.truncated_exp(c.accept_hours, pg_temp.u(c.g, 11), 23.5)
                                          * interval '1 hour' AS accept_at,
                           c.created_at + (0.2 + 22 * pg_temp.u(c.g, 12)) * interval '1 hour' AS refuse_at,
                           c.created_at + interval '24 hours' + 5 * pg_temp.u(c.g, 13) * interval '1 minute'
                               AS expire_at,
                           pg_temp.weyl(c.r, 0.4142135623730950, c.merchant_id, 20) < c.late_share AS late,
                           pg_temp.u(c.g, 30) < c.return_share AS returns,
                           pg_temp.weyl(c.r, 0.7320508075688772, c.merchant_id, 40) < c.invalid_share AS invalid
                    FROM (
                        SELECT b.*,
                               CASE WHEN b.w < b.refuse_share THEN 'refuse'
                                    WHEN b.w < b.refuse_share + b.expire_share THEN 'expire'
                                    WHEN b.w < b.refuse_share + b.expire_share + b.cancel_share THEN 'cancel'
                                    ELSE 'ship' END AS kind
                        FROM (
                            SELECT a.*, pg_temp.weyl(a.r, 0.6180339887498949, a.merchant_id, 2) AS w
                            FROM (
                                SELECT g, p.merchant_id, p.accept_hours, p.handling_hours, p.late_share, p.return_share,
                                       p.invalid_share, p.merchant_cancel_share, p.main_carrier, p.refuse_share,
                                       p.expire_share, p.cancel_share,
                                       :t0 - :days * pg_temp.u(g, 1) * interval '1 day' AS created_at,
                                       row_number() OVER (PARTITION BY p.merchant_id
                                                          ORDER BY pg_temp.u(g, 1) DESC, g) AS r,
                                       pr.id AS product_id, pr.sku, pr.title, pr.price,
                                       CASE WHEN pg_temp.u(g, 4) < 0.78 THEN 1 WHEN pg_temp.u(g, 4) < 0.94 THEN 2
                                            ELSE 3 + floor(3 * pg_temp.u(g, 5))::int END AS quantity
                                FROM kpi_profile p
                                CROSS JOIN LATERAL generate_series(p.first_n, p.first_n + p.n_orders - 1) AS g
                                JOIN products pr
                                  ON pr.id = (p.merchant_id - 1) * :ppm + 1 + floor(:ppm * pg_temp.u(g, 3) ^ 2.5)::int
                            ) a
                        ) b
                    ) c
                ) t
            ) s
        ) d"""), params)


def _orders(conn, params: dict[str, Any]) -> None:
    """The staged orders into ``orders`` (in id order) and one line each into ``order_lines``.

    Shipped orders carry a carrier (the merchant's main one six times in ten, else any of the four) and a
    tracking number in one of its formats, or, for the merchant's invalid share, in none: 7 digits,
    ``TRK-`` and 6 digits, or another carrier's format that this one does not accept.
    """
    conn.execute(text("""
        INSERT INTO orders (id, merchant_id, order_number, request_hash, status, currency, total, units, created_at,
                            acceptance_deadline, ship_by, received_at, updated_at, accepted_at, shipped_at,
                            delivered_at, closed_at, closed_by, reason, carrier, tracking_number, buyer_name,
                            buyer_phone, country, city, postal_code, line1)
        SELECT o.id, o.merchant_id, 'KPI' || lpad(o.id::text, 9, '0'), md5(o.g::text) || md5('kpi' || o.g), o.status,
               'RUB', o.price * o.quantity, o.quantity, o.created_at, o.created_at + interval '24 hours', o.ship_by,
               o.created_at, greatest(o.created_at, o.accepted_at, o.shipped_at, o.delivered_at, o.closed_at),
               o.accepted_at, o.shipped_at, o.delivered_at, o.closed_at, o.closed_by,
               CASE o.closed_by
                   WHEN 'system' THEN 'Заказ не подтверждён вовремя'
                   WHEN 'merchant' THEN pg_temp.pick(
                       ARRAY['Нет в наличии', 'Товар снят с продажи', 'Не успеваем собрать'], pg_temp.u(o.g, 51))
                   WHEN 'marketplace' THEN CASE o.status WHEN 'returned' THEN 'Возврат покупателем'
                                                         ELSE 'Покупатель отменил заказ' END
               END,
               CASE WHEN o.shipped_at IS NOT NULL THEN (CAST(:carriers AS text[]))[o.ci + 1] END,
               CASE WHEN o.shipped_at IS NULL THEN NULL
                    WHEN NOT o.invalid THEN CASE o.ci
                        WHEN 0 THEN CASE WHEN pg_temp.u(o.g, 62) < 0.85 THEN pg_temp.digits(o.g, 63, 14)
                                         ELSE pg_temp.pick(ARRAY['RA', 'RB', 'CP', 'EA', 'LA'], pg_temp.u(o.g, 64))
                                              || pg_temp.digits(o.g, 63, 9) || 'RU' END
                        WHEN 1 THEN pg_temp.digits(o.g, 63, 10)
                        WHEN 2 THEN CASE WHEN pg_temp.u(o.g, 62) < 0.5 THEN pg_temp.digits(o.g, 63, 12)
                                         ELSE pg_temp.pick(ARRAY['BB', 'BXB', 'TBRU'], pg_temp.u(o.g, 64))
                                              || pg_temp.digits(o.g, 63, 10) END
                        ELSE CASE WHEN pg_temp.u(o.g, 62) < 0.6 THEN 'RU' || pg_temp.digits(o.g, 63, 9)
                                  ELSE pg_temp.digits(o.g, 63, 14) END END
                    WHEN pg_temp.u(o.g, 65) < 0.4 THEN pg_temp.digits(o.g, 63, 7)
                    WHEN pg_temp.u(o.g, 65) < 0.7 THEN 'TRK-' || pg_temp.digits(o.g, 63, 6)
                    ELSE CASE o.ci WHEN 0 THEN pg_temp.digits(o.g, 63, 10)
                                   WHEN 1 THEN 'RU' || pg_temp.digits(o.g, 63, 9)
                                   WHEN 2 THEN pg_temp.digits(o.g, 63, 14)
                                   ELSE pg_temp.digits(o.g, 63, 10) END
               END,
               pg_temp.pick(CAST(:surnames AS text[]), pg_temp.u(o.g, 70)) || ' '
                   || pg_temp.pick(CAST(:names AS text[]), pg_temp.u(o.g, 71)),
               '+79' || pg_temp.digits(o.g, 72, 9), 'RU', pg_temp.pick(CAST(:cities AS text[]), pg_temp.u(o.g, 73)),
               pg_temp.digits(o.g, 74, 6),
               'ул. ' || pg_temp.pick(CAST(:streets AS text[]), pg_temp.u(o.g, 75))
                   || ', д. ' || (1 + floor(120 * pg_temp.u(o.g, 76))::int)
        FROM (
            SELECT st.id, st.g, st.merchant_id, st.status, st.price, st.quantity, st.created_at, st.ship_by, st.invalid,
                   CASE WHEN pg_temp.u(st.g, 60) < 0.6 THEN st.main_carrier
                        ELSE floor(4 * pg_temp.u(st.g, 61))::int END AS ci,
                   CASE WHEN st.status IN ('accepted', 'shipped', 'delivered', 'returned', 'cancelled')
                        THEN st.accept_at END AS accepted_at,
                   CASE WHEN st.status IN ('shipped', 'delivered', 'returned') THEN st.ship_at END AS shipped_at,
                   CASE WHEN st.status IN ('delivered', 'returned') THEN st.deliver_at END AS delivered_at,
                   CASE st.status WHEN 'refused' THEN CASE st.kind WHEN 'refuse' THEN st.refuse_at ELSE st.expire_at END
                                  WHEN 'cancelled' THEN st.cancel_at WHEN 'returned' THEN st.return_at END AS closed_at,
                   CASE st.status WHEN 'refused' THEN CASE st.kind WHEN 'refuse' THEN 'merchant' ELSE 'system' END
                                  WHEN 'cancelled' THEN CASE WHEN pg_temp.u(st.g, 50) < st.merchant_cancel_share
                                                             THEN 'merchant' ELSE 'marketplace' END
                                  WHEN 'returned' THEN 'marketplace' END AS closed_by
            FROM kpi_stage st
        ) o
        ORDER BY o.id"""), params)


def _lines(conn) -> None:
    conn.execute(text("""
        INSERT INTO order_lines (order_id, product_id, sku, title, quantity, unit_price)
        SELECT id, product_id, sku, title, quantity, price FROM kpi_stage ORDER BY id"""))


def _set_aside(conn, tables: tuple[str, ...]) -> list[str]:
    """Drop the tables' plain indexes and foreign keys; the statements that make them again, for after the load.

    Building a B-tree or a trigram GIN index once over a million rows is several times quicker than growing
    it row by row, and one validating join per foreign key quicker than a trigger's look-up for every row.
    The primary keys and unique constraints stay.
    """
    indexes = conn.execute(text("""
        SELECT i.indexname, i.indexdef FROM pg_indexes i
        WHERE i.schemaname = 'public' AND i.tablename = ANY(:tables)
          AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)
        ORDER BY i.tablename, i.indexname"""), {"tables": list(tables)}).tuples().all()
    foreign_keys = conn.execute(text("""
        SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid) FROM pg_constraint c
        WHERE c.contype = 'f' AND c.conrelid::regclass::text = ANY(:tables)
        ORDER BY 1, 2"""), {"tables": list(tables)}).tuples().all()
    for table, name, _ in foreign_keys:
        conn.execute(text(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"'))
    for name, _ in indexes:
        conn.execute(text(f'DROP INDEX "{name}"'))
    return ([definition for _, definition in indexes]
            + [f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}' 
               for table, name, definition in foreign_keys])


def _restore(engine, statements: list[str], workers: int = 2) -> None:
    """Run ``_set_aside``'s statements on ``workers`` connections at once, the trigram indexes (the longest) first.

    Each statement is its own transaction: one that must wait for another's lock (a foreign key for an index
    build on its table) waits for that statement only, never for a whole batch.
    """
    pending = sorted(statements, key=lambda statement: "USING gin" not in statement)
    lock = threading.Lock()
    failures: list[BaseException] = []

    def work() -> None:
        try:
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("SET maintenance_work_mem = '1GB'"))
                while True:
                    with lock:
                        if not pending or failures:
                            return
                        statement = pending.pop(0)
                    conn.execute(text(statement))
        except BaseException as error:  # noqa: BLE001 - raised again in the caller's thread
            failures.append(error)

    threads = [threading.Thread(target=work) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]


def _reservations(conn) -> None:
    """Open orders hold their units: ``reserved`` as intake keeps it, stock on hand above it."""
    conn.execute(text("""
        UPDATE products p SET reserved = coalesce(r.units, 0),
                              stock = coalesce(r.units, 0) + 20 + floor(480 * pg_temp.u(p.id, 110))::int
        FROM products q LEFT JOIN (
            SELECT l.product_id, sum(l.quantity) AS units FROM order_lines l JOIN orders o ON o.id = l.order_id
            WHERE o.status IN ('awaiting_acceptance', 'accepted') GROUP BY l.product_id
        ) r ON r.product_id = q.id
        WHERE q.id = p.id"""))


def sanity(url: str) -> dict[str, Any]:
    """What was written, per merchant, as (lowest, highest) over the merchants: a check of the generator.

    Late and invalid shares are of the shipped orders (all, and those shipped in the last 30 days); the
    tracking check is PostgreSQL's regular expressions on the carriers' patterns, and ``python_check``
    counts the sampled numbers on which the portal's own check (``re.fullmatch``) disagrees with it.
    """
    engine = create_engine(url)
    with engine.connect() as conn:
        row = conn.execute(text("""
            WITH shipped AS (
                SELECT o.merchant_id, o.shipped_at > o.ship_by AS late,
                       o.shipped_at >= now() - interval '30 days' AS recent,
                       EXISTS (SELECT 1 FROM carriers c, json_array_elements_text(c.tracking_patterns) AS pattern
                               WHERE c.code = o.carrier AND o.tracking_number ~ ('^(?:' || pattern || ')$')) AS valid
                FROM orders o WHERE o.shipped_at IS NOT NULL
            ), per_merchant AS (
                SELECT merchant_id, avg(late::int) AS late, avg(late::int) FILTER (WHERE recent) AS late_30d,
                       1 - avg(valid::int) AS invalid, 1 - avg(valid::int) FILTER (WHERE recent) AS invalid_30d
                FROM shipped GROUP BY merchant_id
            ), received AS (
                SELECT merchant_id, count(*) AS orders,
                       avg((status IN ('refused', 'cancelled') AND closed_by IN ('merchant', 'system'))::int)
                           FILTER (WHERE created_at >= now() - interval '7 days') AS cancelled_7d
                FROM orders GROUP BY merchant_id
            ), catalog AS (
                SELECT m.id AS merchant_id,
                       (SELECT avg((readiness = 'ready')::int) FROM products WHERE merchant_id = m.id) AS ready,
                       (SELECT sum(filled_required)::numeric / nullif(sum(required_count), 0) FROM products
                        WHERE merchant_id = m.id) AS completeness,
                       (SELECT count(*) FROM fill_in_requests WHERE merchant_id = m.id AND status = 'open') AS open,
                       (SELECT count(*) FROM fill_in_requests
                        WHERE merchant_id = m.id AND status = 'open' AND due_at < now()) AS overdue,
                       (SELECT sum(rejected)::numeric / nullif(sum(rows), 0) FROM catalog_uploads
                        WHERE merchant_id = m.id AND status = 'applied') AS rejected
                FROM merchants m
            )
            SELECT min(r.orders), max(r.orders), min(p.late), max(p.late), min(p.late_30d), max(p.late_30d),
                   min(p.invalid), max(p.invalid), min(p.invalid_30d), max(p.invalid_30d),
                   min(r.cancelled_7d), max(r.cancelled_7d), min(c.ready), max(c.ready),
                   min(c.completeness), max(c.completeness), min(c.open), max(c.open), min(c.overdue), max(c.overdue),
                   min(c.rejected), max(c.rejected)
            FROM per_merchant p JOIN received r USING (merchant_id) JOIN catalog c USING (merchant_id)""")).one()
        keys = ("orders", "late_share", "late_share_30d", "invalid_tracking_share", "invalid_tracking_share_30d",
                "merchant_cancellation_7d", "share_ready", "catalog_completeness", "open_requests",
                "overdue_requests", "upload_rejection")
        result: dict[str, Any] = {key: (_number(row[2 * i]), _number(row[2 * i + 1])) for i, key in enumerate(keys)}
        patterns = {carrier["code"]: carrier["tracking_patterns"] for carrier in DEFAULT_CARRIERS}
        sample = conn.execute(text("""
            SELECT o.carrier, o.tracking_number,
                   EXISTS (SELECT 1 FROM carriers c, json_array_elements_text(c.tracking_patterns) AS pattern
                           WHERE c.code = o.carrier AND o.tracking_number ~ ('^(?:' || pattern || ')$'))
            FROM orders o TABLESAMPLE SYSTEM (5) WHERE o.shipped_at IS NOT NULL""")).tuples().all()
        result["python_check"] = {"sampled": len(sample), "disagreements": sum(
            1 for carrier, number, valid in sample
            if any(re.fullmatch(pattern, number) for pattern in patterns[carrier]) != valid)}
    engine.dispose()
    return result


def _number(value: Any) -> Any:
    return round(float(value), 4) if isinstance(value, (float, Decimal)) else value


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--merchants", type=int, default=200)
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--products-per-merchant", type=int, default=200)
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    database = os.environ.get("PORTAL_BENCH_DATABASE_URL", "")
    if not database.startswith("postgresql"):
        raise SystemExit("set PORTAL_BENCH_DATABASE_URL to a PostgreSQL database, e.g. "
                         "postgresql+psycopg://postgres@127.0.0.1:5432/bench_kpi")
    summary = load(database, merchants=args.merchants, orders=args.orders,
                   products_per_merchant=args.products_per_merchant, days=args.days, seed=args.seed)
    summary.pop("profiles")
    print(json.dumps(summary, default=str, ensure_ascii=False, indent=1))
    print(json.dumps(sanity(database), indent=1))
