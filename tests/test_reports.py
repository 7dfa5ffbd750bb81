"""Reports (issue 16): figures of a seeded data set, worked out by hand here, against the API, the
page and the CSV downloads; who may read them; and what bad arguments get back.

The data: two weeks, Monday 2026-03-16 to Sunday 2026-03-29, read by an admin in UTC. Service A
(team One) and service B (team Two). Bea lives in Europe/Budapest, which moves to summer time on
2026-03-29 at 01:00 UTC; Lou in America/Los_Angeles, on summer time (UTC-7) since 2026-03-08.
"""

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest

from openduty.extensions import db
from openduty.models import Incident, Notification, Team
from openduty.reports import offset_segments
from tests import factories, factories_escalation, factories_events
from tests.factories_schedules import make_layer, make_override, make_schedule

WEEKS = {"period": "week", "since": "2026-03-16", "until": "2026-03-29"}
W1, W2 = datetime(2026, 3, 16, tzinfo=UTC), datetime(2026, 3, 23, tzinfo=UTC)


def at(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, second, tzinfo=UTC)


_numbers = iter(range(1, 1000))


def incident(service, opened: datetime, ack: int | None = None, resolve: int | None = None) -> Incident:
    """An incident opened at `opened`, acknowledged and resolved that many seconds later."""
    row = Incident(
        service_id=service.id,
        number=next(_numbers),
        dedup_key=f"k{opened.isoformat()}-{service.id}",
        summary="Disk full",
        status="resolved" if resolve is not None else "acknowledged" if ack is not None else "triggered",
        created_at=opened,
        last_event_at=opened,
        acknowledged_at=opened + timedelta(seconds=ack) if ack is not None else None,
        resolved_at=opened + timedelta(seconds=resolve) if resolve is not None else None,
    )
    db.session.add(row)
    db.session.flush()
    return row


def page(row: Incident, user, sent: datetime | None, level: int = 1, loop: int = 0, status: str = "sent") -> None:
    db.session.add(
        Notification(
            incident_id=row.id,
            user_id=user.id,
            kind="email",
            address=user.email,
            purpose="page",
            level=level,
            loop=loop,
            status=status,
            send_at=sent or row.created_at,
            sent_at=sent,
        )
    )


@pytest.fixture
def seeded(app, admin, clock):
    clock.set(datetime(2026, 3, 31, 12, tzinfo=UTC))
    bea = factories.make_user(name="Bea", email="bea@example.com", time_zone="Europe/Budapest")
    lou = factories.make_user(name="Lou", email="lou@example.com", time_zone="America/Los_Angeles")
    cy = factories.make_user(name="Cy", email="cy@example.com", time_zone="UTC")
    one, two = Team(name="One", description=""), Team(name="Two", description="")
    db.session.add_all([one, two])
    db.session.commit()

    s1 = make_schedule("Primary", team_id=one.id)  # UTC: Bea and Lou by the day from Monday 16th
    make_layer(s1, [bea, lou], datetime(2026, 3, 16), 1, "days")
    make_override(s1, cy, at(18, 6), at(18, 18))  # Cy takes 12 hours of Bea's Wednesday
    s2 = make_schedule("Europe", time_zone="Europe/Budapest", team_id=two.id)  # Lou alone from 23rd 00:00 CET
    make_layer(s2, [lou], datetime(2026, 3, 23), 1, "weeks")
    a = factories_escalation.make_service(factories_escalation.make_policy([(5, [s1])]), name="A", team_id=one.id)
    b = factories_escalation.make_service(factories_escalation.make_policy([(5, [s2])]), name="B", team_id=two.id)

    incident(a, at(15, 23, 59), ack=10, resolve=20)  # the Sunday before: outside the report
    a1 = incident(a, at(16, 0, 0), ack=60, resolve=600)
    a2 = incident(a, at(17, 9), ack=120, resolve=1200)
    a3 = incident(a, at(18, 9), ack=180, resolve=1800)
    incident(a, at(19, 9), ack=240, resolve=6000)
    incident(a, at(22, 23, 59, 59), ack=600)  # acknowledged, still open
    b1 = incident(b, at(20, 9), ack=30, resolve=90)
    a6 = incident(a, at(25, 9), resolve=300)  # resolved without an acknowledgement
    incident(a, at(30, 0), ack=5, resolve=5)  # the Monday after: outside

    page(a1, bea, None, level=2, status="pending")  # level 2 planned: escalated, even if never sent
    page(a2, lou, None, loop=1, status="cancelled")  # a repeat pass: escalated
    page(a3, cy, None, status="failed")  # level 1 only: not escalated; failed: not a page sent
    page(b1, lou, None, level=2, status="cancelled")
    # Bea (Budapest): CET (+1) until 29th 01:00 UTC, then CEST (+2).
    for sent in (at(23, 20, 30), at(23, 21, 30), at(28, 5, 30), at(29, 4, 30), at(29, 5, 30)):
        page(a6, bea, sent)
    # Lou (Los Angeles, PDT, -7): 22:30, 21:30, 07:30 and 06:30 on the 16th/17th local; then the
    # edges on B's incident: 22:00:00 (out of hours) and 07:00:00 (in hours).
    for sent in (at(17, 5, 30), at(17, 4, 30), at(17, 14, 30), at(17, 13, 30)):
        page(a1, lou, sent)
    page(b1, lou, at(18, 5, 0, 0))
    page(b1, lou, at(18, 14, 0, 0))
    db.session.commit()
    return {"bea": bea, "lou": lou, "cy": cy, "one": one, "two": two, "a": a, "b": b, "s1": s1, "s2": s2}


