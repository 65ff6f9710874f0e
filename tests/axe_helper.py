"""axe-core (tests/vendor/axe-core, MPL-2.0, v4.14.1) in a Playwright page: the WCAG 2.1
A and AA rules, for browser tests of staff screens.

    assert axe_violations(page) == []

The script is evaluated through the DevTools protocol, so the pages' strict
Content-Security-Policy (no inline scripts) stays on while it runs.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

AXE_JS = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"
WCAG_21_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


@cache
def _source() -> str:
    return AXE_JS.read_text(encoding="utf-8")


def axe_violations(page: Any) -> list[str]:
    """The WCAG 2.1 AA violations on the page as it is now: "rule: target (summary)"."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(_source())
    result: dict[str, Any] = page.evaluate(
        "tags => window.axe.run(document, {runOnly: {type: 'tag', values: tags}})", WCAG_21_AA
    )
    return [
        f"{violation['id']}: {node['target']} ({node.get('failureSummary', '').strip()})"
        for violation in result["violations"]
        for node in violation["nodes"]
    ]
