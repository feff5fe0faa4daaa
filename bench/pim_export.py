"""The PIM export: N ready products exported in full to a local moto S3 server, then a delta of M changes.

    PORTAL_BENCH_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/bench \\
        python bench/pim_export.py --products 1000000 --changes 10000

Writes N ready products (COPY on PostgreSQL) across merchants and marketplace categories, with Russian
attribute names, images and descriptions; starts moto's S3 server in its own process; runs
``portal pim export --full`` in a child process and reports its wall time, the run's own time and peak
memory (the export process, and it with its worker processes, sampled from /proc); then changes M products (stock, price, a tenth of them no longer ready) and
times ``portal pim export --delta`` the same way. The database is wiped (its public schema is recreated).
"""
from __future__ import annotations

import argparse
import io
import json
import os
import platform
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import boto3  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from bench._database import fresh_postgres  # noqa: E402
from portal import create_app  # noqa: E402
from portal.accounts.services import create_merchant  # noqa: E402
from portal.category_mapping import services  # noqa: E402
from portal.db import get_session, utcnow  # noqa: E402
from portal.migrate import upgrade  # noqa: E402

CATEGORIES = [212, 751, 267, 4745, 187]
ATTRIBUTES = {"Цвет": ["black", "white", "red", "чёрный"], "Размер": ["s", "m", "l", "xl"], "Пол": ["men", "women"],
              "Объём": ["1.7", "1.5"], "Мощность": ["2200", "1800"], "Материал": ["хлопок", "сталь", "пластик"]}
WORDS = "лёгкий прочный новинка хит продаж для дома подарок качественный удобный современный классический".split()
BUCKET = "pim-bench"
AWS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument("--merchants", type=int, default=50)
    parser.add_argument("--changes", type=int, default=10_000)
    parser.add_argument("--reuse", action="store_true",
                        help="Keep the products a previous run of this script wrote (same --products), skip writing them.")
    args = parser.parse_args()
    url = os.environ.get("PORTAL_BENCH_DATABASE_URL")
    with tempfile.TemporaryDirectory(prefix="portal-bench-") as folder:
        url = url or f"sqlite:///{folder}/bench.sqlite3"
        if args.reuse:
            print(f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}; "
                  "reusing the products already written", flush=True)
        elif url.startswith("postgresql"):
            fresh_postgres(url)
        app = create_app({"DATABASE_URL": url, "SECRET_KEY": "bench", "STORAGE_URL": Path(folder).as_uri()})
        with app.app_context():
            db = get_session()
            if args.reuse:  # the previous runs' history would make the first export a delta
                db.execute(text("DELETE FROM pim_export_runs"))
                db.commit()
            else:
                upgrade(app)
                services.import_taxonomy(db, services.DEFAULT_TAXONOMY.read_text(encoding="utf-8"))
                services.load_requirements(db, services.DEMO_REQUIREMENTS.read_text(encoding="utf-8"))
                db.commit()
                started = time.perf_counter()
                _products(db, args.products, args.merchants)
                print(f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}, "
                      f"database {db.get_bind().dialect.name}; {args.products:,} ready products of {args.merchants} "
                      f"merchants written in {time.perf_counter() - started:.1f} s", flush=True)
        app.extensions["portal.db"].dispose()

        port = _free_port()
        moto = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, **AWS})
        try:
            endpoint = f"http://127.0.0.1:{port}"
            _wait_for(endpoint)
            client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="bench", aws_secret_access_key="bench",
                                  region_name="us-east-1")
            client.create_bucket(Bucket=BUCKET)
            env = {**os.environ, **AWS, "PORTAL_DATABASE_URL": url, "PORTAL_SECRET_KEY": "bench",
                   "PORTAL_INSTANCE_DIR": folder, "PORTAL_PIM_EXPORT_URL": f"s3://{BUCKET}/pim",
                   "PORTAL_S3_ENDPOINT_URL": endpoint}
            full = _export(env, "--full")
            print(f"full export: {full['records']:,} records in {full['files']} files, {full['bytes'] / 2**20:,.0f} MiB "
                  f"gzip'd; {full['wall']:.1f} s wall (run itself {full['run']:.1f} s), "
                  f"{full['records'] / full['run']:,.0f} records/s, peak RSS {full['rss']:,.0f} MB "
                  f"({full['tree_rss']:,.0f} MB with its worker processes)", flush=True)
            _change(url, args.changes)
            delta = _export(env, "--delta")
            print(f"delta after {args.changes:,} changes: {delta['records']:,} records, {delta['tombstones']:,} "
                  f"tombstones; {delta['wall']:.1f} s wall (run itself {delta['run']:.1f} s), "
                  f"peak RSS {delta['rss']:,.0f} MB ({delta['tree_rss']:,.0f} MB with workers)", flush=True)
            client.close()
        finally:
            moto.terminate()
            moto.wait(10)


