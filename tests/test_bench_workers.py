"""bench.chat_load.workers (issue #25 item 6): the worker counts and the ports it uses."""

from __future__ import annotations

import pytest

from bench.chat_load.prod import PROD_PORTS
from bench.chat_load.workers import parse_args, ports


def test_each_worker_count_gets_its_own_rasa_ports_and_the_benchs_other_ports() -> None:
    args = parse_args(["--workers", "1,2,3", "--web", "1"])
    assert args.counts == [1, 2, 3]
    chosen = [ports(n, args.web) for n in args.counts]
    assert [len(p.rasa) for p in chosen] == [1, 2, 3]
    assert all(len(set(p.rasa)) == len(p.rasa) for p in chosen)
    assert all(p.web == PROD_PORTS.web[:1] and p.actions == PROD_PORTS.actions for p in chosen)


def test_worker_counts_outside_the_port_list_are_refused() -> None:
    with pytest.raises(SystemExit):
        parse_args(["--workers", "0,2"])
    with pytest.raises(SystemExit):
        parse_args(["--workers", "5"])
