"""The schedule page's override list, a page at a time (issue 11): current and upcoming overrides by
start, past ones newest first, "Show more" with and without htmx; every override on exactly one page;
overlap notes and calendar marks that do not depend on which page an override is on."""

import re
from datetime import UTC, datetime, timedelta

import pytest

from openduty.extensions import db
from openduty.overrides import OVERRIDES_PER_PAGE, overlap_message
from tests.factories_schedules import make_layer, make_override, make_schedule

NOW = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
HTMX = {"HX-Request": "true"}


@pytest.fixture
def as_admin(client, auth, admin, clock):
    clock.set(NOW)
    auth.login(admin.email)
    return client


@pytest.fixture
def ops(app, team, clock):
    clock.set(NOW)
    schedule = make_schedule(name="Ops", time_zone="Europe/Budapest")
    make_layer(schedule, team[:2], datetime(2026, 3, 2, 9), 1, "weeks")
    return schedule


def _listed(html: str) -> list[int]:
    return [int(n) for n in re.findall(r'<li id="override-(\d+)"', html)]


def _more(html: str) -> str | None:
    found = re.search(r'<li class="more"><a href="([^"#]+)', html)
    return found[1].replace("&amp;", "&") if found else None


def _walk(client, first: str, headers: dict | None = None) -> list[list[int]]:
    """Follow "Show more" from `first` to the end; the override ids of each page."""
    pages, url = [], first
    while url:
        response = client.get(url, headers=headers or {})
        assert response.status_code == 200, url
        html = response.get_data(as_text=True)
        pages.append(_listed(html))
        url = _more(html)
    return pages


def test_every_override_is_on_exactly_one_page(as_admin, ops, team):
    """Upcoming and past lists, walked with plain links and with htmx, hold every override once, in order;
    overrides with the same start are told apart by id."""
    starts = [NOW + timedelta(hours=h) for h in range(-90, 150, 2)] + [NOW + timedelta(hours=6)] * 3
    made = [make_override(ops, team[i % 4], s, s + timedelta(hours=2)) for i, s in enumerate(starts)]
    ending = make_override(ops, team[2], NOW - timedelta(hours=1), NOW + timedelta(minutes=1))  # current
    upcoming = sorted([o for o in [*made, ending] if o.end > NOW], key=lambda o: (o.start, o.id))
    past = sorted([o for o in made if o.end <= NOW], key=lambda o: (o.start, o.id), reverse=True)
    assert len(upcoming) > 2 * OVERRIDES_PER_PAGE and len(past) > OVERRIDES_PER_PAGE

    pages = _walk(as_admin, f"/schedules/{ops.id}")
    assert [len(p) for p in pages[:-1]] == [OVERRIDES_PER_PAGE] * (len(pages) - 1)
    assert [i for p in pages for i in p] == [o.id for o in upcoming]
    past_pages = _walk(as_admin, f"/schedules/{ops.id}?overrides=past")
    assert [i for p in past_pages for i in p] == [o.id for o in past]
    assert not set(i for p in pages for i in p) & set(i for p in past_pages for i in p)

    # htmx: the first page comes with the page, each "Show more" answers the next items only.
    first = as_admin.get(f"/schedules/{ops.id}").get_data(as_text=True)
    more = as_admin.get(_more(first), headers=HTMX).get_data(as_text=True)
    assert "<html" not in more and 'id="calendar"' not in more and more.lstrip().startswith("<li")
    assert _listed(more) == pages[1]
    assert [i for p in _walk(as_admin, _more(first), HTMX) for i in p] == [o.id for o in upcoming][OVERRIDES_PER_PAGE:]
    # Switching lists with htmx swaps the list section only.
    section = as_admin.get(f"/schedules/{ops.id}?overrides=past", headers=HTMX).get_data(as_text=True)
    assert section.lstrip().startswith('<section class="card" id="overrides"') and "Past overrides" in section
    assert _listed(section) == past_pages[0]


def test_show_more_keeps_the_calendar_shown(as_admin, ops, team):
    for h in range(OVERRIDES_PER_PAGE + 1):
        make_override(ops, team[0], NOW + timedelta(days=1, hours=h), NOW + timedelta(days=1, hours=h, minutes=30))
    html = as_admin.get(f"/schedules/{ops.id}?view=week&date=2026-04-08").get_data(as_text=True)
    more = _more(html)
    assert "view=week" in more and "date=2026-04-08" in more
    page_two = as_admin.get(more).get_data(as_text=True)
    assert "Week of 06 Apr 2026" in page_two and len(_listed(page_two)) == 1
    assert "Soonest first" in page_two  # a way back to the first page


