"""Catalog import speed: a realistic N-row file imported through the web upload's code path.

    python bench/catalog_import.py --rows 1000000 --format csv
    PORTAL_BENCH_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/bench python bench/catalog_import.py

Prints rows per second, wall time and peak memory (RSS) for the first import and for the re-upload of
the same file. The database at PORTAL_BENCH_DATABASE_URL is wiped (its public schema is recreated).
"""
from __future__ import annotations

import argparse
import csv
import os
import platform
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


from bench._database import fresh_postgres  # noqa: E402
from portal import create_app  # noqa: E402
from portal.catalog import services  # noqa: E402
from portal.catalog.demo import product_rows  # noqa: E402
from portal.db import get_session  # noqa: E402
from portal.migrate import upgrade  # noqa: E402
from portal.tenancy import Principal  # noqa: E402


def write_csv(path: Path, rows: int) -> None:
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = None
        for row in product_rows("bench", rows, random.Random(7), wide=True):
            if writer is None:
                writer = csv.DictWriter(handle, fieldnames=list(row), delimiter=";")
                writer.writeheader()
            writer.writerow(row)


def write_xlsx(path: Path, rows: int) -> None:
    import xlsxwriter

    book = xlsxwriter.Workbook(str(path), {"strings_to_numbers": False, "strings_to_urls": False})
    sheet = book.add_worksheet()
    for r, row in enumerate(product_rows("bench", rows, random.Random(7), wide=True)):
        if r == 0:
            sheet.write_row(0, 0, list(row))
        sheet.write_row(r + 1, 0, list(row.values()))
    book.close()


def cpu_seconds() -> tuple[float, float | None]:
    """This process's CPU time, and the whole machine's busy CPU time where /proc/stat tells it."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    own = usage.ru_utime + usage.ru_stime
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return own, None
    idle = fields[3] + fields[4]
    return own, (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--format", choices=("csv", "xlsx"), default="csv")
    parser.add_argument("--keep-file", metavar="DIR", type=Path,
                        help="keep the generated file in DIR and reuse it on the next run with the same --rows")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="portal-bench-") as folder:
        run(args, Path(folder))  # the stored uploads (GBs at 1M rows) go with the folder


def run(args: argparse.Namespace, work: Path) -> None:
    url = os.environ.get("PORTAL_BENCH_DATABASE_URL") or f"sqlite:///{work / 'bench.sqlite3'}"
    if url.startswith("postgresql"):
        fresh_postgres(url)
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "bench", "STORAGE_URL": (work / "storage").as_uri(),
                      "MAX_CONTENT_LENGTH": 4 * 1024 ** 3})
    with app.app_context():
        upgrade(app)

    folder = args.keep_file or work
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"catalog-{args.rows}.{args.format}"
    started = time.perf_counter()
    if not path.exists():
        partial = path.with_suffix(".partial")
        (write_csv if args.format == "csv" else write_xlsx)(partial, args.rows)
        partial.rename(path)
    size_mb = path.stat().st_size / 1024 ** 2
    print(f"{args.rows:,} rows × 30 columns, {size_mb:,.0f} MB {args.format}, ready in {time.perf_counter() - started:.1f} s")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"python {platform.python_version()}, database {url.split(':', 1)[0]}")

    with app.app_context():
        db = get_session()
        from portal.accounts.services import create_merchant

        merchant = create_merchant(db, slug="bench", name="Bench")
        principal = Principal(role="merchant_admin", merchant_id=merchant.id)
        for label in ("first import", "re-upload (unchanged)"):
            started = time.perf_counter()
            own_before, machine_before = cpu_seconds()
            with path.open("rb") as stream:
                upload = services.receive_upload(db, principal, stream=stream, filename=path.name)
            received = time.perf_counter() - started
            upload = services.process_upload(db, upload.id, dry_run=False)
            elapsed = time.perf_counter() - started
            own_after, machine_after = cpu_seconds()
            print(f"{label}: {elapsed:.1f} s, {args.rows / elapsed:,.0f} rows/s, status {upload.status}, "
                  f"created {upload.created:,}, updated {upload.updated:,}, unchanged {upload.unchanged:,}, "
                  f"rejected {upload.rejected:,}, peak RSS {peak_rss_mb():,.0f} MB")
            busy = "" if machine_before is None else f", the machine's {machine_after - machine_before:.1f} s"
            print(f"    received (kept in storage, columns read) in {received:.1f} s, applied in {elapsed - received:.1f} s")
            print(f"    CPU: this process {own_after - own_before:.1f} s{busy} (the database's share is the rest)")


if __name__ == "__main__":
    main()
