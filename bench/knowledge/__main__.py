"""Knowledge answers: `python -m bench.knowledge` (also in `make bench`).

On the held-out set (bench/knowledge/heldout.yml, written from the product names and article
titles before the content existed; never tuned on) against the demo shop's knowledge base:

* correct answers: the bot answers (not "not sure") and cites the labelled SKU or article;
* "not sure" on the questions the content does not answer;
* latency of a whole knowledge answer (bot/domain/knowledge.py `reply`: index check, question
  embedding, scoring, the reply text, the unanswered-question write) on SQLite, p50/p95;
* baseline in the same run: the keyword-only fallback (KNOWLEDGE_EMBEDDINGS=off);
* the model's load time in a fresh process with no network (`unshare -rn`), and the action
  server's memory (VmRSS after start-up and after answering) without and with the model.

Options: --set dev / dev_abstain / dev_naive / dev_fresh / dev_fresh2 (the tuning sets: dev_abstain.yml has
unanswerable questions that name a product or topic the shop has, dev_naive.yml and
dev_fresh.yml questions in the words of customers who have not read the content) / dev_check
(written with dev_fresh.yml, not tuned on: run it with --quiet), --skip-server (no
action-server memory), --quiet (summary lines only, no misses: the held-out set's misses are
not to be read).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from bench.host import loadavg, machine
from bot.config import PROJECT_ROOT

HERE = Path(__file__).parent
TOKEN = "bench-knowledge-token"

LOAD_SNIPPET = """
import socket, time
def refuse(*a, **k):
    raise RuntimeError("network use while loading the model")
socket.socket.connect = refuse
started = time.perf_counter()
from bot.domain import embeddings
model = embeddings.load_model()
assert model is not None, "model not loaded"
print(time.perf_counter() - started)
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def load_questions(name: str) -> list[dict[str, Any]]:
    data = yaml.safe_load((HERE / f"{name}.yml").read_text(encoding="utf-8"))
    return list(data["questions"])


def model_load_seconds(runs: int = 3) -> tuple[list[float], bool]:
    """Fresh-process load times; offline = run inside a network namespace with no network."""
    unshare = shutil.which("unshare")
    offline = False
    times = []
    for _ in range(runs):
        command = [sys.executable, "-c", LOAD_SNIPPET]
        if unshare:
            probe = subprocess.run([unshare, "-rn", "true"], capture_output=True)
            if probe.returncode == 0:
                command = [unshare, "-rn", *command]
                offline = True
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(PROJECT_ROOT)}
        env.pop("KNOWLEDGE_EMBEDDINGS", None)
        out = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
        times.append(float(out.stdout.strip().splitlines()[-1]))
    return times, offline


async def prepare_database(url: str) -> float:
    from bot.domain import knowledge
    from bot.storage.db import create_engine, create_session_factory
    from bot.storage.models import Base

    engine = create_engine(url)
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
    started = time.perf_counter()
    async with create_session_factory(engine)() as session, session.begin():
        await knowledge.load_demo(session)
    seconds = time.perf_counter() - started
    await engine.dispose()
    return seconds


async def evaluate(
    url: str, questions: list[dict[str, Any]], embeddings_on: bool
) -> dict[str, Any]:
    from bot.domain import embeddings, knowledge
    from bot.storage.db import create_engine, create_session_factory

    model = embeddings.load_model() if embeddings_on else None
    retriever = knowledge.Retriever(model)
    engine = create_engine(url)
    sessions = create_session_factory(engine)
    async with sessions() as session:
        await retriever.current_index(session)  # built once, as after the first question
    latencies: list[float] = []
    right = wrong_answerable = unsure_answerable = 0
    unsure = wrong_unanswerable = 0
    misses: list[str] = []
    for _round in range(3):  # three passes for the latency; correctness from the first
        for position, question in enumerate(questions):
            async with sessions() as session, session.begin():
                started = time.perf_counter()
                reply = await knowledge.reply(session, retriever, question["q"])
                latencies.append((time.perf_counter() - started) * 1000)
            if _round:
                continue
            best = reply.result.best
            cited = best.item.ref if best is not None and reply.result.confident else None
            if question["answer"]:
                if cited in question["answer"]:
                    right += 1
                elif cited is None:
                    unsure_answerable += 1
                    misses.append(
                        f"  not sure  #{position:<3} {question['q']!r} -> {question['answer']}"
                    )
                else:
                    wrong_answerable += 1
                    misses.append(
                        f"  wrong     #{position:<3} {question['q']!r} -> {cited} "
                        f"(label {question['answer']})"
                    )
            elif cited is None:
                unsure += 1
            else:
                wrong_unanswerable += 1
                misses.append(
                    f"  answered  #{position:<3} {question['q']!r} -> {cited} (no answer)"
                )
    await engine.dispose()
    answerable = sum(1 for q in questions if q["answer"])
    unanswerable = len(questions) - answerable
    return {
        "method": retriever.index.model
        if retriever.index and retriever.index.model
        else "keywords",
        "answerable": answerable,
        "right": right,
        "wrong_answerable": wrong_answerable,
        "unsure_answerable": unsure_answerable,
        "unanswerable": unanswerable,
        "unsure": unsure,
        "wrong_unanswerable": wrong_unanswerable,
        "p50": statistics.median(latencies),
        "p95": percentile(latencies, 95),
        "max": max(latencies),
        "calls": len(latencies),
        "misses": misses,
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "X-Action-Server-Token": TOKEN},
    )
    with urllib.request.urlopen(request, timeout=60) as response:  # nosec B310 - local server
        result: dict[str, Any] = json.loads(response.read())
        return result


