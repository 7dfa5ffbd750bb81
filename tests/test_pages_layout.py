"""Every page at a phone's 390 x 844 and a laptop's 1280 x 800, in Debian's Chromium, with realistic
long data (URL summaries, long names, 3,000-character notes): no horizontal overflow, no clipped
button, no htmx action out of a keyboard's reach (each sits on a link, a button or a field), no
console error, and no serious or critical axe-core violation (issue 15).

The pages are the app's GET routes from the url_map, so a new page is visited without anyone
remembering to add it; routes that answer no HTML page are listed in NOT_PAGES with the reason.
A screenshot (JPEG) of each page and layout is saved under test-artifacts/pages/ (gitignored; set
OPENDUTY_ARTIFACTS to put them elsewhere).

axe-core 4.14.1 is vendored in tests/vendor/axe-core (no network) and evaluated into each page
through the DevTools protocol, which the page's Content-Security-Policy does not apply to, so the
pages are checked under their real CSP.
"""

import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from openduty import incidents, maintenance, password_reset
from openduty.ack_links import ack_token
from openduty.extensions import db
from openduty.models import ApiToken, CoverRequest, Team, TeamMember
from tests import factories, factories_escalation, factories_events, factories_schedules
from tests.browser import log_in

AXE = (Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js").read_text()
ARTIFACTS = Path(os.environ.get("OPENDUTY_ARTIFACTS") or Path(__file__).parent.parent / "test-artifacts") / "pages"
LAYOUTS = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1280, "height": 800}}
NOW = datetime(2026, 3, 4, 12, tzinfo=UTC)

# GET routes that are no page of their own, with why.
NOT_PAGES = {
    "static": "files",
    "health.healthz": "JSON for load balancers",
    "events.heartbeat": "a ping endpoint for monitored jobs",
    "calendar.schedule_feed": "an iCalendar feed",
    "calendar.user_feed": "an iCalendar feed",
    "calendar.legacy_oncall": "JSON for the old on-call API",
    "incidents.count": "the navigation's count badge (a fragment)",
    "users.contact_methods": "a fragment of the profile (htmx)",
    "users.notification_rules": "a fragment of the profile (htmx)",
    "users.notification_rule_form": "a fragment of the profile (htmx)",
    "users.tokens": "a fragment of the profile (htmx)",
    "policies.preview": "a fragment of the policy page (htmx)",
    "reports.incidents_csv": "a CSV download",
    "reports.pages_csv": "a CSV download",
    "reports.oncall_csv": "a CSV download",
    "reports.stylesheet": "the charts' CSS",
    "metrics.metrics": "Prometheus text for scrapers",
}
# Pages that need a query to show something.
QUERIES = {"schedules.shift": "?at=" + (NOW + timedelta(hours=3)).isoformat().replace("+", "%2B")}
# Pages a visitor sees without logging in.
PUBLIC = {"auth.login", "auth.forgot_password", "auth.reset_password", "ack.show"}

URL = "https://grafana.example.com/d/abcdef123456/production-overview?orgId=1&var-host=db-primary-01.eu-west-1.internal&from=now-6h&to=now&viewPanel=42"
LONG_NAME = "Maximiliana Throckmorton-Featherstonehaugh de la Vega"
NOTE = (
    "Paged at 03:12; the primary database stopped accepting writes. Log excerpt follows. "
    + "ERROR pg_stat_activity shows 412 idle-in-transaction sessions held by the billing-reconciliation worker. " * 20
    + URL
    + " sha256:"
    + "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08" * 3
    + " "
)
NOTE = (NOTE * 2)[:3000]