def _periods(body):
    return {p["label"]: p for p in body["periods"]}


def _people(body, value):
    return {p["name"]: [x[value] for x in p["periods"]] for p in body["people"]}


def test_incident_figures_by_hand(api, admin, seeded):
    api.as_user(admin)
    body = api.get("/api/v1/reports/incidents", query_string=WEEKS).get_json()
    assert (body["period"], body["time_zone"], body["since"], body["until"]) == (
        "week",
        "UTC",
        "2026-03-16",
        "2026-03-29",
    )
    week1, week2 = _periods(body)["2026-03-16"], _periods(body)["2026-03-23"]
    assert (week1["start"], week1["end"]) == ("2026-03-16T00:00:00+00:00", "2026-03-23T00:00:00+00:00")
    # Week 1: A's five (16th 00:00:00 to 22nd 23:59:59) and B's one.
    assert (week1["incidents"], week1["escalated"]) == (6, 3)
    # Acknowledged after 30, 60, 120, 180, 240, 600 s: median between the 3rd and 4th (150);
    # p90 at rank 1 + 0.9 x 5 = 5.5, between 240 and 600 (420).
    assert week1["mtta"] == {"count": 6, "median_seconds": 150.0, "p90_seconds": 420.0}
    # Resolved after 90, 600, 1200, 1800, 6000 s: median 1200; p90 at rank 4.6: 1800 + 0.6 x 4200.
    assert week1["mttr"] == {"count": 5, "median_seconds": 1200.0, "p90_seconds": 4320.0}
    assert (week2["incidents"], week2["escalated"]) == (1, 0)
    assert week2["mtta"] == {"count": 0, "median_seconds": None, "p90_seconds": None}
    assert week2["mttr"] == {"count": 1, "median_seconds": 300.0, "p90_seconds": 300.0}

    only_a = api.get("/api/v1/reports/incidents", query_string={**WEEKS, "service_id": seeded["a"].id}).get_json()
    week1 = _periods(only_a)["2026-03-16"]
    assert (week1["incidents"], week1["escalated"]) == (5, 2)
    # 60, 120, 180, 240, 600: median 180; p90 at rank 4.6: 240 + 0.6 x 360.
    assert week1["mtta"] == {"count": 5, "median_seconds": 180.0, "p90_seconds": 456.0}
    # 600, 1200, 1800, 6000: median at 2.5 (1500), p90 at 3.7: 1800 + 0.7 x 4200.
    assert week1["mttr"] == {"count": 4, "median_seconds": 1500.0, "p90_seconds": 4740.0}
    team_two = api.get("/api/v1/reports/incidents", query_string={**WEEKS, "team_id": seeded["two"].id}).get_json()
    assert [(p["incidents"], p["escalated"]) for p in team_two["periods"]] == [(1, 1), (0, 0)]