def _products(db, count: int, merchant_count: int) -> None:
    rng = random.Random(11)
    merchants = [create_merchant(db, slug=f"bench-{n}", name=f"Bench {n}") for n in range(merchant_count)]
    now = utcnow()
    columns = ("merchant_id", "sku", "title", "brand", "gtin", "description", "category", "price", "currency", "stock",
               "reserved", "images", "attributes", "status", "content_hash", "source_hash", "created_at", "updated_at",
               "readiness", "marketplace_category_id", "required_count", "filled_required", "missing", "readiness_at")
    postgres = db.get_bind().dialect.name == "postgresql"
    chunk = 100_000
    for start in range(0, count, chunk):
        rows = []
        for n in range(start, min(start + chunk, count)):
            attributes = {name: rng.choice(values) for name, values in ATTRIBUTES.items()}
            description = " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 30)))
            merchant = merchants[n % merchant_count]
            rows.append({"merchant_id": merchant.id, "sku": f"SKU-{n:08d}", "title": f"Товар {n} {rng.choice(WORDS)}",
                         "brand": rng.choice(["Acme", "Polaris", "Bork", ""]), "gtin": f"46{rng.randrange(10**10):010d}0",
                         "description": description, "category": "Разное", "price": f"{rng.randint(100, 99999)}.00",
                         "currency": "RUB", "stock": rng.randint(0, 50), "reserved": 0,
                         "images": json.dumps([f"https://img.example/{merchant.slug}/{n}-{i}.jpg" for i in range(2)]),
                         "attributes": json.dumps(attributes, ensure_ascii=False), "status": "active",
                         "content_hash": "", "source_hash": "", "created_at": now, "updated_at": now,
                         "readiness": "ready", "marketplace_category_id": CATEGORIES[n % len(CATEGORIES)],
                         "required_count": 0, "filled_required": 0, "missing": "[]", "readiness_at": now})
        if postgres:
            buffer = io.StringIO()
            for row in rows:
                buffer.write("\t".join(str(row[c]).replace("\\", "\\\\") for c in columns) + "\n")
            cursor = db.connection().connection.driver_connection.cursor()
            with cursor.copy(f"COPY products ({', '.join(columns)}) FROM STDIN") as copy:
                copy.write(buffer.getvalue())
        else:
            db.execute(text(f"INSERT INTO products ({', '.join(columns)}) VALUES ({', '.join(':' + c for c in columns)})"),
                       [{**row, "created_at": now.isoformat(), "updated_at": now.isoformat(),
                         "readiness_at": now.isoformat()} for row in rows])
        db.commit()
    if postgres:
        db.execute(text("ANALYZE products"))
        db.commit()


def _change(url: str, changes: int) -> None:
    """Stock and price of ``changes`` products; every tenth of them is no longer ready (a tombstone)."""
    engine = create_engine(url)
    with engine.begin() as conn:
        total = conn.execute(text("SELECT max(id) FROM products")).scalar_one()
        ids = random.Random(5).sample(range(1, total + 1), changes)
        conn.execute(text("UPDATE products SET stock = stock + 1, price = price + 1, updated_at = :now "
                          "WHERE id = ANY(:ids)" if url.startswith("postgresql") else
                          "UPDATE products SET stock = stock + 1, price = price + 1 WHERE id IN (SELECT value FROM json_each(:ids))"),
                     {"now": utcnow(), "ids": ids if url.startswith("postgresql") else json.dumps(ids)})
        gone = ids[::10]
        conn.execute(text("UPDATE products SET readiness = 'incomplete' WHERE id = ANY(:ids)" if url.startswith("postgresql")
                          else "UPDATE products SET readiness = 'incomplete' WHERE id IN (SELECT value FROM json_each(:ids))"),
                     {"ids": gone if url.startswith("postgresql") else json.dumps(gone)})
    engine.dispose()


def _export(env: dict[str, str], kind: str) -> dict[str, Any]:
    """Run the CLI in a child process: wall time, the run's own time (runs table), and peak memory — of the
    export process alone and of it with its worker processes together, sampled from /proc every 50 ms."""
    command = [sys.executable, "-c", "from portal.cli import main; main()", "pim", "export", kind, "--json"]
    started = time.perf_counter()
    child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    peaks = {"own": 0, "tree": 0}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            sizes = _tree_rss(child.pid)
            if sizes:
                peaks["own"] = max(peaks["own"], sizes.get(child.pid, 0))
                peaks["tree"] = max(peaks["tree"], sum(sizes.values()))
            stop.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = child.communicate()
    stop.set()
    sampler.join()
    wall = time.perf_counter() - started
    if child.returncode != 0:
        raise SystemExit(f"export {kind} failed:\n{out.decode()}\n{err.decode()[-3000:]}")
    result = json.loads(out)
    engine = create_engine(env["PORTAL_DATABASE_URL"])
    with engine.connect() as conn:
        finished, begun, size = conn.execute(text(
            "SELECT finished_at, started_at, bytes FROM pim_export_runs WHERE run_id = :r"), {"r": result["run_id"]}).one()
    engine.dispose()
    return {**result, "wall": wall, "run": (_parse(finished) - _parse(begun)).total_seconds(), "bytes": size,
            "rss": peaks["own"] / 1024, "tree_rss": peaks["tree"] / 1024}


def _tree_rss(root: int) -> dict[int, int]:
    """Resident KiB of ``root`` and its descendants, read from /proc."""
    parents: dict[int, int] = {}
    sizes: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as status:
                fields = dict(line.split(":", 1) for line in status if ":" in line)
        except OSError:
            continue
        parents[int(entry)] = int(fields.get("PPid", "0").strip())
        sizes[int(entry)] = int(fields.get("VmRSS", "0 kB").split()[0]) if "VmRSS" in fields else 0
    tree, frontier = {root}, [root]
    while frontier:
        current = frontier.pop()
        for pid, parent in parents.items():
            if parent == current and pid not in tree:
                tree.add(pid)
                frontier.append(pid)
    return {pid: sizes.get(pid, 0) for pid in tree if pid in sizes}


def _parse(value: Any) -> datetime:
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(endpoint: str) -> None:
    import urllib.request

    for _ in range(100):
        try:
            urllib.request.urlopen(endpoint, timeout=1)
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("moto server did not start")


if __name__ == "__main__":
    main()
