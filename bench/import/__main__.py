"""Web-review import at scale: 100 000 reviews in <= 60 s with flat memory, the
same file again in <= 20 s adding nothing.

    .venv-app/bin/python -m bench.import [--reviews 100000] [--postgres URL] [--seed 1]
        [--baseline-tree DIR]

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
Also measured: the CPU time of the PostgreSQL backends serving the import (read from
/proc while it runs), since on the shared 2-core machine the wall time mostly says how
busy the machine was. Baselines (same run, same file): the CPU floor of the work without
the database — reading the CSV, parsing every row and VADER sentiment + themes of every
text in one process; and with `--baseline-tree DIR` (another checkout of the project,
e.g. an older commit in a git worktree with `.venv-app` linked in), the same two imports
by that checkout's code, run before ours into a database of the same schema.
Results also go to var/bench/import/results.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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
    "Review ID",
    "Review Created (UTC)",
    "Review Consumer User ID",
    "Consumer Name",
    "Consumer Email",
    "Reference Id",
    "Review Title",
    "Review Content",
    "Review Stars",
    "Review Language",
    "Source Of Review",
]
TITLES = [
    "Great service",
    "Disappointed",
    "Fast delivery",
    "Not as described",
    "Lovely pan",
    "Would buy again",
    "Broken on arrival",
    "Okay",
    "Terrible support",
    "Good value",
]
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
    parser.add_argument("--baseline-tree", type=Path, default=None)
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
        subprocess.run,
        [python(), "-m", "bot", "migrate"],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=300,
        stdout=subprocess.DEVNULL,
    )
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
                [
                    f"tp-{i:07d}",
                    created.strftime("%Y-%m-%d %H:%M:%S"),
                    user,
                    f"Name {user}",
                    email,
                    reference,
                    title,
                    content,
                    stars,
                    "en",
                    "Organic",
                ]
            )


def _proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _backend_cpu(database: str, seen: dict[int, float]) -> None:
    """The CPU seconds so far of every PostgreSQL backend connected to `database`."""
    found = subprocess.run(
        [
            "psql",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-Atc",
            f"SELECT pid FROM pg_stat_activity WHERE datname = '{database}'",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    for pid in found.stdout.split():
        with contextlib.suppress(OSError, ValueError):  # gone meanwhile
            seen[int(pid)] = _proc_cpu(int(pid))


def run_import(path: Path, url: str, tree: Path = ROOT) -> dict[str, Any]:
    """One `import-feedback` child process (the code of `tree`): wall time, output, RSS
    samples and peak, its CPU time (with its worker processes) and its backends'."""
    env = {**os.environ, "DATABASE_URL": url}
    command = [python(), "-m", "bot", "import-feedback", str(path), "--format", "trustpilot"]
    database = url.rsplit("/", 1)[1]
    backends: dict[int, float] = {}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    child = subprocess.Popen(
        command, cwd=tree, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    samples: list[tuple[float, int]] = []
    peak = 0
    polled = 0.0
    while child.poll() is None:
        if time.perf_counter() - polled >= 1.0:
            _backend_cpu(database, backends)
            polled = time.perf_counter()
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
        "command": " ".join(command[1:]),
        "tree": str(tree),
        "seconds": round(wall, 2),
        "exit": child.returncode,
        "cpu_seconds": round(cpu, 2),
        "postgres_cpu_seconds": round(sum(backends.values()), 2),
        "load_average_after": loadavg(),
        "stdout": stdout.strip(),
        "stderr_lines": len(stderr.splitlines()),
        "peak_rss_mib": round(peak / 1024, 1),
        "rss_mib_samples": [
            (t, round(k / 1024, 1)) for t, k in samples[:: max(1, len(samples) // 20)]
        ],
    }


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


def _line(result: dict[str, Any]) -> str:
    return (
        f"{result['seconds']} s (CPU {result['cpu_seconds']} s, PostgreSQL backends' CPU "
        f"{result['postgres_cpu_seconds']} s, load after {result['load_average_after']}), "
        f"peak RSS {result['peak_rss_mib']} MiB"
    )


def measure(tree: Path, url: str, small: Path, full: Path, customers: int) -> dict[str, Any]:
    """The 10 % file into a fresh database, the full file into another, the full file again."""
    results: dict[str, Any] = {"tree": str(tree)}
    small_url = url + "_small"
    asyncio.run(fresh_database(small_url, customers))
    results["small"] = run_import(small, small_url, tree)
    say(f"  {small.name}: {_line(results['small'])}")
    asyncio.run(fresh_database(url, customers))
    results["first"] = run_import(full, url, tree)
    rows = asyncio.run(feedback_rows(url))
    say(f"  import: {_line(results['first'])}, {rows} feedback rows; {results['first']['stdout']}")
    results["again"] = run_import(full, url, tree)
    rows_after = asyncio.run(feedback_rows(url))
    say(
        f"  re-import: {_line(results['again'])}, rows {rows} -> {rows_after}; "
        f"{results['again']['stdout']}"
    )
    results.update(feedback_rows=rows, feedback_rows_after=rows_after)
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    OUT.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    customers = 2000
    say(f"machine: {machine()}")
    say(f"command: python -m bench.import {' '.join(sys.argv[1:] if argv is None else argv)}")
    small_n = max(1, args.reviews // 10)
    small, full = OUT / f"trustpilot-{small_n}.csv", OUT / f"trustpilot-{args.reviews}.csv"
    write_file(small, small_n, customers, random.Random(args.seed + 1))
    write_file(full, args.reviews, customers, rng)
    say(f"files: {full} ({full.stat().st_size / 2**20:.1f} MiB), {small}")

    results: dict[str, Any] = {"machine": machine(), "reviews": args.reviews}
    if args.baseline_tree is not None:
        say(f"baseline tree {args.baseline_tree}:")
        results["baseline_tree"] = measure(
            args.baseline_tree.resolve(), args.postgres, small, full, customers
        )
    say(f"this tree {ROOT}:")
    ours = measure(ROOT, args.postgres, small, full, customers)
    results.update(ours)
    base = baseline(full)
    results["baseline_seconds"] = round(base, 2)
    say(
        f"baseline (parse + VADER/themes, no database): {base:.2f} s; import / baseline = "
        f"{ours['first']['seconds'] / base:.2f}x"
    )
    if "baseline_tree" in results:
        old = results["baseline_tree"]
        say(
            f"baseline tree / this tree: import {old['first']['seconds'] / ours['first']['seconds']:.2f}x "
            f"wall, {old['first']['cpu_seconds'] / ours['first']['cpu_seconds']:.2f}x CPU, "
            f"{old['first']['postgres_cpu_seconds'] / max(ours['first']['postgres_cpu_seconds'], 0.01):.2f}x "
            f"PostgreSQL CPU; re-import {old['again']['seconds'] / ours['again']['seconds']:.2f}x wall"
        )
    ok = (
        ours["first"]["seconds"] <= 60
        and ours["again"]["seconds"] <= 20
        and ours["feedback_rows_after"] == ours["feedback_rows"]
        and ours["first"]["exit"] == 0
    )
    results["targets_met"] = ok
    (OUT / "results.json").write_text(json.dumps(results, indent=2))
    say(f"load average at the end: {loadavg()}")
    say(f"targets (<= 60 s, re-import <= 20 s adding nothing): {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
