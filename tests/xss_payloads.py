"""A corpus of cross-site scripting payloads, shared by the browser tests of every surface
that shows user-provided text (widget, stand-alone chat, console, dashboard).

Each payload would run `alert(...)` (or set `window.__xss`) if it were inserted as HTML,
used as a URL or evaluated as a template; a safe page shows it literally as text. Use
`PAYLOADS` for free text (messages, comments, notes), `NAME_PAYLOADS` where only a single
word survives (the widget greets by first name) and `EMAIL_PAYLOADS` for email fields.
`record_dialogs(page)` collects any dialog a page opens; `injected(page)` tells whether a
payload became markup or ran.
"""

from __future__ import annotations

from typing import Any

PAYLOADS: tuple[str, ...] = (
    "<script>alert('xss-1')</script>",
    "<img src=x onerror=alert('xss-2')>",
    "<svg/onload=alert('xss-3')>",
    "\"><script>alert('xss-4')</script>",
    "'><img src=x onerror=alert('xss-5')>",
    "<iframe src=\"javascript:alert('xss-6')\"></iframe>",
    "javascript:alert('xss-7')",
    "<a href=\"javascript:alert('xss-8')\">click me</a>",
    "<body onload=alert('xss-9')>",
    "<details open ontoggle=alert('xss-10')>",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert('xss-11')>",
    "{{constructor.constructor('alert(\"xss-12\")')()}}",
    "${alert('xss-13')}",
    "</textarea><script>alert('xss-14')</script>",
    "</title><script>alert('xss-15')</script>",
    "<input autofocus onfocus=alert('xss-16')>",
    "<video><source onerror=alert('xss-17')></video>",
    "&lt;script&gt;alert('xss-18')&lt;/script&gt;",
    "<object data=\"javascript:alert('xss-19')\"></object>",
    "<embed src=\"data:text/html,<script>alert('xss-20')</script>\">",
    "https://example.com/\"><img src=x onerror=alert('xss-21')>",
    "<marquee onstart=alert('xss-22')>scrolling</marquee>",
    "<scr<script>ipt>alert('xss-23')</scr</script>ipt>",
    "<form action=\"javascript:alert('xss-24')\"><button>send</button></form>",
    '<meta http-equiv="refresh" content="0;url=javascript:alert(\'xss-25\')">',
    "<base href=\"javascript:alert('xss-26')//\">",
    '" onmouseover="alert(\'xss-27\')" x="',
    "<noscript><p title=\"</noscript><img src=x onerror=alert('xss-28')>\">",
    "<img src=x onerror=\"window.__xss='xss-29'\">",
    "<style>@import 'javascript:alert(\"xss-30\")';</style>",
)

# No whitespace: survive being cut to a first name.
NAME_PAYLOADS: tuple[str, ...] = (
    "<svg/onload=alert('name-1')>",
    "<img/src/onerror=alert('name-2')>",
    "\"><script>alert('name-3')</script>",
    "javascript:alert('name-4')",
    "<iframe/src=javascript:alert('name-5')>",
)

# Valid addresses (quoted local parts) that are markup at the same time.
EMAIL_PAYLOADS: tuple[str, ...] = (
    "\"<svg/onload=alert('mail-1')>\"@example.com",
    "\"<img/src/onerror=alert('mail-2')>\"@example.com",
)

assert len(PAYLOADS) >= 20 and len(set(PAYLOADS)) == len(PAYLOADS)


def record_dialogs(page: Any) -> list[str]:
    """Every alert/confirm/prompt the page opens from now on (dismissed at once)."""
    opened: list[str] = []

    def on_dialog(dialog: Any) -> None:
        opened.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    return opened


def injected(page: Any) -> bool:
    """Whether a payload ran (`window.__xss`) or became an element of the page or of the
    widget's shadow root (elements none of our pages use, but for the dashboard's own
    `details.trend-details`)."""
    result: bool = page.evaluate(
        """() => {
            // details.trend-details is the dashboard's own (the figures behind the trend
            // chart, issue #21); any other <details> came from a payload.
            const risky = "img, svg, iframe, object, embed, video, marquee, "
                + "details:not(.trend-details), math, "
                + "base, meta[http-equiv], noscript, body body, script:not([src])";
            const roots = [document];
            document.querySelectorAll("*").forEach(n => { if (n.shadowRoot) roots.push(n.shadowRoot); });
            return Boolean(window.__xss) || roots.some(r => r.querySelector(risky) !== null);
        }"""
    )
    return result
