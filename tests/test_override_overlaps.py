"""The schedule page's overlap notes and marks, and the final timeline, come from sweeps, not from
comparing every pair: each must give exactly what the definition gives (property tests against the
brute-force answers)."""

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from hypothesis import given
from hypothesis import strategies as st

from openduty.overrides import overlapping, overlaps_among
from openduty.shifts import Shift, _sweep

T0 = datetime(2026, 3, 1, tzinfo=UTC)
spans = st.lists(st.tuples(st.integers(0, 200), st.integers(1, 60)), max_size=40)


def _overrides(raw):
    return [
        SimpleNamespace(id=n, start=T0 + timedelta(hours=a), end=T0 + timedelta(hours=a + length))
        for n, (a, length) in enumerate(raw, start=1)
    ]


@given(spans)
def test_the_sweep_finds_exactly_the_overlapping_pairs(raw):
    items = _overrides(raw)
    expected = {
        o.id: [x.id for x in sorted(items, key=lambda x: x.id) if x.id != o.id and x.start < o.end and x.end > o.start]
        for o in items
    }
    assert {key: [o.id for o in others] for key, others in overlaps_among(items).items()} == expected


@given(spans)
def test_overlapping_marks_exactly_the_overrides_with_an_overlap(raw):
    items = _overrides(raw)
    expected = {o.id for o in items if any(x is not o and x.start < o.end and x.end > o.start for x in items)}
    assert overlapping(items) == expected


def test_touching_overrides_do_not_overlap():
    first, second = _overrides([(0, 5), (5, 5)])
    assert overlaps_among([first, second]) == {1: [], 2: []}
    assert overlapping([first, second]) == set()


def _brute_timeline(items, start, end) -> list[Shift]:
    """Hour by hour: the highest priority covering each hour wins, then equal neighbours merge."""
    out: list[Shift] = []
    at = start
    while at < end:
        covering = [it for it in items if it[0] <= at < it[1]]
        _, _, _, users, source, ref = max(covering, key=lambda it: it[2]) if covering else (0, 0, 0, (), "gap", None)
        if out and out[-1].user_ids == users and out[-1].source == source:
            last = out[-1]
            out[-1] = Shift(last.start, at + timedelta(hours=1), users, source, last.layer_id, last.override_id)
        else:
            layer_id, override_id = (ref, None) if source == "layer" else (None, ref)
            out.append(Shift(at, at + timedelta(hours=1), users, source, layer_id, override_id))
        at += timedelta(hours=1)
    return out


pieces = st.lists(
    st.tuples(st.integers(0, 48), st.integers(1, 24), st.integers(1, 3), st.sampled_from(["layer", "override"])),
    max_size=25,
)


@given(pieces)
def test_the_timeline_sweep_matches_hour_by_hour(raw):
    """Items as CompiledSchedule.timeline makes them: (start, end, priority, users, source, ref), cut to the window."""
    start, end = T0 + timedelta(hours=4), T0 + timedelta(hours=60)
    items = [
        (max(T0 + timedelta(hours=a), start), min(T0 + timedelta(hours=a + n), end), rank, (user,), source, rank)
        for rank, (a, n, user, source) in enumerate(raw)
        if T0 + timedelta(hours=a) < end and T0 + timedelta(hours=a + n) > start
    ]
    assert _sweep(list(items), start, end) == _brute_timeline(items, start, end)
