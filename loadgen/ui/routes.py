"""The Contention tab's web side: Flask routes on Locust's web UI app, and the extended-tab table.

- ``/contention``: a self-contained page (no CDN) with live charts, polling
- ``/contention/data``: the JSON it polls;
- ``/contention/download/<file>``: ``attempts.parquet``, ``run.json`` (and ``report.html``
  when ``loadgen.report`` exists) for the current or last test;
- a "Contention" tab inside Locust's own UI (its ``extended_tabs`` extension point),
  fed through the ``extended_stats`` of ``/stats/requests``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

from flask import Response, jsonify, request, send_file

from loadgen.errors import LoadgenError
from loadgen.results.metrics import CONFLICT_RATE, CONFLICT_RATE_DEFINITION, KIND_LABELS, LABELS, breakdown, percent
from loadgen.targets.spec import TargetSpec, make_target
from loadgen.ui.form import FORM_TYPES, scenario_from_options

if TYPE_CHECKING:
    from locust.env import Environment
    from locust.web import WebUI

__all__ = ["attach", "tab_rows", "TAB_KEY", "Plugin"]


class Plugin(Protocol):
    """What the routes ask of loadgen's state in the Locust process (loadgen.ui.webui.LoadgenPlugin).

    A Protocol, as psycopg_pool's abc.py does: the plugin attaches the routes, and the
    routes need not import the plugin's module back.
    """

    env: Environment
    run_dir: Path | None

    @property
    def role(self) -> str: ...
    def dsn(self) -> str: ...
    def users_asked(self) -> int: ...
    def data(self) -> dict[str, Any]: ...
    def attempts_parquet(self) -> BinaryIO | Path | None: ...
    def run_json(self) -> bytes | Path | None: ...
    def draw_missing_report(self, run_dir: Path) -> None: ...
    def make_target(self) -> Any: ...


TAB_KEY = "contention"
_PAGE = Path(__file__).with_name("static") / "contention.html"
#: Runner states between a stop request and "stopped".
_STOPPING_STATES = ("cleanup", "stopping")


#: Opens the start form's "Custom parameters" panel once React has drawn it (Locust keeps it collapsed).
_OPEN_FIELDS = """<script>
(() => {
  const open = () => {
    const summary = [...document.querySelectorAll("[aria-expanded]")].find((e) => e.textContent.trim() === "Custom parameters");
    if (!summary) return false;
    if (summary.getAttribute("aria-expanded") !== "true") summary.click();
    return true;
  };
  if (!open()) {
    const watch = new MutationObserver(() => { if (open()) watch.disconnect(); });
    watch.observe(document.documentElement, {childList: true, subtree: true});
  }
})();
</script>
"""


def target_description(plugin: Plugin) -> str:
    """Where the test runs, without secrets: ``embedded PostgreSQL at postgresql://...`` for the Host field."""
    try:
        target = plugin.make_target()
    except LoadgenError:
        return str(getattr(plugin.env.parsed_options, "target", "embedded"))
    d = target.describe()
    where = d.get("url") or d.get("dsn") or d.get("endpoint") or ""
    return f"loadgen target {target.kind}" + (f": {where}" if where else "")


def _report_available() -> bool:
    try:
        return importlib.util.find_spec("loadgen.report") is not None
    except (ImportError, ValueError):
        return False


#: What the tab shows for a figure not known yet (as its page's script does).
_UNKNOWN = "–"


def _num(x: float | None, digits: int = 4) -> str:
    return _UNKNOWN if x is None else f"{x:.{digits}f}"