def test_pages_and_out_of_hours_in_each_persons_zone(api, admin, seeded):
    api.as_user(admin)
    body = api.get("/api/v1/reports/pages", query_string=WEEKS).get_json()
    # Bea: 21:30 and 22:30 CET on the 23rd, 06:30 CET on the 28th, 06:30 and 07:30 CEST on the 29th.
    # Lou: 22:30, 21:30, 07:30, 06:30, 22:00:00 and 07:00:00 PDT. Failed and unsent pages do not count.
    assert _people(body, "pages") == {"Lou": [6, 0], "Bea": [0, 5]}
    assert _people(body, "out_of_hours") == {"Lou": [3, 0], "Bea": [0, 3]}
    lou = next(p for p in body["people"] if p["name"] == "Lou")
    assert (lou["pages"], lou["out_of_hours"], lou["time_zone"]) == (6, 3, "America/Los_Angeles")

    only_b = api.get("/api/v1/reports/pages", query_string={**WEEKS, "service_id": seeded["b"].id}).get_json()
    assert _people(only_b, "pages") == {"Lou": [2, 0]}
    assert _people(only_b, "out_of_hours") == {"Lou": [1, 0]}
    team_one = api.get("/api/v1/reports/pages", query_string={**WEEKS, "team_id": seeded["one"].id}).get_json()
    assert _people(team_one, "pages") == {"Bea": [0, 5], "Lou": [4, 0]}


def test_oncall_hours_from_the_final_schedules(api, admin, seeded):
    api.as_user(admin)
    body = api.get("/api/v1/reports/oncall", query_string=WEEKS).get_json()
    # Primary (UTC, daily from the 16th): Bea the 16th, 18th, 20th, 22nd, 24th, 26th, 28th; Lou the
    # other days; Cy 12 hours of Bea's 18th. Europe: Lou from 22nd 23:00 UTC (23rd 00:00 CET) on,
    # so 1 hour in week 1 (Bea's day in Primary) and all of week 2, counted once beside Primary.
    assert _people(body, "hours") == {"Bea": [84.0, 72.0], "Lou": [73.0, 168.0], "Cy": [12.0, 0.0]}
    assert {p["name"]: p["hours"] for p in body["people"]} == {"Bea": 156.0, "Lou": 241.0, "Cy": 12.0}
    team_one = api.get("/api/v1/reports/oncall", query_string={**WEEKS, "team_id": seeded["one"].id}).get_json()
    assert _people(team_one, "hours") == {"Bea": [84.0, 72.0], "Lou": [72.0, 96.0], "Cy": [12.0, 0.0]}
    only_b = api.get("/api/v1/reports/oncall", query_string={**WEEKS, "service_id": seeded["b"].id}).get_json()
    assert _people(only_b, "hours") == {"Lou": [1.0, 168.0]}


def test_months_and_the_default_range(api, admin, seeded):
    api.as_user(admin)
    body = api.get("/api/v1/reports/incidents", query_string={"period": "month"}).get_json()
    # Six months up to the current one (now is 2026-03-31).
    assert [p["label"] for p in body["periods"]] == ["2025-10", "2025-11", "2025-12", "2026-01", "2026-02", "2026-03"]
    assert (body["since"], body["until"]) == ("2025-10-01", "2026-03-31")
    assert _periods(body)["2026-03"]["incidents"] == 9
    weeks = api.get("/api/v1/reports/incidents").get_json()
    assert len(weeks["periods"]) == 8 and weeks["periods"][-1]["label"] == "2026-03-30"


