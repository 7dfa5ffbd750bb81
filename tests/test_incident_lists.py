"""Incident lists (API and console): keyset paging, search, capped counts, bad cursors (issue 11).

Run on SQLite and on PostgreSQL (DATABASE_URL): search takes a different index on each (FTS5,
pg_trgm), and these tests hold both to the same answers.
"""

import html
import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event

from openduty import incident_lists as lists
from openduty.extensions import db
from openduty.models import Incident
from tests import factories, factories_events

BASE = datetime(2026, 3, 2, 9, tzinfo=UTC)


def _incidents(count: int, integration=None, **fields) -> list[int]:
    """`count` incidents, three to a second (ties in the sort, broken by id), oldest first."""
    integration = integration or factories_events.make_integration()
    ids = []
    for n in range(count):
        incident = factories_events.make_incident(integration, summary=f"Problem {n}", **fields)
        incident.created_at = BASE + timedelta(seconds=n // 3)
        ids.append(incident.id)
    db.session.commit()
    return ids


def _follow(get, first: str) -> list[list[int]]:
    """Every page from `first` on, by `next` links; calls get(url) and returns the pages' ids."""
    pages, url = [], first
    while url:
        answer = get(url)
        assert answer.status_code == 200, answer.get_data(as_text=True)
        pages.append([i["id"] for i in answer.json["incidents"]])
        url = answer.json["next"]
        assert answer.json["more"] is (url is not None)
        assert answer.headers.get("Link") == (f'<{url}>; rel="next"' if url else None)
        assert len(pages) < 100, "the next links go round in circles"
    return pages


def test_api_cursor_pages_give_every_incident_once_while_incidents_arrive(api, admin):
    api.as_user(admin)
    integration = factories_events.make_integration()
    existing = _incidents(23, integration)
    arrived = []

    def get_and_change(url):
        answer = api.get(url)
        # Between pages: new incidents arrive, and an older one is resolved (status=all keeps it).
        arrived.append(factories_events.make_incident(integration, summary="Arrived late").id)
        db.session.get(Incident, existing[len(arrived)]).status = "resolved"
        db.session.commit()
        return answer

    pages = _follow(get_and_change, "/api/v1/incidents?status=all&per_page=5")
    seen = [i for page in pages for i in page]
    assert seen == sorted(existing, reverse=True)  # each once, newest first, none of the late ones
    assert [len(p) for p in pages] == [5, 5, 5, 5, 3]
    assert not set(arrived) & set(seen)


def test_api_next_link_keeps_the_filters(api, admin):
    api.as_user(admin)
    web = factories_events.make_integration(factories_events.make_service(name="Web"))
    _incidents(4, web, severity="warning")
    other = _incidents(3)
    first = api.get(f"/api/v1/incidents?service_id={web.service_id}&q=problem&per_page=3&total=true").json
    assert first["total"] == 4 and first["page"] == 1 and len(first["incidents"]) == 3
    assert first["next"].startswith(f"/api/v1/incidents?service_id={web.service_id}&q=problem&per_page=3&total=true&")
    second = api.get(first["next"]).json
    assert len(second["incidents"]) == 1 and second["next"] is None and second["more"] is False
    assert second["page"] is None and second["total"] == 4
    assert not {i["id"] for i in first["incidents"] + second["incidents"]} & set(other)
    assert api.get("/api/v1/incidents").json["total"] is None  # counted only when asked


def test_api_page_still_works(api, admin):
    api.as_user(admin)
    ids = _incidents(7)
    answer = api.get("/api/v1/incidents?page=2&per_page=3").json
    assert [i["id"] for i in answer["incidents"]] == sorted(ids, reverse=True)[3:6]
    assert api.get(answer["next"]).json["incidents"][0]["id"] == ids[0]  # `next` goes on by cursor


@pytest.mark.parametrize(
    "cursor",
    [
        "x",
        "not a cursor!",
        "%00",
        "AAAA",
        "MjAyNi0wMy0wMlQwOTowMDowMCswMDowMC8w",  # "2026-03-02T09:00:00+00:00/0": id 0
        "MjAyNi0wMy0wMlQwOTowMDowMC8x",  # "2026-03-02T09:00:00/1": no time zone
        "MjAyNi0xMy0wMlQwOTowMDowMCswMDowMC8x",  # month 13
        "A" * 101,
    ],
)
def test_bad_cursors_are_refused_with_a_clear_message(api, admin, client, auth, cursor):
    api.as_user(admin)
    answer = api.get("/api/v1/incidents", query_string={"cursor": cursor})
    assert answer.status_code == 400, answer.get_data(as_text=True)
    assert answer.json["error"]["code"] == "bad_request"
    assert "next" in answer.json["error"]["message"] and "cursor" in answer.json["error"]["fields"]
    auth.login(admin.email)
    page = client.get("/incidents", query_string={"cursor": cursor})
    assert page.status_code == 400 and "not a cursor" in page.get_data(as_text=True)


def test_cursor_and_page_together_are_refused(api, admin):
    api.as_user(admin)
    cursor = lists.Cursor(BASE, 5).encode()
    answer = api.get(f"/api/v1/incidents?page=2&cursor={cursor}")
    assert answer.status_code == 422 and "page" in answer.json["error"]["fields"]
    assert api.get("/api/v1/incidents?total=maybe").json["error"]["fields"] == {"total": "use true or false."}


def test_a_cursor_survives_its_incident_being_deleted(api, admin):
    api.as_user(admin)
    ids = _incidents(4)
    cursor = lists.Cursor.after(db.session.get(Incident, ids[2])).encode()
    db.session.delete(db.session.get(Incident, ids[2]))
    db.session.commit()
    answer = api.get(f"/api/v1/incidents?cursor={cursor}").json
    assert [i["id"] for i in answer["incidents"]] == [ids[1], ids[0]]


def _older_link(page: str) -> str | None:
    found = re.search(r'<a class="button" href="([^"]+)">Older', page)
    return html.unescape(found.group(1)) if found else None


def test_console_pages_older_by_cursor_without_javascript(client, auth):
    auth.login(factories.make_user().email)
    ids = _incidents(60)
    seen, url, pages = [], "/incidents", 0
    while url:
        page = client.get(url).get_data(as_text=True)
        seen += [int(n) for n in re.findall(r'id="pick-(\d+)"', page)]
        assert ("← Newest" in page) is (pages > 0)
        url, pages = _older_link(page), pages + 1
        factories_events.make_incident(summary="Arrived late")  # newer: never on the older pages
    assert seen == sorted(ids, reverse=True) and pages == 3
    # The poll of an older page asks for that page again (its cursor), not for the newest.
    older = client.get(_older_link(client.get("/incidents").get_data(as_text=True))).get_data(as_text=True)
    poll = html.unescape(re.search(r'<div id="results" hx-get="([^"]+)"', older).group(1))
    polled = client.get(poll, headers={"HX-Request": "true"}).get_data(as_text=True)
    assert re.findall(r'id="pick-(\d+)"', polled) == re.findall(r'id="pick-(\d+)"', older)


def test_console_and_badge_counts_stop_at_the_cap(client, auth, monkeypatch):
    auth.login(factories.make_user().email)
    _incidents(4)
    assert lists.shown_count(999) == "999" and lists.shown_count(1001) == "1,000+"
    monkeypatch.setattr(lists, "COUNT_CAP", 3)
    page = client.get("/incidents").get_data(as_text=True)
    assert "3+ incidents" in page and 'aria-label="3+ open incidents">3+</span>' in page
    assert ">3+</span>" in client.get("/incidents/count").get_data(as_text=True)
    monkeypatch.setattr(lists, "COUNT_CAP", 4)
    assert "4 incidents" in client.get("/incidents").get_data(as_text=True)
    assert lists.count(lists.Filters(), cap=2) == 3 and lists.count(lists.Filters(), cap=None) == 4


def _search(api, q: str, **extra) -> set[int]:
    answer = api.get("/api/v1/incidents", query_string={"status": "all", "q": q, "per_page": 100, **extra})
    assert answer.status_code == 200, (q, answer.get_data(as_text=True))
    return {i["id"] for i in answer.json["incidents"]}


@pytest.fixture(params=["few", "many"])
def matches(request, monkeypatch):
    """Both ways a search reads its matches: by id (few), or walking the list's index (many)."""
    if request.param == "many":
        monkeypatch.setattr(lists, "FEW_MATCHES", 0)
    return request.param


def test_search_finds_by_summary_dedup_key_source_or_number(api, admin, matches):
    api.as_user(admin)
    disk = factories_events.make_incident(summary="Disk almost full on DB17", dedup_key="disk-db17")
    lag = factories_events.make_incident(summary="Replication lag", dedup_key="repl/eu-west", source="pg-replica3")
    cert = factories_events.make_incident(summary="Certificate expires", dedup_key="cert-expiry", status="resolved")
    cert.source = "edge.example.org"  # an update: SQLite's search index follows it
    db.session.commit()
    assert _search(api, "almost full") == {disk.id}  # summary, across a space
    assert _search(api, "db17") == {disk.id}  # any case (summary and dedup key)
    assert _search(api, "EU-WEST") == {lag.id}  # dedup key
    assert _search(api, "replica3") == {lag.id}  # source
    assert _search(api, "EDGE.example") == {cert.id}  # the updated source
    assert _search(api, "host-1") == {disk.id}  # the old source of cert is forgotten
    assert _search(api, "DB") == {disk.id}  # two letters (no trigram: the plain way)
    assert _search(api, "ag") == {lag.id}
    assert _search(api, f"#{lag.number}") == {lag.id}
    assert _search(api, f"#{cert.number}") == {cert.id}
    assert _search(api, str(lag.number)) == {lag.id}  # a number without "#" too
    assert _search(api, "Disk", status="resolved") == set()
    db.session.delete(db.session.get(Incident, lag.id))
    db.session.commit()
    assert _search(api, "replication") == set()  # deleted: gone from the index too


HOSTILE = [
    "%", "_", "\\", "%%", "_b", "100%", "a_b", "50\\%", '"', '""', 'say "hi"', "'", "it's", "*", "star*",
    "NEAR", "NEAR(x y)", "near(x", "OR", "foo OR bar", "AND", "NOT", "x NOT y", "-", "^start", "summary:",
    "summary:foo", "dedup_key : x", "(", ")", "{a b}", "+", "a+b", "é", "ÉCOLE", "日本語", "x" * 200, "%_\\'\"*",
    "%s", "%(q)s", ":q", "?", "$1",
]  # fmt: skip


def test_hostile_search_text_is_searched_for_not_obeyed(api, admin, matches):
    """Every text means itself (LIKE wildcards, quotes, FTS operators): the answer is exactly the
    incidents that hold it, and nothing errors."""
    api.as_user(admin)
    integration = factories_events.make_integration()
    summaries = [
        "100% disk", "a_b c", "50\\% cpu", 'say "hi" now', "it's down", "star* wars", "NEAR(x y) here",
        "foo OR bar", "x NOT y", "^start of", "summary: foo", "{a b} set", "a+b=c", "école fermée", "日本語のテキスト",
        "plain text", "x" * 300, "50%s off", "%(q)s :q ? $1",
    ]  # fmt: skip
    texts = {}
    for summary in summaries:
        incident = factories_events.make_incident(integration, summary=summary)
        texts[incident.id] = " ".join((incident.summary, incident.dedup_key, incident.source)).lower()
    for q in HOSTILE:
        assert _search(api, q) == {i for i, text in texts.items() if q.lower() in text}, q


def test_search_on_an_older_page(api, admin, matches):
    api.as_user(admin)
    ids = _incidents(9)
    first = api.get("/api/v1/incidents?q=problem&per_page=4").json
    rest = _follow(api.get, first["next"])
    assert [i["id"] for i in first["incidents"]] + [i for p in rest for i in p] == sorted(ids, reverse=True)


@pytest.mark.parametrize(
    "args",
    [
        {},
        {"status": "all"},
        {"status": "triggered"},
        {"status": "resolved", "page": "3"},
        {"service_id": "1"},
        {"status": "all", "service_id": "1", "per_page": "100"},
        {"status": "all", "mine": "1"},
        {"status": "all", "cursor": lists.Cursor(BASE, 7).encode()},
        {"status": "acknowledged", "cursor": lists.Cursor(BASE, 7).encode()},
    ],
)
def test_every_list_reads_an_index_in_its_order(app, args):
    """No filter sorts its matches: each reads an index newest first and stops after a page (on
    PostgreSQL with sorting made the last resort, since a tiny table would rather be sorted)."""
    _incidents(3)
    filters = lists.parse_filters(args)
    filters.assigned_to_id = 1 if args.get("mine") else None
    statements = []
    connection = db.session.connection()
    sqlite = connection.dialect.name == "sqlite"
    if not sqlite:
        connection.exec_driver_sql("SET LOCAL enable_sort = off")

    def record(conn, cursor, statement, parameters, context, executemany):
        statements.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        assert lists.page_of(filters).incidents is not None
        assert lists.count(filters, cap=lists.COUNT_CAP) >= 0
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    assert statements
    for statement, parameters in statements:
        explain = "EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN "
        plan = " / ".join(str(row[-1]) for row in connection.exec_driver_sql(explain + statement, parameters))
        assert ("TEMP B-TREE" not in plan) if sqlite else ("Sort" not in plan), (statement, plan)
