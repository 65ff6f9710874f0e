"""Web-review import at scale (issue #23): 100 000 reviews in <= 60 s with flat memory, the
same file again in <= 20 s adding nothing.

    .venv-app/bin/python -m bench.import [--reviews 100000] [--postgres URL] [--seed 1]

Setup: a dedicated PostgreSQL database (dropped and recreated; default `import_bench`),
`python -m bot migrate`, 2 000 customers with an order each (so some reviews are matched by
email or order number). The file: a Trustpilot review export (the `trustpilot` format) of
`--reviews` reviews over 12 months, 1 to 5 stars (skewed to 5), 85 % with a title and a text
from a pool of realistic sentences (multi-line, commas, quotes), 10 % by a known
customer's email, 5 % with a known order number, the rest by 40 000 distinct reviewers.

Measured, each run of `python -m bot import-feedback FILE --format trustpilot` in a child
process: wall time, peak RSS (VmHWM) and the RSS sampled every 0.25 s (flat memory: the
peak of the full file against the peak of a 10 % file, both in this run); then the same
file again (wall time, and the feedback row count before and after: it must not change).
Baseline (same run, same file): the CPU floor of the work without the database — reading
the CSV, parsing every row and VADER sentiment + themes of every text in one process.
Results also go to var/bench/import/results.json.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import random
import resource
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import text

from bench.host import ROOT, loadavg, machine, python, say
from bot.storage.db import create_engine

OUT = ROOT / "var" / "bench" / "import"
HEADER = [
    "Review ID", "Review Created (UTC)", "Review Consumer User ID", "Consumer Name",
    "Consumer Email", "Reference Id", "Review Title", "Review Content", "Review Stars",
    "Review Language", "Source Of Review",
]  # fmt: skip
TITLES = ["Great service", "Disappointed", "Fast delivery", "Not as described", "Lovely pan",
          "Would buy again", "Broken on arrival", "Okay", "Terrible support", "Good value"]  # fmt: skip
SENTENCES = [
    "The parcel arrived two days late, but the casserole is beautiful.",
    "Customer service answered within an hour and sorted out my refund.",
    "The lid was cracked, and nobody replied to my email for a week!",
    'Exactly as pictured; the "non-stick" coating really works.',
    "Checkout on the website kept crashing on my phone.",
    "A bit pricey, though the quality justifies it.",
    "I was charged twice and had to call my bank.",
    "Returned it easily, the label was in the box.",
    "Subscription box is great value every month.",
    "Terrible experience, never ordering again.",
    "Heats evenly and the handle stays cool.\nHighly recommended.",
    "Delivery driver left it in the rain, box soaked.",
]


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.import", description=__doc__)
    parser.add_argument("--reviews", type=int, default=100_000)
    parser.add_argument(
        "--postgres", default="postgresql+asyncpg://postgres@127.0.0.1:5432/import_bench"
    )
    parser.add_argument("--seed", type=int, default=1)
    return parser.parse_args(argv)


async def fresh_database(url: str, customers: int) -> None:
    name = url.rsplit("/", 1)[1]
    admin = create_engine(url.rsplit("/", 1)[0] + "/postgres").execution_options(
        isolation_level="AUTOCOMMIT"
    )
    try:
        async with admin.connect() as connection:
            await connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            await connection.execute(text(f"CREATE DATABASE {name}"))
    finally:
        await admin.dispose()
    env = {**os.environ, "DATABASE_URL": url}
    await asyncio.to_thread(
        subprocess.run, [python(), "-m", "bot", "migrate"], cwd=ROOT, env=env, check=True,
        timeout=300, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    engine = create_engine(url)
    try:
        async with engine.begin() as db:
            await db.execute(
                text(
                    "INSERT INTO customers (external_id, email, name, is_anonymous, created_at) "
                    "SELECT 'B' || g, 'buyer' || g || '@example.com', 'Buyer ' || g, false, "
                    "now() - interval '400 days' FROM generate_series(1, :n) g"
                ),
                {"n": customers},
            )
            await db.execute(
                text(
                    "INSERT INTO orders (number, customer_id, status, total, currency, "
                    "shipping_address, placed_at) SELECT 'B' || (10000 + c.id), c.id, "
                    "'delivered', 49.00, 'EUR', 'Street 1', now() - interval '390 days' "
                    "FROM customers c"
                )
            )
            await db.execute(
                text(
                    "INSERT INTO lifecycles (customer_id, kind, stage, opened_at, order_id) "
                    "SELECT o.customer_id, 'one_time', 'use', o.placed_at, o.id FROM orders o"
                )
            )
    finally:
        await engine.dispose()


def write_file(path: Path, reviews: int, customers: int, rng: random.Random) -> None:
    start = datetime.now(timezone.utc) - timedelta(days=365)
    with path.open("w", encoding="utf-8-sig", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(HEADER)
        for i in range(reviews):
            stars = rng.choices([1, 2, 3, 4, 5], weights=[12, 6, 10, 22, 50])[0]
            created = start + timedelta(seconds=rng.randrange(0, 364 * 86400))
            who = rng.random()
            email = reference = ""
            if who < 0.10:
                email = f"buyer{rng.randint(1, customers)}@example.com"
            elif who < 0.15:
                reference = f"B{10000 + rng.randint(1, customers)}"
            user = f"cu-{rng.randrange(40_000)}"
            title = content = ""
            if rng.random() < 0.85:
                title = rng.choice(TITLES)
                content = " ".join(rng.sample(SENTENCES, rng.randint(1, 3)))
            writer.writerow(
                [f"tp-{i:07d}", created.strftime("%Y-%m-%d %H:%M:%S"), user, f"Name {user}",
                 email, reference, title, content, stars, "en", "Organic"]
            )  # fmt: skip


def run_import(path: Path, url: str) -> dict[str, Any]:
    """One `import-feedback` child process: wall time, output, RSS samples and peak."""
    env = {**os.environ, "DATABASE_URL": url}
    command = [python(), "-m", "bot", "import-feedback", str(path), "--format", "trustpilot"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    child = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    samples: list[tuple[float, int]] = []
    peak = 0
    while child.poll() is None:
        try:
            status = Path(f"/proc/{child.pid}/status").read_text()
        except OSError:
            break
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                samples.append((round(time.perf_counter() - began, 2), int(line.split()[1])))
            elif line.startswith("VmHWM:"):
                peak = max(peak, int(line.split()[1]))
        time.sleep(0.25)
    stdout, stderr = child.communicate()
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {
        "command": " ".join(command[1:]), "seconds": round(wall, 2), "exit": child.returncode,
        "cpu_seconds": round(cpu, 2), "load_average_after": loadavg(),
        "stdout": stdout.strip(), "stderr_lines": len(stderr.splitlines()),
        "peak_rss_mib": round(peak / 1024, 1),
        "rss_mib_samples": [(t, round(k / 1024, 1)) for t, k in samples[:: max(1, len(samples) // 20)]],
    }  # fmt: skip


def baseline(path: Path) -> float:
    """Reading, parsing and analysing the same file, no database: the CPU floor."""
    from bot.domain import analysis, web_reviews

    began = time.perf_counter()
    with path.open("rb") as raw:
        for _line, review in web_reviews.read_reviews(raw, web_reviews.FORMATS["trustpilot"]):
            if isinstance(review, web_reviews.WebReview) and review.text:
                analysis.sentiment(review.text)
                analysis.themes(review.text)
            if isinstance(review, web_reviews.WebReview):
                _ = review.content_hash
    return time.perf_counter() - began


async def feedback_rows(url: str) -> int:
    engine = create_engine(url)
    try:
        async with engine.connect() as db:
            return int((await db.execute(text("SELECT count(*) FROM feedback"))).scalar() or 0)
    finally:
        await engine.dispose()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    OUT.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    customers = 2000
    say(f"machine: {machine()}")
    small_n = max(1, args.reviews // 10)
    small, full = OUT / f"trustpilot-{small_n}.csv", OUT / f"trustpilot-{args.reviews}.csv"
    write_file(small, small_n, customers, random.Random(args.seed + 1))
    write_file(full, args.reviews, customers, rng)
    say(f"files: {full} ({full.stat().st_size / 2**20:.1f} MiB), {small}")

    results: dict[str, Any] = {"machine": machine(), "reviews": args.reviews}
    small_url = args.postgres + "_small"
    asyncio.run(fresh_database(small_url, customers))
    results["small"] = run_import(small, small_url)
    say(f"{small_n} reviews: {results['small']['seconds']} s (CPU {results['small']['cpu_seconds']} s), "
        f"peak RSS {results['small']['peak_rss_mib']} MiB")  # fmt: skip

    asyncio.run(fresh_database(args.postgres, customers))
    results["first"] = run_import(full, args.postgres)
    rows = asyncio.run(feedback_rows(args.postgres))
    say(f"import: {results['first']['seconds']} s (CPU {results['first']['cpu_seconds']} s, load "
        f"{results['first']['load_average_after']}), peak RSS {results['first']['peak_rss_mib']} MiB, "
        f"{rows} feedback rows; {results['first']['stdout']}")  # fmt: skip
    results["again"] = run_import(full, args.postgres)
    rows_after = asyncio.run(feedback_rows(args.postgres))
    say(f"re-import: {results['again']['seconds']} s (CPU {results['again']['cpu_seconds']} s), peak RSS {results['again']['peak_rss_mib']} MiB, "
        f"rows {rows} -> {rows_after}; {results['again']['stdout']}")  # fmt: skip
    base = baseline(full)
    results.update(
        feedback_rows=rows, feedback_rows_after=rows_after, baseline_seconds=round(base, 2)
    )
    say(f"baseline (parse + VADER/themes, no database): {base:.2f} s; import / baseline = "
        f"{results['first']['seconds'] / base:.2f}x")  # fmt: skip
    ok = (
        results["first"]["seconds"] <= 60 and results["again"]["seconds"] <= 20
        and rows_after == rows and results["first"]["exit"] == 0
    )  # fmt: skip
    results["targets_met"] = ok
    (OUT / "results.json").write_text(json.dumps(results, indent=2))
    say(f"targets (<= 60 s, re-import <= 20 s adding nothing): {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