def test_periods_follow_the_readers_zone(api, admin, seeded):
    """A reader in Budapest: weeks start at Monday 00:00 there (23:00 UTC on Sunday, 22:00 in summer)."""
    admin.time_zone = "Europe/Budapest"
    db.session.commit()
    api.as_user(admin)
    body = api.get("/api/v1/reports/incidents", query_string=WEEKS).get_json()
    week1, week2 = body["periods"]
    assert (week1["start"], week2["start"], week2["end"]) == (
        "2026-03-15T23:00:00+00:00",
        "2026-03-22T23:00:00+00:00",
        "2026-03-29T22:00:00+00:00",
    )
    # The Sunday-before incident (15th 23:59 UTC) is Monday in Budapest; the 22nd 23:59:59 one is week 2.
    assert (week1["incidents"], week2["incidents"]) == (6, 2)


def test_dst_offsets_are_found_to_the_second():
    segments = offset_segments("Europe/Budapest", W2, W2 + timedelta(days=7))
    assert segments == [(W2, 3600), (at(29, 1), 7200)]
    assert offset_segments("UTC", W1, W2) == [(W1, 0)]


def test_pages_show_charts_and_tables(client, auth, admin, seeded):
    auth.login(admin.email)
    answer = client.get("/reports", query_string={**WEEKS, "service_id": seeded["a"].id})
    assert answer.status_code == 200
    html = answer.get_data(as_text=True)
    assert html.count('<svg xmlns="http://www.w3.org/2000/svg"') == 3
    assert "<script" not in html.split("<main", 1)[1] and "<style" not in html
    assert 'role="img"' in html and 'aria-label="Incidents opened"' in html
    # The table beside the charts: week 1 of service A (MTTA 3 min / 7 min 36 s, MTTR 25 min / 1 h 19 min).
    assert "<td>5</td><td>2</td><td>3 min</td><td>7 min 36 s</td><td>25 min</td><td>1 h 19 min</td>" in html
    assert "/reports/incidents.csv?period=week&amp;since=2026-03-16&amp;until=2026-03-29&amp;service_id=" in html
    # The tabs keep the question.
    assert 'href="/reports/pages?period=week&amp;since=2026-03-16&amp;until=2026-03-29&amp;service_id=' in html

    html = client.get("/reports/pages", query_string=WEEKS).get_data(as_text=True)
    assert html.count("<svg") == 1 and 'aria-label="Pages per person"' in html
    assert '<th scope="row">Bea</th><td class="text">Europe/Budapest</td><td>5</td><td>3</td>' in html
    assert '<th scope="row">Lou</th><td class="text">America/Los_Angeles</td><td>6</td><td>3</td>' in html
    html = client.get("/reports/oncall", query_string=WEEKS).get_data(as_text=True)
    assert html.count("<svg") == 1 and '<th scope="row">Lou</th><td>241.0</td>' in html
    css = client.get("/reports/charts.css")
    assert css.status_code == 200 and css.mimetype == "text/css"
    assert "svg.pygal-chart .color-0" in css.get_data(as_text=True)


def test_csv_downloads(client, auth, admin, seeded):
    auth.login(admin.email)
    answer = client.get("/reports/incidents.csv", query_string=WEEKS)
    assert answer.mimetype == "text/csv"
    assert 'filename="openduty-incidents-week-2026-03-16-2026-03-29.csv"' in answer.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(answer.get_data(as_text=True))))
    assert [(r["period"], r["incidents"], r["escalated_beyond_level_1"]) for r in rows] == [
        ("2026-03-16", "6", "3"),
        ("2026-03-23", "1", "0"),
    ]
    assert (rows[0]["mtta_median_seconds"], rows[0]["mttr_p90_seconds"], rows[1]["mtta_median_seconds"]) == (
        "150.0",
        "4320.0",
        "",
    )

    text = client.get("/reports/pages.csv", query_string=WEEKS).get_data(as_text=True)
    pages = list(csv.DictReader(io.StringIO(text)))
    assert [(r["period"], r["name"], r["pages"], r["out_of_hours"]) for r in pages] == [
        ("2026-03-16", "Lou", "6", "3"),
        ("2026-03-16", "Bea", "0", "0"),
        ("2026-03-23", "Lou", "0", "0"),
        ("2026-03-23", "Bea", "5", "3"),
    ]
    hours = client.get("/reports/oncall.csv", query_string={**WEEKS, "team_id": seeded["one"].id}).get_data(
        as_text=True
    )
    assert hours.splitlines()[0] == "period,start,end,user_id,name,time_zone,hours"
    lou = f"{seeded['lou'].id},Lou,America/Los_Angeles"
    assert f"2026-03-23,2026-03-23T00:00:00+00:00,2026-03-30T00:00:00+00:00,{lou},96.0" in hours