def tab_rows(data: dict[str, Any]) -> list[dict[str, str]]:
    """The numbers for Locust's own table-shaped tab: section, metric, value."""
    t = data["totals"]
    rows = [
        {"section": "headline", "metric": LABELS["conflict_rate"], "value": percent(t["conflict_rate"], missing=_UNKNOWN)},
        {
            "section": "headline",
            "metric": "conflicts by kind",
            "value": breakdown(t.get("conflicts_by_kind") or {}, KIND_LABELS) or _UNKNOWN,
        },
        {"section": "headline", "metric": LABELS["retried_share"], "value": percent(t["retried_share"], missing=_UNKNOWN)},
        {"section": "headline", "metric": LABELS["retries_per_commit"], "value": _num(t["retries_per_commit"])},
        {
            "section": "headline",
            "metric": "attempts / commits / transactions",
            "value": f"{t['attempts']} / {t['commits']} / {t['transactions']}",
        },
        {"section": "headline", "metric": "most attempts for one transaction", "value": str(t["max_attempts"])},
    ]
    if data.get("timeline"):
        last = data["timeline"][-1]
        rows.append(
            {"section": "now", "metric": f"{CONFLICT_RATE}, last second", "value": percent(last["conflict_rate"], missing=_UNKNOWN)}
        )
        rows.append({"section": "now", "metric": LABELS["throughput_commits_per_s"], "value": _num(last["throughput_commits_per_s"], 1)})
    for h in t["attempts_histogram"]:
        rows.append({"section": "attempts per transaction", "metric": f"{h['attempts']} attempt(s)", "value": str(h["transactions"])})
    for o in t["outcomes"]:
        rows.append(
            {
                "section": "outcomes by SQLSTATE",
                "metric": f"{o['outcome']} ({o['sqlstate'] or 'no SQLSTATE'})",
                "value": f"{o['count']} ({percent(o['share'], missing=_UNKNOWN)})",
            }
        )
    for a in t["hot_accounts"][:10]:
        rows.append(
            {"section": "hottest accounts", "metric": f"account {a['account']}", "value": f"{a['contention_failures']} contention failures"}
        )
    if data.get("error"):
        rows.append({"section": "error", "metric": "loadgen", "value": data["error"]})
    rows.append({"section": "more", "metric": "live charts", "value": "open ./contention"})
    return rows


def _scrub_secrets(web_ui: WebUI, plugin: Plugin) -> None:
    """Keep secret options' command-line values out of the page's template arguments, and speak loadgen
    in the start form: its Host field shows where the test runs (the target's redacted description),
    so Locust's "no host attribute" notice never shows."""
    original = web_ui.update_template_args

    def update_template_args() -> None:
        original()
        for option in (web_ui.template_args.get("extra_options") or {}).values():
            if option.get("is_secret"):
                option["default_value"] = ""
        web_ui.template_args["host"] = target_description(plugin)
        web_ui.template_args["missing_host_warning"] = False

    web_ui.update_template_args = update_template_args  # type: ignore[method-assign]


def _start_form_speaks_loadgen(app: Any) -> None:
    """Locust's start form with loadgen's fields in sight and in their declared order."""
    # The page gets its options through Jinja's tojson, which sorts keys: the start form would list
    # loadgen's fields alphabetically. Kept in the order they were declared: target first, then the
    # workload (the knob table's order), then the retry policy and the rest.
    app.jinja_env.policies["json.dumps_kwargs"] = {"sort_keys": False}

    @app.after_request
    def open_loadgen_fields(response: Response) -> Response:
        # Locust's form keeps its custom parameters (target, workload) in a collapsed panel: open it
        # when the page has drawn it, so loadgen's own fields are in sight with Locust's.
        if request.path in ("/", "/index.html") and response.mimetype == "text/html" and not response.direct_passthrough:
            page = response.get_data(as_text=True)
            if "</body>" in page:
                response.set_data(page.replace("</body>", _OPEN_FIELDS + "</body>", 1))
        return response