def action_server_memory(url: str, embeddings_on: bool, questions: list[str]) -> dict[str, Any]:
    """The real action server (actions/server.py) on the bench database: VmRSS once healthy
    (the model is loaded at start-up) and after answering `questions` via its webhook."""
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "ACTION_SERVER_TOKEN": TOKEN,
        "PYTHONPATH": str(PROJECT_ROOT),
        "KNOWLEDGE_EMBEDDINGS": "on" if embeddings_on else "off",
    }
    started = time.perf_counter()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "actions.server",
            "--actions",
            "actions",
            "--port",
            str(port),
            "--quiet",
        ],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):  # nosec B310
                    break
            except OSError:
                if process.poll() is not None or time.perf_counter() - started > 120:
                    raise RuntimeError("the action server did not start") from None
                time.sleep(0.2)
        ready = time.perf_counter() - started
        time.sleep(1.0)
        at_start = _rss_mb(process.pid)
        for index, text in enumerate(questions):
            _post(
                f"http://127.0.0.1:{port}/webhook",
                {
                    "next_action": "action_answer_product_question",
                    "sender_id": f"bench-knowledge-{index}",
                    "tracker": {
                        "sender_id": f"bench-knowledge-{index}",
                        "slots": {},
                        "latest_message": {
                            "text": text,
                            "intent": {"name": "product_question", "confidence": 0.99},
                            "entities": [],
                        },
                        "events": [],
                        "paused": False,
                        "followup_action": None,
                        "active_loop": {},
                        "latest_action_name": "action_listen",
                    },
                    "domain": {},
                    "version": "3.6.2",
                },
            )
        after = _rss_mb(process.pid)
    finally:
        process.terminate()
        process.wait(timeout=30)
    return {"ready_s": ready, "rss_start_mb": at_start, "rss_after_mb": after}


def _line(result: dict[str, Any]) -> str:
    a, u = result["answerable"], result["unanswerable"]
    return (
        f"answerable correct {result['right']}/{a} = {100 * result['right'] / a:.1f} % "
        f"(wrong {result['wrong_answerable']}, not sure {result['unsure_answerable']}); "
        f"unanswerable 'not sure' {result['unsure']}/{u} = {100 * result['unsure'] / u:.1f} % "
        f"(answered {result['wrong_unanswerable']}); latency p50 {result['p50']:.2f} ms, "
        f"p95 {result['p95']:.2f} ms, max {result['max']:.2f} ms ({result['calls']} answers)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.knowledge")
    parser.add_argument(
        "--set",
        default="heldout",
        choices=(
            "heldout",
            "dev",
            "dev_abstain",
            "dev_naive",
            "dev_fresh",
            "dev_fresh2",
            "dev_check",
        ),
    )
    parser.add_argument("--skip-server", action="store_true")
    parser.add_argument(
        "--quiet", action="store_true", help="summary lines only: the misses are not printed"
    )
    args = parser.parse_args(argv)
    from bot.domain import embeddings

    questions = load_questions(args.set)
    print(f"$ python -m bench.knowledge --set {args.set}")
    print(f"machine: {machine()}; load average {loadavg()}")
    files = embeddings.model_files()
    if files is None:
        print("wordllama is not installed: nothing to measure", file=sys.stderr)
        return 1
    weights, tokenizer = files
    print(
        f"model: {embeddings.MODEL_NAME} (weights {weights.stat().st_size / 1e6:.1f} MB, "
        f"tokenizer {tokenizer.stat().st_size / 1e6:.1f} MB, inside the installed wheel)"
    )
    loads, offline = model_load_seconds()
    print(
        f"model load in a fresh process{' with no network (unshare -rn)' if offline else ''}: "
        + ", ".join(f"{t:.2f} s" for t in loads)
    )
    with tempfile.TemporaryDirectory(prefix="bench-knowledge-") as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/knowledge.db"
        seconds = asyncio.run(prepare_database(url))
        print(f"demo knowledge imported and embedded in {seconds:.2f} s (42 products, 29 articles)")
        print(f"{args.set} set: {len(questions)} questions")
        os.environ["KNOWLEDGE_EMBEDDINGS"] = "off"
        embeddings.load_model.cache_clear()
        baseline = asyncio.run(evaluate(url, questions, embeddings_on=False))
        os.environ.pop("KNOWLEDGE_EMBEDDINGS")
        embeddings.load_model.cache_clear()
        result = asyncio.run(evaluate(url, questions, embeddings_on=True))
        print(f"  baseline, keywords only: {_line(baseline)}")
        print(f"  by meaning ({result['method']} + keywords): {_line(result)}")
        a = result["right"] / result["answerable"]
        u = result["unsure"] / result["unanswerable"]
        print(
            f"  targets: answerable >= 90 % {'met' if a >= 0.9 else 'NOT met'}, "
            f"unanswerable >= 90 % {'met' if u >= 0.9 else 'NOT met'}, "
            f"p95 <= 150 ms {'met' if result['p95'] <= 150 else 'NOT met'}"
        )
        if result["misses"] and not args.quiet:
            print("  misses:")
            print("\n".join(result["misses"]))
        if not args.skip_server:
            sample = [q["q"] for q in questions[:20]]
            off = action_server_memory(url, False, sample)
            on = action_server_memory(url, True, sample)
            for name, m in (("without the model (before)", off), ("with the model (after)", on)):
                print(
                    f"  action server {name}: ready in {m['ready_s']:.1f} s, VmRSS "
                    f"{m['rss_start_mb']:.0f} MB at start, {m['rss_after_mb']:.0f} MB after "
                    f"{len(sample)} knowledge answers"
                )
    print(
        f"load average: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