def test_csv_quotes_names_that_look_like_formulas(client, auth, admin, seeded):
    seeded["lou"].name = "=HYPERLINK(1)"
    db.session.commit()
    auth.login(admin.email)
    text = client.get("/reports/pages.csv", query_string=WEEKS).get_data(as_text=True)
    assert "'=HYPERLINK(1)" in text and ",=HYPERLINK" not in text


def test_observers_and_members_read_reports(client, auth, api, seeded):
    observer = factories.make_user(observer=True)
    member = factories.make_user()
    for user in (observer, member):
        auth.login(user.email)
        assert client.get("/reports", query_string=WEEKS).status_code == 200
        assert api.as_user(user).get("/api/v1/reports/pages", query_string=WEEKS).status_code == 200
        auth.logout()
    assert client.get("/reports").status_code == 302  # anonymous: to the login page


@pytest.mark.parametrize(
    "args, field, words",
    [
        ({"period": "year"}, "period", "week or month"),
        ({"since": "2026-02-30"}, "since", "a date like 2026-03-01"),
        ({"until": "yesterday"}, "until", "a date like"),
        ({"since": "0001-01-01"}, "since", "between the years 1970 and 2200"),
        ({"since": "2026-03-20", "until": "2026-03-10"}, "since", "on or before until"),
        ({"since": "2020-01-01", "until": "2026-01-01"}, "until", "at most 106 weeks"),
        ({"period": "month", "since": "2020-01-01", "until": "2026-01-01"}, "until", "at most 24 months"),
        ({"service_id": "abc"}, "service_id", ""),
        ({"service_id": "99999"}, "service_id", "No service with id 99999"),
        ({"team_id": "0"}, "team_id", ""),
    ],
)
def test_bad_arguments_say_what_to_fix(client, auth, api, admin, seeded, args, field, words):
    api.as_user(admin)
    answer = api.get("/api/v1/reports/incidents", query_string=args)
    assert answer.status_code == 422
    assert words in answer.get_json()["error"]["fields"][field]
    auth.login(admin.email)
    for path in ("/reports", "/reports/pages", "/reports/oncall"):
        page = client.get(path, query_string=args)
        assert page.status_code == 400 and words in page.get_data(as_text=True)
    assert client.get("/reports/oncall.csv", query_string=args).status_code == 400


def test_service_and_team_together_are_refused(api, admin, seeded):
    api.as_user(admin)
    args = {"service_id": seeded["a"].id, "team_id": seeded["one"].id}
    answer = api.get("/api/v1/reports/pages", query_string=args)
    assert answer.status_code == 422 and "not both" in answer.get_json()["error"]["fields"]["team_id"]


def test_an_empty_report_still_draws(client, auth, admin, app):
    factories_events.make_service(name="Quiet")
    auth.login(admin.email)
    html = client.get("/reports").get_data(as_text=True)
    assert html.count("<svg") == 3 and "<td>0</td><td>0</td><td>–</td>" in html
    assert "Nobody was paged in this range." in client.get("/reports/pages").get_data(as_text=True)
    assert "Nobody was on call" in client.get("/reports/oncall").get_data(as_text=True)
