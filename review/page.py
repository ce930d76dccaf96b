"""The review page: pending cases with their images, one button per class and "not a vehicle".

A standard-library HTTP server on 127.0.0.1 over a *target* (``local.review_cli.ReviewTarget``:
``classes``, ``cases()``, ``image(s3_uri)``, ``answer(case_id, label, reviewer)``,
``labels_status()``), local mode's
or a deployed stack's (``review --stack NAME serve``); all review logic stays in review.cases.
Routes:

    GET  /                      the page (cases are fetched by its script)
    GET  /api/cases             pending cases as JSON (``Case.public()``)
    GET  /api/labels            new labels since the last retrain, of N (``labels_status()``)
    GET  /image/<case id>       the case's image bytes
    POST /api/answer            {"case_id", "label"} -> the Answer as JSON (400 with
                                {"error", "message"} for a refused answer)

Keys: 1..N answer the first case with class N, 0 or n answers "not a vehicle". A POST must
carry the page's per-server token (header X-Review-Token) and the Host header must be this
server's loopback address: another web site open in the same browser can neither answer
(no token) nor reach it through DNS rebinding (wrong Host).
"""

from __future__ import annotations

import html
import json
import mimetypes
import secrets
import threading
from dataclasses import asdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from lambdas.config import NOT_A_VEHICLE
from review.cases import ReviewError

