"""Dashboard benchmark: every dashboard endpoint on 1 000 000 feedback rows in PostgreSQL
(or SQLite: `--database-url sqlite+aiosqlite:////path/to/file.db`).

    .venv-app/bin/python -m bench.dashboard [--database-url URL] [--calls 20] [--reuse]
        [--customers 100000] [--feedback 1000000]

1. A dedicated database (default `dashboard_bench`) is dropped, created and migrated with
   `python -m bot migrate` (so the indexes are the migrations' own), then filled with COPY
   (bench/dashboard/generate.py) and VACUUM ANALYZE. `--reuse` keeps a filled database
   and only applies the migrations it does not have yet. SQLite: the file is recreated,
   migrated, its triggers are dropped while the same rows are inserted and the rollups
   backfilled, then created again; ANALYZE.
2. The web service runs as `python -m bot serve` (its own process, so its memory can be
   read from /proc); the calls use a cx_manager API token, one at a time.
3. For a 90-day and a 2-year range: baseline = `SELECT count(*)` of the range's feedback
   rows straight through asyncpg; then every endpoint `--calls` times after one warm-up
   call: p50/p95/max latency (ms).
4. Export: all rows of the 2-year range as CSV, streamed; time, bytes, the server's RSS
   before and after and its peak during the download (sampled every 50 ms).

Targets: p95 <= 50 ms per endpoint (first 100 ms, halved when support operations and
what-to-fix-first were added); export of 1 M rows <= 20 s, memory flat.
Results: var/bench/dashboard/results.json and a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg  # type: ignore[import-untyped]

from bench.dashboard.generate import SQLiteWriter, generate
from bench.stats import summary_ms
from bot.launcher import free_port

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "var" / "bench" / "dashboard"
VENV_PYTHON = ROOT / ".venv-app" / "bin" / "python"
DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/dashboard_bench"
TARGET_P95_MS = 50.0  # first 100 ms
TARGET_EXPORT_S = 20.0
ENDPOINTS = (
    ("metrics (overview + weekly trend)", "metrics?bucket=week"),
    ("metrics by stage", "metrics?bucket=none&group_by=stage"),
    ("metrics by channel", "metrics?bucket=none&group_by=channel"),
    ("metrics by product", "metrics?bucket=none&group_by=product"),
    ("metrics by acquisition source", "metrics?bucket=none&group_by=acquisition_source"),
    ("metrics by survey trigger", "metrics?bucket=none&group_by=trigger"),
    ("journey", "journey?"),
    ("feedback page 1", "feedback?per_page=50"),
    ("feedback stage+negative", "feedback?per_page=50&stage=support&sentiment=negative"),
    ("feedback free text", "feedback?per_page=50&q=refund"),
    ("support operations", "support?"),
    ("journey: what to fix first", "journey/fix-first?"),
)


def _dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def _admin(url: str, statement: str) -> None:
    base, _, _name = _dsn(url).rpartition("/")
    connection = await asyncpg.connect(base + "/postgres")
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def _sqlite_path(url: str) -> str | None:
    return url.split(":///", 1)[1] if url.startswith("sqlite") else None


def _sqlite_count(path: str) -> int | None:
    import sqlite3

    if not Path(path).exists():
        return None
    try:
        with sqlite3.connect(path) as db:
            return int(db.execute("SELECT count(*) FROM feedback").fetchone()[0])
    except sqlite3.OperationalError:
        return None


async def _feedback_count(url: str) -> int | None:
    path = _sqlite_path(url)
    if path is not None:
        return _sqlite_count(path)
    try:
        connection = await asyncpg.connect(_dsn(url))
    except (asyncpg.InvalidCatalogNameError, OSError):
        return None
    try:
        return int(await connection.fetchval("SELECT count(*) FROM feedback"))
    except asyncpg.UndefinedTableError:
        return None
    finally:
        await connection.close()


def prepare(url: str, customers: int, feedback: int, reuse: bool) -> dict[str, Any]:
    name = _dsn(url).rpartition("/")[2]
    if reuse and asyncio.run(_feedback_count(url)) == feedback:
        _migrate(url)  # migrations added since the database was filled (backfill their rollups)
        return {"reused": True, "feedback": feedback}
    path = _sqlite_path(url)
    if path is not None:
        for suffix in ("", "-wal", "-shm"):
            Path(path + suffix).unlink(missing_ok=True)
        _migrate(url)
        return asyncio.run(_fill_sqlite(path, customers, feedback))
    asyncio.run(_admin(url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    asyncio.run(_admin(url, f"CREATE DATABASE {name}"))
    _migrate(url)
    return asyncio.run(_fill(url, customers, feedback))


async def _fill_sqlite(path: str, customers: int, feedback: int) -> dict[str, Any]:
    """The migrations' triggers are dropped during the load and created again after it."""
    writer = SQLiteWriter(path)
    try:
        triggers = writer.db.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger'"
        ).fetchall()
        for trigger_name, _sql in triggers:
            await writer.execute(f"DROP TRIGGER {trigger_name}")
        found = await generate(writer, customers=customers, feedback=feedback, dialect="sqlite")
        for _name, sql in triggers:
            await writer.execute(sql)
        return found
    finally:
        writer.close()


