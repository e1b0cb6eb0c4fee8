"""The pages' frame: one layout, one style sheet and one small script, inline, so a page is
a single response that needs nothing else (no CDN, no static route, works offline).

Every value that reaches the HTML goes through `esc`: experiment and variant ids come
from clients, and explanations quote them.
"""

from html import escape
from urllib.parse import quote

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#222}
header{background:#1f2a44;color:#fff;padding:10px 24px;display:flex;gap:24px;align-items:center}
header a{color:#fff;text-decoration:none}header b{font-size:16px}
main{padding:16px 24px;max-width:1100px}
table{border-collapse:collapse;margin:8px 0 16px}th,td{padding:4px 10px;text-align:left;
border-bottom:1px solid #e4e4e4;vertical-align:middle}th{font-weight:600;background:#f6f6f6}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.warn{color:#a4400a}.fail td{background:#fff0ee}.muted{color:#777}
.status{padding:1px 8px;border-radius:9px;background:#eef;white-space:nowrap}
.chart{width:100%;max-width:760px;height:auto;display:block}
.chart .grid{stroke:#eee}.chart .tick{font-size:10px;fill:#666}
.chart .mark{stroke:#555;stroke-width:2;stroke-dasharray:3 3;opacity:.6}
.chart circle.pt{stroke:#333;stroke-width:.4}
figure{margin:12px 0 24px}figcaption{margin-bottom:4px}figcaption b{display:block}
.legend span{margin-right:14px}.legend i{display:inline-block;width:10px;height:10px;
margin-right:4px;border-radius:2px}
#tip{position:absolute;pointer-events:none;background:#222;color:#fff;padding:3px 7px;
border-radius:4px;font-size:12px;max-width:420px;z-index:9}
.outlook{background:#f5f8ff;border:1px solid #dde6ff;padding:8px 14px;border-radius:6px}
form input{padding:4px 8px;font-size:14px;width:260px}
"""

# The hover text of any element with data-tip (SVG <title> tooltips cannot be styled and
# appear only after a delay, so the pages show their own), and the outlook, fetched once
# the page is there when it was not computed yet.
SCRIPT = """
(function(){var tip=document.getElementById('tip');
document.addEventListener('mouseover',function(e){
var el=e.target.closest?e.target.closest('[data-tip]'):null;
if(!el){tip.hidden=true;return;}
tip.textContent=el.getAttribute('data-tip');tip.hidden=false;});
document.addEventListener('mousemove',function(e){
tip.style.left=(e.pageX+12)+'px';tip.style.top=(e.pageY+12)+'px';});
var box=document.getElementById('outlook'),src=box&&box.getAttribute('data-src');
if(src){fetch(src,{headers:{Accept:'application/json'}}).then(function(r){return r.json();})
.then(function(o){box.replaceChildren.apply(box,o.sentences.map(function(t){
var p=document.createElement('p');p.textContent=t;return p;}));box.setAttribute('data-ready','1');})
.catch(function(){box.lastChild.textContent='The outlook could not be computed.';});}})();
"""


def esc(value) -> str:
    return escape("" if value is None else str(value), quote=True)


def experiment_href(experiment_id: str) -> str:
    return "/experiments/" + quote(experiment_id, safe="")


def layout(title: str, body: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        # An empty icon: otherwise the browser asks for /favicon.ico and logs the 404.
        '<link rel="icon" href="data:,">'
        f"<title>{esc(title)} · bandit-api</title><style>{STYLE}</style></head><body>"
        '<header><b>bandit-api</b><a href="/">Experiments</a><a href="/runs">Runs</a>'
        f'</header><main>{body}</main><div id="tip" hidden></div>'
        f"<script>{SCRIPT}</script></body></html>"
    )


def table(headers: list[str], rows: list[str], css: str = "") -> str:
    """rows are ready-made <tr> strings (their cells escaped by the caller)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join(rows)
    return f'<table class="{esc(css)}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def cell(value, numeric: bool = False) -> str:
    return f'<td class="num">{esc(value)}</td>' if numeric else f"<td>{esc(value)}</td>"


def percent(share: float | None, digits: int = 1) -> str:
    return "–" if share is None else f"{share * 100:.{digits}f}%"


def number(value) -> str:
    return "–" if value is None else f"{value:,}"
