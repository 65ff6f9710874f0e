"""The console's and the dashboard's HTML pages: one file per page, the shared parts added here.

A page file (`static/console/queue.html`, `static/dashboard/bot.html`, ...) holds only what
is its own: a `<head>` with its title, its own stylesheets and scripts, and its `<body>`.
`render` makes the whole document of it:

* the doctype and `<html lang="en">` around it;
* first in the head, the area's `_head.html` (the meta tags and the area's stylesheet);
* in the body, where the page says `<!-- topbar -->`, the area's `_topbar.html` (the
  header with the brand and the navigation). On the console the comment names the page's
  own link, `<!-- topbar /console/history -->`: that link is marked `aria-current="page"`
  (a page not in the shared navigation, such as the knowledge base, takes the third link's
  place), and `live` adds the live connection's status (`<!-- topbar /console/ live -->`).

Nothing else changes: the document the browser gets is the one a whole file gave before.
Pages are read at each request (they are small), so an edited page shows on reload.
"""

from __future__ import annotations

import re
from html import escape
from pathlib import Path
from typing import Final

from aiohttp import web

STATIC = Path(__file__).parent / "static"
CONSOLE: Final = STATIC / "console"
DASHBOARD: Final = STATIC / "dashboard"

_TOPBAR = re.compile(r"^(?P<indent>[ \t]*)<!-- topbar(?P<args>[^>]*?) -->$", re.M)
_NAV_LINK = re.compile(r'<a href="(?P<href>[^"]+)">(?P<label>[^<]+)</a>')
_LIVE = '<p id="live" class="live" role="status" data-state="connecting">Connecting…</p>'
# Pages of the console that have no place in its shared navigation: the page's own link
# stands in for the third one (canned replies) there.
_OWN_LINKS: Final = {"/console/knowledge": "Knowledge", "/console/review": "Review inbox"}


def _topbar(folder: Path, args: str, indent: str) -> str:
    words = args.split()
    current = words[0] if words and words[0] != "live" else None
    bar = (folder / "_topbar.html").read_text(encoding="utf-8")
    if current in _OWN_LINKS:
        links = _NAV_LINK.findall(bar)
        third_href, third_label = links[2]
        bar = bar.replace(
            f'<a href="{third_href}">{third_label}</a>',
            f'<a href="{current}">{escape(_OWN_LINKS[current])}</a>',
        )
    if current is not None:
        bar = bar.replace(f'<a href="{current}">', f'<a href="{current}" aria-current="page">')
    bar = bar.replace("<!-- live -->", _LIVE if "live" in words else "")
    lines = [line for line in bar.splitlines() if line.strip()]
    return "\n".join(indent + line if line else line for line in lines)


def render(folder: Path, name: str) -> str:
    """The whole HTML document of the page `name` of the area in `folder`."""
    page = (folder / name).read_text(encoding="utf-8")
    head = (folder / "_head.html").read_text(encoding="utf-8").rstrip("\n")
    page = page.replace("<head>\n", "<head>\n" + head + "\n", 1)
    page = _TOPBAR.sub(lambda m: _topbar(folder, m["args"], m["indent"]), page)
    return '<!doctype html>\n<html lang="en">\n' + page.rstrip("\n") + "\n</html>\n"


def response(folder: Path, name: str, cache: str = "no-store") -> web.Response:
    return web.Response(
        text=render(folder, name), content_type="text/html", headers={"Cache-Control": cache}
    )