HOST = "127.0.0.1"

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Scones Unlimited: review</title>
<style>
 body {{ font-family: system-ui, sans-serif; margin: 1.5rem; background: #fafafa; }}
 .case {{ display: flex; gap: 1rem; align-items: center; background: #fff; padding: .8rem;
         border: 1px solid #ddd; border-radius: 8px; margin-bottom: .8rem; }}
 .case:first-of-type {{ border-color: #2a6; box-shadow: 0 0 0 2px #2a63; }}
 .case img {{ width: 128px; height: 128px; image-rendering: pixelated; border-radius: 4px; }}
 button {{ font-size: 1rem; margin: .2rem; padding: .4rem .8rem; cursor: pointer; }}
 kbd {{ background: #eee; border-radius: 3px; padding: 0 .3rem; }}
 .meta {{ color: #555; font-size: .9rem; }}
 #status {{ min-height: 1.4rem; color: #264; }}
</style></head>
<body data-token="{token}">
<h1>Review cases</h1>
<p class="meta">Keys for the highlighted (oldest) case: {keys}.</p>
<p id="labels" class="meta"></p>
<p id="status" role="status"></p>
<div id="cases"></div>
<script>
const CLASSES = {classes};
const NONE = {none};
const token = document.body.dataset.token;
async function load() {{
  const cases = await (await fetch('/api/cases')).json();
  // A hint only: the cases show even if it cannot be read.
  const labels = await fetch('/api/labels').then((r) => r.json()).catch(() => ({{}}));
  document.getElementById('labels').textContent = labels.known
    ? 'Labels since the last retrain: ' + labels.new + ' of ' + labels.retrain_after +
      (labels.due ? ' (time to retrain)' : '')
    : '';
  const root = document.getElementById('cases');
  root.replaceChildren();
  if (!cases.length) {{ root.textContent = 'No pending cases.'; return; }}
  for (const c of cases) {{
    const div = document.createElement('div');
    div.className = 'case'; div.dataset.caseId = c.case_id;
    const img = document.createElement('img');
    img.src = '/image/' + encodeURIComponent(c.case_id); img.alt = c.image;
    const info = document.createElement('div');
    const probs = Object.entries(c.probabilities).map(([k, v]) => k + ' ' + v.toFixed(3));
    info.innerHTML = '<div><b></b></div><div class="meta"></div><div class="meta"></div>';
    info.querySelector('b').textContent = c.case_id;
    info.querySelectorAll('.meta')[0].textContent = probs.join(', ') + ' | driver ' +
      (c.driver_id || '-') + (c.in_dead_letter_queue ? ' | dead-letter queue' : '');
    // Whatever reason the case names (LowConfidence, another gate's, safe mode...).
    info.querySelectorAll('.meta')[1].textContent = c.reason + (c.detail ? ': ' + c.detail : '');
    const buttons = document.createElement('div');
    CLASSES.forEach((name, i) => buttons.append(button(c.case_id, name, (i + 1) + ' ' + name)));
    buttons.append(button(c.case_id, NONE, '0 not a vehicle'));
    info.append(buttons);
    div.append(img, info);
    root.append(div);
  }}
}}
function button(caseId, label, text) {{
  const b = document.createElement('button');
  b.textContent = text; b.dataset.label = label;
  b.onclick = () => answer(caseId, label);
  return b;
}}
async function answer(caseId, label) {{
  const r = await fetch('/api/answer', {{method: 'POST',
    headers: {{'Content-Type': 'application/json', 'X-Review-Token': token}},
    body: JSON.stringify({{case_id: caseId, label: label}})}});
  const body = await r.json();
  document.getElementById('status').textContent = r.ok
    ? caseId + ': ' + body.outcome + (body.labelled_key ? ' (' + body.labelled_key + ')' : '')
    : caseId + ': ' + body.message;
  await load();
}}
document.addEventListener('keydown', (e) => {{
  const first = document.querySelector('.case');
  if (!first) return;
  const n = Number(e.key);
  if (e.key === '0' || e.key === 'n') answer(first.dataset.caseId, NONE);
  else if (n >= 1 && n <= CLASSES.length) answer(first.dataset.caseId, CLASSES[n - 1]);
}});
load();
</script></body></html>
"""


def render_page(classes: list[str], token: str) -> str:
    keys = ", ".join(f"<kbd>{i + 1}</kbd> {html.escape(c)}" for i, c in enumerate(classes))
    return _PAGE.format(
        token=html.escape(token),
        keys=keys + ", <kbd>0</kbd>/<kbd>n</kbd> not a vehicle",
        # json.dumps output inside <script>: escape "</" so a class name cannot end the script.
        classes=json.dumps(classes).replace("</", "<\\/"),
        none=json.dumps(NOT_A_VEHICLE),
    )


def make_server(target: Any, port: int = 0, reviewer: str | None = None) -> ThreadingHTTPServer:
    """A server bound to 127.0.0.1:port (0: a free one); call serve_forever() to run it."""
    token = secrets.token_urlsafe(24)
    # One queue operation at a time: a read hides the messages for a few seconds, so a second
    # read running alongside would miss them. Images are served from the last listing.
    lock = threading.Lock()
    listed: dict[str, Any] = {}

    def current_cases() -> list[Any]:
        with lock:
            cases = target.cases()
            listed.clear()
            listed.update({c.case_id: c for c in cases})
        return cases

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet: the page polls
            return

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, data: Any) -> None:
            self._send(status, json.dumps(data).encode(), "application/json")

        def _host_ok(self) -> bool:
            port = self.server.server_address[1]
            return self.headers.get("Host", "") in (f"{HOST}:{port}", f"localhost:{port}")

        def do_GET(self) -> None:
            if not self._host_ok():
                return self._json(421, {"error": "WrongHost", "message": "use 127.0.0.1"})
            if self.path == "/":
                return self._send(
                    200, render_page(list(target.classes), token).encode(), "text/html"
                )
            if self.path == "/api/cases":
                return self._json(200, [c.public() for c in current_cases()])
            if self.path == "/api/labels":
                return self._json(200, target.labels_status())
            if self.path.startswith("/image/"):
                from urllib.parse import unquote

                case_id = unquote(self.path.removeprefix("/image/"))
                case = listed.get(case_id)
                if case is None:
                    return self._json(404, {"error": "UnknownCase", "message": case_id})
                kind = mimetypes.guess_type(case.image)[0] or "application/octet-stream"
                return self._send(200, target.image(case.image), kind)
            return self._json(404, {"error": "NotFound", "message": self.path})

        def do_POST(self) -> None:
            if not self._host_ok():
                return self._json(421, {"error": "WrongHost", "message": "use 127.0.0.1"})
            if self.path != "/api/answer":
                return self._json(404, {"error": "NotFound", "message": self.path})
            if not secrets.compare_digest(self.headers.get("X-Review-Token", ""), token):
                return self._json(403, {"error": "Forbidden", "message": "missing page token"})
            try:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(min(length, 10_000)) or b"{}")
                case_id, label = str(body["case_id"]), str(body["label"])
            except (ValueError, KeyError, TypeError):
                return self._json(
                    400, {"error": "InvalidRequest", "message": "need JSON case_id and label"}
                )
            try:
                with lock:
                    answer = target.answer(case_id, label, reviewer)
            except ReviewError as exc:
                return self._json(400, {"error": type(exc).__name__, "message": str(exc)})
            return self._json(200, asdict(answer))

    return ThreadingHTTPServer((HOST, port), Handler)


def serve(target: Any, port: int = 0, reviewer: str | None = None) -> None:
    server = make_server(target, port, reviewer)
    print(f"review page: http://{HOST}:{server.server_address[1]}/  (Ctrl-C stops it)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
