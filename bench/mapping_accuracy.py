"""Category suggestions: accuracy on the labelled set in tests/data, and speed against the full taxonomy.

    python bench/mapping_accuracy.py            # top-1 / top-3 accuracy, then 1,000 categories timed
    python bench/mapping_accuracy.py --misses   # also list every path whose right category is not in the top 3

The labelled set (tests/data/mapping_labelled.csv) holds merchant category paths written the way shops
write them, Russian and English, with a few product titles and the right Google taxonomy id. It was
written separately from the engine's glossary; rows are split in two halves by a hash of the path, and
both halves are reported, so a change tuned on one half can be checked on the other.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from portal import create_app  # noqa: E402
from portal.category_mapping.services import DEFAULT_TAXONOMY  # noqa: E402
from portal.category_mapping.suggest import Confirmed, Engine, glossary  # noqa: E402
from portal.category_mapping.taxonomy import parse_taxonomy  # noqa: E402

LABELLED = Path(__file__).resolve().parent.parent / "tests" / "data" / "mapping_labelled.csv"


def load_labelled() -> list[dict[str, str]]:
    with LABELLED.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def half(path: str) -> str:
    return "A" if hashlib.sha256(path.encode()).digest()[0] % 2 == 0 else "B"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--misses", action="store_true", help="list the paths missed in the top 3")
    args = parser.parse_args()

    app = create_app({"DATABASE_URL": "sqlite://", "SECRET_KEY": "bench"})
    with app.test_request_context():
        nodes = parse_taxonomy(DEFAULT_TAXONOMY.read_text(encoding="utf-8"))
    started = time.perf_counter()
    glossary()
    engine = Engine((node.id, node.path) for node in nodes)
    built = time.perf_counter() - started
    rows = load_labelled()
    print(f"machine: {platform.machine()}, python {platform.python_version()}; taxonomy {len(nodes):,} categories, "
          f"glossary {len(glossary()):,} stems; index built in {built:.2f} s")

    tally: dict[str, list[int]] = {}
    misses = []
    # Leave-one-out: every other labelled path stands for a mapping another merchant already confirmed.
    confirmed = Confirmed((n, row["merchant_path"], int(row["category_id"])) for n, row in enumerate(rows))
    for n, row in enumerate(rows):
        titles = [title.strip() for title in row["titles"].split(" | ") if title.strip()]
        found = [s.category_id for s in engine.suggest(row["merchant_path"], titles)]
        with_others = [s.category_id for s in engine.suggest(row["merchant_path"], titles, confirmed=confirmed,
                                                              merchant_id=n)]
        expected = int(row["category_id"])
        counts = tally.setdefault("with others' confirmed mappings", [0, 0, 0])
        counts[0] += 1
        counts[1] += int(with_others[:1] == [expected])
        counts[2] += int(expected in with_others[:3])
        hit1, hit3 = int(found[:1] == [expected]), int(expected in found[:3])
        for key in ("all", f"language {row['language']}", f"half {half(row['merchant_path'])}"):
            counts = tally.setdefault(key, [0, 0, 0])
            counts[0] += 1
            counts[1] += hit1
            counts[2] += hit3
        if not hit3:
            misses.append((row["merchant_path"], expected, found))
    print("text similarity alone (a marketplace with no confirmed mappings yet):")
    for key, (n, top1, top3) in sorted(tally.items()):
        if not key.startswith("with"):
            print(f"  {key:>12}: {n:4d} paths, top-1 {top1 / n:6.1%}, top-3 {top3 / n:6.1%}")
    n, top1, top3 = tally["with others' confirmed mappings"]
    print(f"with every other labelled path as another merchant's confirmed mapping (leave-one-out):\n"
          f"  {'all':>12}: {n:4d} paths, top-1 {top1 / n:6.1%}, top-3 {top3 / n:6.1%}")
    if args.misses:
        paths = dict(zip(engine.ids.tolist(), engine.paths))
        for path, expected, found in misses:
            print(f"MISS {path!r}: expected {expected} {paths.get(expected)}; got " +
                  "; ".join(f"{c} {paths.get(c)}" for c in found))

    batch = [(row["merchant_path"], [t for t in row["titles"].split(" | ") if t])
             for row in (rows * (1000 // len(rows) + 1))[:1000]]
    started = time.perf_counter()
    engine.suggest_many(batch)
    elapsed = time.perf_counter() - started
    print(f"1,000 merchant categories against {len(nodes):,} taxonomy categories: {elapsed:.2f} s "
          f"({1000 / elapsed:,.0f} categories/s), plus {built:.2f} s to build the index once")


if __name__ == "__main__":
    main()
