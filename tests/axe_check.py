"""axe-core (tests/vendor/axe.min.js, 4.10.2, MPL-2.0) in a Playwright page: WCAG 2.1 AA.

    install_axe(context)            # before the first page of the context is opened
    assert axe_violations(page) == []

The script is added as an init script (CDP), which the pages' Content-Security-Policy
does not block, so the pages are checked under their real CSP.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

AXE = Path(__file__).parent / "vendor" / "axe.min.js"
WCAG21AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


def install_axe(context: Any) -> None:
    context.add_init_script(path=str(AXE))


def axe_violations(page: Any) -> list[str]:
    """'rule: selector (summary)' of every WCAG 2.1 A/AA violation on the page as it is."""
    found: list[dict[str, Any]] = page.evaluate(
        """async (tags) => {
            const result = await axe.run(document, { runOnly: { type: "tag", values: tags } });
            return result.violations.map((v) => ({ id: v.id, nodes: v.nodes.map((n) => ({
                target: n.target.join(" "), summary: n.failureSummary })) }));
        }""",
        WCAG21AA,
    )
    return [f"{v['id']}: {n['target']} ({n['summary']})" for v in found for n in v["nodes"]]