def attach(plugin: Plugin, web_ui: WebUI) -> None:
    app = web_ui.app
    assert app is not None
    guard = web_ui.auth_required_if_enabled
    report = _report_available()
    _scrub_secrets(web_ui, plugin)
    _start_form_speaks_loadgen(app)

    downloads = [
        {"href": "./contention", "title": "Contention: live charts"},
        {"href": "./contention/download/attempts.parquet", "title": "Download attempts.parquet (current or last test)"},
        {"href": "./contention/download/run.json", "title": "Download run.json (current or last test)"},
    ]
    if report:
        downloads.append({"href": "./contention/download/report.html", "title": "Open the loadgen report (last test)"})
    web_ui.template_args["extended_tabs"] = [{"title": "Contention", "key": TAB_KEY}]
    web_ui.template_args["extended_tables"] = [
        {
            "key": TAB_KEY,
            "structure": [
                {"key": "section", "title": "Section"},
                {"key": "metric", "title": "Metric"},
                {"key": "value", "title": "Value"},
            ],
        }
    ]
    web_ui.template_args["extended_csv_files"] = downloads

    @app.route("/contention")
    @guard
    def contention_page() -> Response:
        return send_file(_PAGE, mimetype="text/html", max_age=0)

    @app.route("/contention/data")
    @guard
    def contention_data() -> Response:
        data = plugin.data()
        data["downloads"] = {"report": report}
        # The page titles the figure with the one label (loadgen.results.metrics), not a copy of it.
        data["labels"] = {"conflict_rate": CONFLICT_RATE, "conflict_rate_definition": CONFLICT_RATE_DEFINITION, "kinds": KIND_LABELS}
        return jsonify(data)

    @app.route("/contention/download/<name>")
    @guard
    def contention_download(name: str) -> Response:
        found: BinaryIO | Path | bytes | None
        if name == "attempts.parquet":
            found = plugin.attempts_parquet()
            mimetype = "application/vnd.apache.parquet"
        elif name == "run.json":
            found = plugin.run_json()
            mimetype = "application/json"
        elif name == "report.html" and report:
            found = _report(plugin)
            mimetype = "text/html"
        else:
            return Response(f"no such download: {name}\n", status=404, mimetype="text/plain")
        if found is None and plugin.role == "master":
            msg = "distributed mode: attempts stay on the workers; the master has no attempts to download\n"
            return Response(msg, status=404, mimetype="text/plain")
        if found is None:
            return Response("no test has run yet\n", status=404, mimetype="text/plain")
        if not isinstance(found, bytes):  # a file, by path or open
            return send_file(found, mimetype=mimetype, as_attachment=name != "report.html", download_name=name, max_age=0)
        resp = Response(found, mimetype=mimetype)
        resp.headers["Content-Disposition"] = f"attachment; filename={name}"
        return resp

    @app.before_request
    def check_swarm_form() -> Response | None:
        # Say what is wrong in the form's own error line, before Locust starts anything.
        if request.method != "POST" or not request.path.endswith("/swarm"):
            return None
        return _check_form(plugin)

    @app.after_request
    def add_contention_rows(response: Response) -> Response:
        if request.path.endswith("/stats/requests") and response.is_json:
            body = response.get_json()
            if isinstance(body, dict):
                if body.get("state") in _STOPPING_STATES:
                    # Locust's page polls only while it reads running or spawning. A poll landing
                    # while users finish their last transaction froze it on CLEANUP for good
                    # (seen in tests/ui/test_webui.py); "running" keeps it polling until "stopped".
                    body["state"] = "running"
                data = plugin.data()
                body["extended_stats"] = [{"key": TAB_KEY, "data": tab_rows(data)}]
                response.set_data(jsonify(body).get_data())
        return response


def _check_form(plugin: Plugin) -> Response | None:
    opts = plugin.env.parsed_options
    values = {k: getattr(opts, k, None) for k in FORM_TYPES}
    for key in ("run_time", "spawn_rate"):
        values[key] = None
    for key, kind in FORM_TYPES.items():
        if key in request.form:
            text = request.form[key].strip()
            try:
                values[key] = kind(text)
            except ValueError:
                return _refuse(plugin, f"{key.replace('_', ' ')}: not a {'whole number' if kind is int else 'number'}: {text!r}")
    try:
        users = int(request.form.get("user_count") or plugin.users_asked())
    except ValueError:
        return None  # Locust answers that one itself
    try:
        scenario_from_options(SimpleNamespace(**values), users)
        if values["target"] == "postgres" and not (request.form.get("dsn") or plugin.dsn()):
            raise LoadgenError("target postgres needs a dsn")
        if getattr(plugin.env.runner, "state", None) not in ("running", "spawning"):
            # A new test: make sure the database is there (and big enough) before users spawn.
            dsn = request.form.get("dsn") or plugin.dsn()
            target_kind = str(values["target"])
            make_target(TargetSpec.from_options({"kind": target_kind, "dsn": dsn if target_kind != "embedded" else None})).prepare(users)
    except LoadgenError as e:
        return _refuse(plugin, str(e))
    return None  # each user opens its own connection when it starts


def _refuse(plugin: Plugin, message: str) -> Response:
    return jsonify({"success": False, "message": message, "host": plugin.env.host})


def _report(plugin: Plugin) -> Path | None:
    """The last test's ``report.html`` (written at test stop; made now if it is missing)."""
    run_dir = plugin.run_dir
    if run_dir is None:
        return None
    path = run_dir / "report.html"
    if not path.exists():
        plugin.draw_missing_report(run_dir)
    return path if path.exists() else None