@pytest.fixture
def world(app, admin, clock):
    """One of everything a page shows, with the long values people really paste."""
    clock.set(NOW)
    admin.name = "Ada Admin-Okonkwo-Vandersteen"
    long_user = factories.make_user(name=LONG_NAME, email="maximiliana.throckmorton-featherstonehaugh@example.com")
    other = factories.make_user(name="Bob Member", email="bob@example.com", time_zone="America/New_York")
    method = factories.make_contact_method(long_user, kind="email", address=long_user.email)
    rule = factories.make_notification_rule(long_user, method, delay_minutes=2)
    token, _ = ApiToken.issue(long_user, "Deploy pipeline for payments-api (production, eu-west-1)")
    factories.make_contact_method(admin, kind="email", address=admin.email)

    schedule = factories_schedules.make_schedule(name="Database primary on-call (EU + US follow-the-sun rotation)")
    layer = factories_schedules.make_layer(schedule, [long_user, other, admin], datetime(2026, 3, 2, 9), 1, "days")
    override_note = NOTE[:500]
    override = factories_schedules.make_override(
        schedule, other, NOW + timedelta(hours=2), NOW + timedelta(days=1, hours=3), note=override_note
    )
    policy = factories_escalation.make_policy(
        [(5, [long_user]), (10, [schedule])], name="Payments platform: primary escalation", description=NOTE[:2000]
    )
    service = factories_escalation.make_service(
        policy, name="payments-api.eu-west-1.production.internal (checkout + refunds)", description=NOTE[:2000]
    )
    integration = factories_events.make_integration(service, name="Prometheus Alertmanager (production cluster)")
    email = factories_events.make_email_integration(service)
    factories_events.make_heartbeat(service, name="nightly-backup-verification-job.cron")
    url_incident = factories_events.make_incident(integration, summary=URL, details={"url": URL})
    long_incident = factories_events.make_incident(
        integration, summary="Disk usage above 95% on " + ", ".join(f"db-replica-{n:02}" for n in range(12))
    )
    factories_events.make_incident(integration, summary="TLS certificate expires in 3 days", severity="warning")
    factories_events.make_incident(integration, summary="Queue depth recovered", severity="info")
    incidents.acknowledge(long_incident, by=admin)
    incidents.add_note(url_incident, NOTE, by=admin)
    db.session.commit()

    team = Team(name="Site reliability engineering (EMEA)", description=NOTE[:2000])
    team.members = [TeamMember(user=long_user, role="manager"), TeamMember(user=other)]
    db.session.add(team)
    planned = {"start": (NOW + timedelta(days=2)).isoformat(), "end": (NOW + timedelta(days=3)).isoformat()}
    window = maintenance.save_window(None, {**planned, "service_ids": [service.id], "description": NOTE[:1000]})
    db.session.commit()
    event_rule = factories_events.make_rule(service, "suppress", [("summary", "contains", URL)])
    global_rule = factories_events.make_rule(None, "suppress", [("source", "equals", "db-primary-01.eu-west-1")])
    cover = CoverRequest(
        schedule_id=schedule.id, layer_id=layer.id, requester_id=admin.id, start=NOW + timedelta(days=1),
        end=NOW + timedelta(days=2), status="open", note=NOTE[:500], created_at=NOW,
    )  # fmt: skip
    db.session.add(cover)
    db.session.commit()
    reset = password_reset.reset_url(other).rsplit("/password/reset/", 1)[1]
    return {
        "admin": admin,
        "ids": {
            "incident_id": url_incident.id,
            "service_id": service.id,
            "integration_id": email.id,
            "event_rule_id": event_rule.id,
            "global_rule_id": global_rule.id,
            "policy_id": policy.id,
            "level_id": policy.levels[0].id,
            "layer_id": layer.id,
            "override_id": override.id,
            "method_id": method.id,
            "rule_id": rule.id,
            "token_id": token.id,
            "schedule_id": schedule.id,
            "request_id": cover.id,
            "team_id": team.id,
            "user_id": long_user.id,
            "window_id": window.id,
            "token": ack_token([url_incident.id, long_incident.id], admin.id),
        },
        "reset_token": reset,
    }


def _pages(app, world) -> list[tuple[str, str]]:
    """(endpoint, path) of every GET route that answers an HTML page, from the url_map."""
    pages = []
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if "GET" not in (rule.methods or set()) or rule.endpoint in NOT_PAGES or rule.rule.startswith("/api/"):
            continue
        ids = world["ids"]
        if rule.endpoint == "auth.reset_password":
            ids = {**ids, "token": world["reset_token"]}
        missing = [arg for arg in rule.arguments if arg not in ids]
        assert not missing, f"{rule.rule}: add an id for {missing} to the world (or the route to NOT_PAGES)"
        path = rule.rule
        for arg in rule.arguments:
            path = re.sub(rf"<(?:\w+:)?{arg}>", str(ids[arg]), path)
        pages.append((rule.endpoint, path + QUERIES.get(rule.endpoint, "")))
    return pages


