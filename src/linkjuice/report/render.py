"""The report page: a Jinja template (autoescaped) with its data, styles and scripts inlined.

Nothing in the page points at another file or host, and a Content-Security-Policy allows only the
page's own scripts (by hash) and no connections, so the browser itself enforces "no network":
even a bug that let crawled text become markup could neither run script nor send anything.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from functools import cache, lru_cache
from importlib import resources
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

__all__ = ["render_page", "embed_json", "content_security_policy", "ASSETS", "DIFF_LABELS"]

# Inlined in this order: the libraries, then linkjuice's own script.
ASSETS = ("graphology.umd.min.js", "sigma.min.js", "echarts.min.js", "report.js")

DIFF_LABELS = (
    ("new_broken", "new broken links"), ("fixed_broken", "fixed broken links"),
    ("new_orphans", "new orphans"), ("fixed_orphans", "orphans now linked"),
    ("juice_moved", "pages whose juice moved"), ("links_added", "links added"),
    ("links_removed", "links removed"), ("pages_added", "URLs added"), ("pages_removed", "URLs gone"),
)

# Text that would end a script element or start an HTML comment inside one.
_SCRIPT_BREAKERS = re.compile(r"</script|</style|<!--", re.IGNORECASE)


def embed_json(value: Any) -> Markup:
    """JSON for a <script type="application/json"> element: <, > and & are written as \\u escapes
    (still the same JSON), so no string in it can close the element or open a comment."""
    text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    # U+2028/2029 are valid in JSON; escaping them keeps the block valid JavaScript too.
    return Markup(text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


@cache
def _asset(name: str) -> str:
    text = resources.files("linkjuice.report").joinpath("assets", name).read_text(encoding="utf-8")
    if _SCRIPT_BREAKERS.search(text):  # vendor.sh checks this too; a changed file must not slip by
        raise RuntimeError(f"asset {name} contains </script, </style or <!-- and cannot be inlined")
    return text


@lru_cache(maxsize=1)
def _environment() -> Environment:
    env = Environment(loader=PackageLoader("linkjuice.report", "templates"),
                      autoescape=select_autoescape(["html", "j2"], default=True),
                      trim_blocks=False, lstrip_blocks=False)
    env.globals["fmt"] = _fmt
    return env


def _short(url: Any, origin: str | None) -> str:
    """A URL of the crawled site as its path (the origin is in the page header)."""
    text = "" if url is None else str(url)
    return text[len(origin):] if origin and text.startswith(origin + "/") else text


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _hash(script: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode() + "'"


def content_security_policy(scripts: list[str], *, connect: str = "'none'") -> str:
    hashes = " ".join(_hash(s) for s in scripts)
    return (f"default-src 'none'; script-src {hashes}; style-src 'unsafe-inline'; img-src data: blob:; "
            f"connect-src {connect}; base-uri 'none'; form-action 'none'")


def render_page(payload: dict[str, Any], *, connect: str = "'none'") -> tuple[str, str]:
    """The HTML page for a payload from report_payload, and its Content-Security-Policy (also
    in the page's <meta>; the dashboard sends it as a header too). `connect` is the CSP source
    the page may fetch from: none for a report file, 'self' for the dashboard's API."""
    scripts = [_asset(name) for name in ASSETS]
    csp = content_security_policy(scripts, connect=connect)
    top_columns = payload["top_pages"]["columns"]
    top_pages = [dict(zip(top_columns, row)) for row in payload["top_pages"]["rows"]]
    site = payload["meta"].get("start_url") or "a crawl"
    origin = "/".join(site.split("/", 3)[:3]) if "://" in site else None
    html = _environment().get_template("report.html.j2").render(
        short=lambda url: _short(url, origin),
        p=payload, title=f"Link juice report: {site}", csp=csp, css=Markup(_asset("report.css")),
        scripts=[Markup(s) for s in scripts], data_json=embed_json(payload), top_pages=top_pages,
        diff_labels=DIFF_LABELS,
    )
    return html, csp
