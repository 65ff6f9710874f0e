"""python -m bench.conversations [--files F ...] [--url URL --database-url DB]

Runs the held-out conversations (bench/conversations/heldout/*.yml) against the embedded
stack on a fresh SQLite database (or a running stack at --url) and prints task success per
category, wrong account changes and the survey figures (offered, answered, declined). Exit 0 whatever the
score; non-zero only when it could not run. See README.md."""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

from bench.conversations.runner import Result, run_many
from bench.conversations.spec import HELDOUT, load
from bench.host import machine, python, say
from bench.ws import TRUSTED_PROXY_ENV
from bot.config import Settings
from bot.launcher import MODEL, StackPorts, free_port, running
from bot.storage.db import create_engine, create_session_factory


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f} % ({part}/{whole})" if whole else "n/a (0)"


def report(results: list[Result]) -> None:
    by_category: dict[str, list[Result]] = defaultdict(list)
    for result in results:
        by_category[result.conversation.category].append(result)
    say("\n## Failures")
    for result in results:
        if result.ok:
            continue
        say(
            f"- {result.conversation.category}/{result.conversation.id} ({result.conversation.about})"
        )
        if result.error:
            say(f"    error: {result.error}")
        for line in [
            *result.failures,
            *(f"WRONG ACCOUNT CHANGE {w}" for w in result.wrong_changes),
        ][:6]:
            say(f"    {line}")
    say("\n## Task success per category")
    for category, items in by_category.items():
        say(
            f"- {category} (#{items[0].conversation.issue}): {_pct(sum(r.ok for r in items), len(items))}"
        )
    d17 = [r for r in results if r.conversation.issue == 17]
    d18 = [r for r in results if r.conversation.issue == 18]
    say(f"- overall #17 set: {_pct(sum(r.ok for r in d17), len(d17))}")
    say(f"- overall #18 set: {_pct(sum(r.ok for r in d18), len(d18))}")
    say(f"- overall: {_pct(sum(r.ok for r in results), len(results))}")
    wrong = [w for r in results for w in r.wrong_changes]
    say(
        f"- wrong account changes: {len(wrong)} in {sum(1 for r in results if r.wrong_changes)} conversations"
    )
    errors = sum(1 for r in results if r.error)
    say(f"- conversations that could not be driven to the end (errors): {errors}")
    if d18:
        say("\n## Surveys (#18 set)")
        interfered = [
            r for r in d18 if any(t.get("request") for t in r.conversation.raw.get("turns", []))
        ]
        say(
            f"- survey interference: {_pct(sum(r.interfered for r in interfered), len(interfered))} of conversations with a request"
        )
        due = [r for r in d18 if r.conversation.survey_due]
        offered = sum(1 for r in due if r.dispatch_counts.get("offered", 0) > 0)
        say(f"- due surveys offered: {_pct(offered, len(due))}")
        not_due = [r for r in d18 if r.conversation.survey_due is False]
        say(
            f"- surveys offered where none was due (back-fill etc.): {sum(1 for r in not_due if r.dispatch_counts.get('offered', 0) > 0)} of {len(not_due)}"
        )
        say(
            "- of them proactive (scheduled by shop events, not the in-chat CSAT after a "
            f"request): {sum(1 for r in not_due if r.dispatch_counts.get('proactive_offered', 0) > 0)} of {len(not_due)}"
        )
        totals: Counter[str] = Counter()
        for r in d18:
            totals.update(r.dispatch_counts)
        say(
            f"- dispatches: offered {totals['offered']}, accepted {totals['accepted']}, answered {totals['answered']}, declined {totals['declined']}"
        )


async def run_all(args: argparse.Namespace, base_url: str, database_url: str) -> list[Result]:
    settings = Settings.from_env()
    conversations = load([Path(f) for f in args.files])
    if args.only:
        conversations = [c for c in conversations if c.id in set(args.only)]
    engine = create_engine(database_url)

    def printed(result: Result) -> None:
        mark = "ok  " if result.ok else ("ERR " if result.error else "FAIL")
        say(f"{mark} {result.conversation.category}/{result.conversation.id} {result.seconds:.1f}s")

    try:
        results = await run_many(
            base_url,
            create_session_factory(engine),
            (settings.events_secret, settings.widget_secret),
            conversations,
            concurrency=args.concurrency,
            on_result=printed,
        )
    finally:
        await engine.dispose()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.conversations", description=__doc__)
    parser.add_argument("--files", nargs="+", default=sorted(str(p) for p in HELDOUT.glob("*.yml")))
    parser.add_argument("--url", help="a running stack (then --database-url is needed)")
    parser.add_argument("--database-url", help="that stack's DATABASE_URL (the checks read it)")
    parser.add_argument("--only", nargs="+", help="conversation ids")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=1,
        help="conversations at a time (default 1, as the held-out figures are measured)",
    )
    parser.add_argument(
        "--model", type=Path, default=MODEL, help="the trained model (default: %(default)s)"
    )
    parser.add_argument(
        "--transcript",
        action="store_true",
        help="print every conversation turn by turn (for development sets, not the held-out)",
    )
    parser.add_argument(
        "--keep-database",
        type=Path,
        metavar="FILE",
        help="embedded stack: migrate this SQLite file (new or empty) and keep it after the run "
        "(e.g. for bench/flag_precision.py) instead of a temporary one",
    )
    parser.add_argument(
        "--log-dir",
        type=Path,
        metavar="DIR",
        help="embedded stack: keep the Rasa, action server and web service logs here",
    )
    args = parser.parse_args()
    say("# bench.conversations")
    say(f"command: {' '.join(sys.argv)}")
    say(f"machine: {machine()}")
    model = args.model
    say(f"model: {model} ({time.ctime(model.stat().st_mtime) if model.exists() else 'missing'})")
    started = time.monotonic()
    if args.url:
        if not args.database_url:
            parser.error("--url needs --database-url")
        results = asyncio.run(run_all(args, args.url, args.database_url))
    else:
        with tempfile.TemporaryDirectory(prefix="bench-conv-") as workdir:
            database = args.keep_database.resolve() if args.keep_database else f"{workdir}/bench.db"
            database_url = f"sqlite+aiosqlite:///{database}"
            ports = StackPorts(web=free_port(), rasa=free_port(), actions=free_port())
            env = {
                "DATABASE_URL": database_url,
                "ACTION_SERVER_URL": f"http://127.0.0.1:{ports.actions}/webhook",
                **TRUSTED_PROXY_ENV,
            }  # per-address limits on, each conversation its address
            # The demo shop's knowledge base: product and policy questions are
            # answered from it, as in `make run` and the e2e stack.
            for command in (["migrate"], ["staff", "demo"], ["import-knowledge", "--demo"]):
                subprocess.run(
                    [python(), "-m", "bot", *command],
                    env={**__import__("os").environ, **env},
                    check=True,
                    stdout=subprocess.DEVNULL,
                )
            log_dir = args.log_dir.resolve() if args.log_dir else Path(workdir) / "logs"
            say(f"stack: embedded, fresh SQLite {database_url}, logs in {log_dir}")
            with running(ports, model=args.model, env=env, log_dir=log_dir) as stack:
                results = asyncio.run(run_all(args, stack.web_url, database_url))
    if args.transcript:
        for result in results:
            say(f"\n### {result.conversation.id}: {result.conversation.about}")
            for line in result.transcript:
                say(f"    {line}")
    report(results)
    say(f"\n{len(results)} conversations in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