def _migrate(url: str) -> None:
    env = {**os.environ, "DATABASE_URL": url, "PYTHONPATH": str(ROOT)}
    subprocess.run([str(VENV_PYTHON), "-m", "bot", "migrate"], cwd=ROOT, env=env, check=True)


async def _fill(url: str, customers: int, feedback: int) -> dict[str, Any]:
    connection = await asyncpg.connect(_dsn(url))
    try:
        # Bulk load: skip the per-row foreign-key triggers (the generator keeps the ids
        # consistent); the indexes are the migrations' own and are built as rows arrive.
        await connection.execute("SET session_replication_role = replica")
        return await generate(connection, customers=customers, feedback=feedback)
    finally:
        await connection.close()


async def _token(url: str) -> str:
    from bot.domain import api_tokens
    from bot.domain.enums import StaffRole
    from bot.storage.db import create_engine, create_session_factory

    engine = create_engine(url)
    try:
        async with create_session_factory(engine)() as session, session.begin():
            _row, plaintext = await api_tokens.create_token(
                session, "dashboard bench", StaffRole.cx_manager
            )
    finally:
        await engine.dispose()
    return plaintext


def _rss_kb(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _baseline_sqlite(path: str, start: date, end: date, calls: int) -> dict[str, Any]:
    import sqlite3

    query = "SELECT count(*) FROM feedback WHERE created_at >= ? AND created_at < ?"
    bounds = (start.isoformat(), (end + timedelta(days=1)).isoformat())
    with sqlite3.connect(path) as db:
        db.execute(query, bounds).fetchone()
        samples = []
        for _ in range(calls):
            begin = time.perf_counter()
            rows = db.execute(query, bounds).fetchone()[0]
            samples.append(time.perf_counter() - begin)
    return {"rows": rows, **summary_ms(samples)}


async def _baseline(url: str, start: date, end: date, calls: int) -> dict[str, Any]:
    path = _sqlite_path(url)
    if path is not None:
        return _baseline_sqlite(path, start, end, calls)
    connection = await asyncpg.connect(_dsn(url))
    query = "SELECT count(*) FROM feedback WHERE created_at >= $1::date AND created_at < $2::date"
    try:
        await connection.fetchval(query, start, end + timedelta(days=1))
        samples = []
        for _ in range(calls):
            begin = time.perf_counter()
            rows = await connection.fetchval(query, start, end + timedelta(days=1))
            samples.append(time.perf_counter() - begin)
    finally:
        await connection.close()
    return {"rows": rows, **summary_ms(samples)}


async def _time_endpoints(
    http: aiohttp.ClientSession, base: str, period: str, calls: int
) -> list[dict[str, Any]]:
    results = []
    for label, path in ENDPOINTS:
        url = f"{base}/api/{path}&{period}"
        samples = []
        for i in range(calls + 1):
            begin = time.perf_counter()
            async with http.get(url) as response:
                body = await response.read()
                if response.status != 200:
                    raise RuntimeError(f"{url}: {response.status} {body[:300]!r}")
            if i:  # the first call warms up caches and connections
                samples.append(time.perf_counter() - begin)
        stats = summary_ms(samples)
        results.append({"endpoint": label, "path": path, **stats})
        print(
            f"  {label:<34} p50 {stats['p50_ms']:8.1f} ms  p95 {stats['p95_ms']:8.1f} ms",
            flush=True,
        )
    return results


async def _export(http: aiohttp.ClientSession, base: str, period: str, pid: int) -> dict[str, Any]:
    before = _rss_kb(pid)
    peak = before
    size = 0
    done = False

    async def sample() -> None:
        nonlocal peak
        while not done:
            peak = max(peak, _rss_kb(pid))
            await asyncio.sleep(0.05)

    sampler = asyncio.create_task(sample())
    begin = time.perf_counter()
    async with http.get(f"{base}/api/export?format=csv&{period}") as response:
        assert response.status == 200, await response.text()
        async for chunk in response.content.iter_chunked(1 << 16):
            size += len(chunk)
    seconds = time.perf_counter() - begin
    done = True
    await sampler
    return {
        "seconds": round(seconds, 2),
        "bytes": size,
        "rss_before_mb": round(before / 1024, 1),
        "rss_peak_mb": round(peak / 1024, 1),
        "rss_after_mb": round(_rss_kb(pid) / 1024, 1),
    }


def start_server(url: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "WEB_PORT": str(port),
        "RASA_URL": "http://127.0.0.1:9",
        "PYTHONPATH": str(ROOT),
    }
    OUT.mkdir(parents=True, exist_ok=True)
    with (OUT / "web.log").open("wb") as log:
        server = subprocess.Popen(
            [str(VENV_PYTHON), "-m", "bot", "serve"], cwd=ROOT, env=env, stdout=log, stderr=log
        )
    return server, f"http://127.0.0.1:{port}"


async def measure(url: str, calls: int, token: str, server_pid: int, base: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    today = date.today()
    periods = {
        "90 days": (today - timedelta(days=89), today),
        "2 years": (today - timedelta(days=729), today),
    }
    async with aiohttp.ClientSession(
        headers=headers, timeout=aiohttp.ClientTimeout(total=600)
    ) as http:
        for _ in range(300):
            try:
                async with http.get(f"{base}/api/openapi.json") as response:
                    if response.status == 200:
                        break
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
        results: dict[str, Any] = {"periods": {}}
        for name, (start, end) in periods.items():
            period = f"from={start.isoformat()}&to={end.isoformat()}&tz=UTC"
            print(f"{name} ({start} .. {end}):", flush=True)
            baseline = await _baseline(url, start, end, calls)
            print(
                f"  baseline SELECT count(*): {baseline['rows']} rows, p50 {baseline['p50_ms']:.1f} ms, p95 {baseline['p95_ms']:.1f} ms",
                flush=True,
            )
            endpoints = await _time_endpoints(http, base, period, calls)
            results["periods"][name] = {
                "from": start.isoformat(),
                "to": end.isoformat(),
                "baseline_count": baseline,
                "endpoints": endpoints,
            }
        start, end = periods["2 years"]
        period = f"from={start.isoformat()}&to={end.isoformat()}&tz=UTC"
        results["export_csv_2_years"] = await _export(http, base, period, server_pid)
        print(f"export: {results['export_csv_2_years']}", flush=True)
    return results


def _machine() -> dict[str, Any]:
    memory = next(
        (
            line.split()[1]
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        ),
        "0",
    )
    return {
        "nproc": os.cpu_count(),
        "memory_gb": round(int(memory) / 1024 / 1024, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def _markdown(results: dict[str, Any]) -> str:
    lines = [
        "| endpoint | 90 days p50 / p95 (ms) | 2 years p50 / p95 (ms) |",
        "| --- | ---: | ---: |",
    ]
    p90, p2y = results["periods"]["90 days"], results["periods"]["2 years"]
    for a, b in zip(p90["endpoints"], p2y["endpoints"], strict=True):
        lines.append(
            f"| {a['endpoint']} | {a['p50_ms']:.1f} / {a['p95_ms']:.1f} | {b['p50_ms']:.1f} / {b['p95_ms']:.1f} |"
        )
    for name, key in (("baseline `SELECT count(*)`", "baseline_count"),):
        a, b = p90[key], p2y[key]
        lines.append(
            f"| {name} ({a['rows']} / {b['rows']} rows) | {a['p50_ms']:.1f} / {a['p95_ms']:.1f} | {b['p50_ms']:.1f} / {b['p95_ms']:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dashboard")
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--feedback", type=int, default=1_000_000)
    parser.add_argument("--reuse", action="store_true", help="keep an already filled database")
    args = parser.parse_args(argv)
    command = " ".join(
        shlex.quote(a) for a in [sys.executable, "-m", "bench.dashboard", *(argv or sys.argv[1:])]
    )
    print(f"command: {command}\nmachine: {_machine()}", flush=True)
    begin = time.perf_counter()
    generated = prepare(args.database_url, args.customers, args.feedback, args.reuse)
    print(f"data: {generated} (setup {time.perf_counter() - begin:.0f} s)", flush=True)
    token = asyncio.run(_token(args.database_url))
    server, base = start_server(args.database_url)
    try:
        results = asyncio.run(measure(args.database_url, args.calls, token, server.pid, base))
    finally:
        server.terminate()
        server.wait(30)
    results.update(command=command, machine=_machine(), data=generated, calls=args.calls)
    misses = [
        (period, e["endpoint"], round(e["p95_ms"], 1))
        for period, found in results["periods"].items()
        for e in found["endpoints"]
        if e["p95_ms"] > TARGET_P95_MS
    ]
    results["p95_target_missed"] = misses
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(json.dumps(results, indent=2))
    print()
    print(_markdown(results))
    export = results["export_csv_2_years"]
    print(
        f"\nexport CSV (2 years): {export['seconds']} s, {export['bytes'] / 1e6:.0f} MB, server RSS "
        f"{export['rss_before_mb']} -> peak {export['rss_peak_mb']} -> {export['rss_after_mb']} MB"
    )
    print(f"p95 over {TARGET_P95_MS:.0f} ms: {misses or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
