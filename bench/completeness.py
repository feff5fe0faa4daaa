"""Readiness recomputed in bulk: N products across merchants, after a change of requirements.

    PORTAL_BENCH_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/bench \\
        python bench/completeness.py --products 1000000

Loads the shipped taxonomy and demo requirements, writes N products (COPY on PostgreSQL) in confirmed
categories with Russian attribute names, some values missing or outside the allowed lists, then times
``requests.refresh`` (readiness of every product, then the fill-in requests): once when every product
changes, once when nothing does. The database is wiped (its public schema is recreated).
"""
from __future__ import annotations

import argparse
import io
import json
import os
import platform
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import text  # noqa: E402

from bench._database import fresh_postgres  # noqa: E402
from portal import create_app  # noqa: E402
from portal.accounts.services import create_merchant  # noqa: E402
from portal.category_mapping import requests, services  # noqa: E402
from portal.category_mapping.models import MerchantCategory  # noqa: E402
from portal.db import get_session, utcnow  # noqa: E402
from portal.migrate import upgrade  # noqa: E402

# Merchant paths and the categories they are confirmed onto (each with demo requirements).
CATEGORIES = {"Одежда > Футболки": 212, "Кухня > Чайники": 751, "Мужская одежда > Поло": 212,
              "Техника > Электрочайники": 751, "Разное": None}
ATTRIBUTES = {"Цвет": ["black", "white", "red", "чёрный", "black", ""], "Размер": ["s", "m", "l", "xl", "m"],
              "Пол": ["men", "women", "unisex", ""], "Длина рукава": ["short", "long", "short"],
              "Объём": ["1.7", "1.5", ""], "Мощность": ["2200", "1800"], "Материал": ["glass", "plastic", "сталь"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument("--merchants", type=int, default=20)
    args = parser.parse_args()
    url = os.environ.get("PORTAL_BENCH_DATABASE_URL")
    with tempfile.TemporaryDirectory(prefix="portal-bench-") as folder:
        url = url or f"sqlite:///{folder}/bench.sqlite3"
        if url.startswith("postgresql"):
            fresh_postgres(url)
        app = create_app({"DATABASE_URL": url, "SECRET_KEY": "bench", "STORAGE_URL": Path(folder).as_uri()})
        with app.app_context():
            upgrade(app)
            db = get_session()
            services.import_taxonomy(db, services.DEFAULT_TAXONOMY.read_text(encoding="utf-8"))
            services.load_requirements(db, services.DEMO_REQUIREMENTS.read_text(encoding="utf-8"))
            started = time.perf_counter()
            _products(db, args.products, args.merchants)
            print(f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}, "
                  f"database {db.get_bind().dialect.name}; {args.products:,} products of {args.merchants} merchants "
                  f"written in {time.perf_counter() - started:.1f} s")
            for label in ("every product changes", "nothing changes"):
                started = time.perf_counter()
                summary = requests.refresh(db, kind="rules")
                db.commit()
                elapsed = time.perf_counter() - started
                peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                states = dict(db.execute(text("SELECT readiness, count(*) FROM products GROUP BY readiness ORDER BY 1")).all())
                print(f"recompute ({label}): {elapsed:.1f} s, {args.products / elapsed:,.0f} products/s, "
                      f"{summary.changed:,} written ({summary.products:,} in mapped categories read one by one), "
                      f"states {states}, peak RSS {peak:,.0f} MB")


def _products(db, count: int, merchant_count: int) -> None:
    rng = random.Random(7)
    merchants = [create_merchant(db, slug=f"bench-{n}", name=f"Bench {n}") for n in range(merchant_count)]
    now = utcnow()
    for merchant in merchants:
        for path, category_id in CATEGORIES.items():
            db.add(MerchantCategory(merchant_id=merchant.id, path=path, status="confirmed" if category_id else "unmapped",
                                    category_id=category_id, products=0, updated_at=now))
    db.commit()
    columns = ("merchant_id", "sku", "title", "brand", "gtin", "description", "category", "price", "currency", "stock",
               "reserved", "images", "attributes", "status", "content_hash", "source_hash", "created_at", "updated_at")
    paths = list(CATEGORIES)
    rows = []
    for n in range(count):
        attributes = {name: rng.choice(values) for name, values in ATTRIBUTES.items()}
        attributes = {name: value for name, value in attributes.items() if value}
        rows.append({"merchant_id": merchants[n % merchant_count].id, "sku": f"SKU-{n:08d}", "title": f"Товар {n}",
                     "brand": rng.choice(["Acme", ""]), "gtin": "", "description": "", "category": rng.choice(paths),
                     "price": "990.00", "currency": "RUB", "stock": 5, "reserved": 0, "images": "[]",
                     "attributes": json.dumps(attributes, ensure_ascii=False), "status": "active", "content_hash": "",
                     "source_hash": "", "created_at": now, "updated_at": now})
    if db.get_bind().dialect.name == "postgresql":
        buffer = io.StringIO()
        for row in rows:
            buffer.write("\t".join(str(row[c]).replace("\\", "\\\\") for c in columns) + "\n")
        cursor = db.connection().connection.driver_connection.cursor()
        with cursor.copy(f"COPY products ({', '.join(columns)}) FROM STDIN") as copy:
            copy.write(buffer.getvalue())
    else:
        db.execute(text(f"INSERT INTO products ({', '.join(columns)}) VALUES ({', '.join(':' + c for c in columns)})"),
                   [{**row, "created_at": now.isoformat(), "updated_at": now.isoformat()} for row in rows])
    db.commit()


if __name__ == "__main__":
    main()