# Overflow: the document is no wider than the window, nothing but code scrolls sideways, and a
# button or badge neither clips nor breaks its label over lines.
CHECK_LAYOUT = """(width) => {
  const visible = (el) => el.offsetParent !== null || getComputedStyle(el).position === "fixed";
  // Against the layout's width: a phone (is_mobile) widens its layout viewport to fit what overflows.
  const wide = Math.max(document.documentElement.scrollWidth, window.innerWidth) - width;
  const scrolls = [...document.querySelectorAll("body *")]
    .filter((el) => !el.matches("pre, pre *, textarea, input, select") && visible(el))
    .filter((el) => ["auto", "scroll"].includes(getComputedStyle(el).overflowX) && el.scrollWidth > el.clientWidth + 1)
    .map((el) => el.outerHTML.slice(0, 100));
  const lines = (el) => {
    const range = document.createRange();
    range.selectNodeContents(el);
    return new Set([...range.getClientRects()].filter((r) => r.width > 2).map((r) => Math.round(r.top))).size;
  };
  const broken = [...document.querySelectorAll("button, a.button, .badge, .severity")]
    .filter((el) => visible(el) && (el.scrollWidth > el.clientWidth + 1 || lines(el) > 1))
    .map((el) => el.outerHTML.slice(0, 120));
  // An htmx action on a click must sit on something a keyboard reaches (a link, a button, a field).
  const unreachable = [...document.querySelectorAll("[hx-get], [hx-post], [hx-put], [hx-patch], [hx-delete]")]
    .filter((el) => !el.matches("a[href], button, input, select, textarea, form, [tabindex]"))
    .filter((el) => /(^|[\\s,])click\\b/.test(el.getAttribute("hx-trigger") || "click"))
    .map((el) => el.outerHTML.slice(0, 120));
  return {wide, scrolls, broken, unreachable};
}"""

RUN_AXE = """async () => {
  const result = await axe.run(document, {resultTypes: ["violations"]});
  return result.violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => v.id + " (" + v.impact + "): " + v.nodes.slice(0, 3).map((n) => n.target.join(" ")).join(" | "));
}"""


@pytest.mark.usefixtures("channels_configured")
def test_every_page_fits_both_layouts_and_passes_axe(app, browser, live_server, world):
    pages = _pages(app, world)
    assert len(pages) > 30, pages
    problems = []
    for layout, viewport in LAYOUTS.items():
        folder = ARTIFACTS / layout
        folder.mkdir(parents=True, exist_ok=True)
        for public in (True, False):
            context = browser.new_context(viewport=viewport, is_mobile=layout == "phone", has_touch=layout == "phone")
            page = context.new_page()
            errors = []
            page.on("console", lambda m, errors=errors: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e, errors=errors: errors.append(str(e)))
            if not public:
                log_in(page, live_server.url, world["admin"].email)
            for endpoint, path in pages:
                if (endpoint in PUBLIC) != public:
                    continue
                del errors[:]
                response = page.goto(live_server.url + path)  # "load": scripts ran; no wait for idle
                where = f"{layout} {path}"
                if response.status != 200:
                    problems.append(f"{where}: HTTP {response.status}")
                    continue
                layout_check = page.evaluate(CHECK_LAYOUT, viewport["width"])
                if layout_check["wide"] > 0:
                    problems.append(f"{where}: {layout_check['wide']} px wider than the window")
                problems.extend(f"{where}: scrolls sideways {html}" for html in layout_check["scrolls"])
                problems.extend(f"{where}: clipped or broken label {html}" for html in layout_check["broken"])
                problems.extend(f"{where}: not keyboard reachable {html}" for html in layout_check["unreachable"])
                page.evaluate(AXE)
                problems.extend(f"{where}: axe {v}" for v in page.evaluate(RUN_AXE))
                name = endpoint.replace(".", "-")
                page.screenshot(path=str(folder / f"{name}.jpeg"), full_page=True, type="jpeg", quality=80)
                problems.extend(f"{where}: console {e}" for e in errors)  # last: late requests' errors too
            context.close()
    assert not problems, "\n".join(problems)