def test_overlaps_are_named_whatever_page_each_override_is_on(as_admin, ops, team):
    """An override past the first page that overlaps one on the first page: the list names the other
    on both pages, and the calendar marks both and counts them."""
    alice, bob, carol, _ = team
    for m in range(OVERRIDES_PER_PAGE - 1):  # the first page, before `first`
        make_override(ops, bob, NOW + timedelta(minutes=2 * m + 1), NOW + timedelta(minutes=2 * m + 2))
    first = make_override(ops, alice, NOW + timedelta(hours=1), NOW + timedelta(days=10))  # last on the first page
    late = make_override(ops, carol, NOW + timedelta(days=9), NOW + timedelta(days=9, hours=3))  # page two

    page_one = as_admin.get(f"/schedules/{ops.id}").get_data(as_text=True)
    assert late.id not in _listed(page_one) and first.id in _listed(page_one)
    assert f"#{late.id} (Carol)" in page_one  # named in `first`'s note, though not listed here
    page_two = as_admin.get(_more(page_one)).get_data(as_text=True)
    assert _listed(page_two) == [late.id]
    assert f"Override #{late.id} overlaps earlier override #{first.id} (Alice)" in page_two

    # The calendar of that week shows and counts the overlaps, whichever page lists them.
    week = as_admin.get(f"/schedules/{ops.id}?view=week&date=2026-03-13", headers=HTMX).get_data(as_text=True)
    assert f"override #{late.id} overlaps another" in week
    assert "2 overrides shown here overlap others" in week  # `first` and `late`
    assert 'class="seg override overlap"' in week


def test_an_overlap_note_names_five_each_way():
    others = [(i, f"P{i}") for i in (1, 2, 3, 4, 5, 6, 7, 20, 21)]
    assert overlap_message(10, others) == (
        "Override #10 overlaps earlier override #1 (P1), #2 (P2), #3 (P3), #4 (P4), #5 (P5) and 2 more:"
        " this one wins where they overlap (created later); is beaten by later override #20 (P20), #21 (P21)"
        " where they overlap."
    )


def test_no_overlap_no_warning(as_admin, ops, team):
    make_override(ops, team[0], NOW + timedelta(hours=1), NOW + timedelta(hours=2))
    make_override(ops, team[1], NOW + timedelta(hours=2), NOW + timedelta(hours=3))  # touching is not overlapping
    html = as_admin.get(f"/schedules/{ops.id}").get_data(as_text=True)
    assert "overlap-warning" not in html and "badge-warning" not in html and "Overlaps another override" not in html


@pytest.mark.parametrize(
    "query, message",
    [
        ("after=yesterday", "after must be a position given by a Show more link"),
        ("after=20261399T000000.000000Z.1", "after must be a position given by a Show more link"),
        ("after=20260301T000000.000000Z.0", "after must be a position given by a Show more link"),
        ("overrides=all", "overrides must be upcoming or past."),
    ],
)
def test_a_bad_list_position_is_a_clear_400(as_admin, ops, query, message):
    for headers in ({}, HTMX):
        response = as_admin.get(f"/schedules/{ops.id}?{query}", headers=headers)
        assert response.status_code == 400 and message in response.get_data(as_text=True)


def test_list_blocks_query_nothing_while_rendering(as_admin, ops, team, queries_while_rendering):
    for h in range(OVERRIDES_PER_PAGE + 2):
        make_override(ops, team[h % 4], NOW + timedelta(hours=h), NOW + timedelta(hours=h + 2))
    after = _more(as_admin.get(f"/schedules/{ops.id}").get_data(as_text=True))
    for path, headers in ((after, HTMX), (after, {}), (f"/schedules/{ops.id}?overrides=past", HTMX)):
        db.session.expire_all()
        del queries_while_rendering[:]
        assert as_admin.get(path, headers=headers).status_code == 200
        assert queries_while_rendering == [], f"rendering GET {path} queried: {queries_while_rendering}"
