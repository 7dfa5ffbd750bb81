"""The schedule page's overlap notes come from a sweep, not from comparing every pair: the sweep must
find exactly the pairs the definition gives (property test against the brute-force answer)."""

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from hypothesis import given
from hypothesis import strategies as st

from openduty.overrides import overlaps_among

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


def test_touching_overrides_do_not_overlap():
    first, second = _overrides([(0, 5), (5, 5)])
    assert overlaps_among([first, second]) == {1: [], 2: []}
