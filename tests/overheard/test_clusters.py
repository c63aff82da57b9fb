"""The clusterer: reports of one problem grouped, deterministically, with bounded memory."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from overheard.clusters import Clusterer, Report, distance_m
from overheard.model import Issue, Location, Precision
from overheard.profile import ClustersProfile
from tests.factories import make_issue

CONFIG = ClustersProfile(distance_m=60, window_hours=168)
START = datetime(2013, 5, 1, 9, 0, tzinfo=UTC)
#: Eastern Ave at Linwood, Baltimore.
LAT, LON = 39.2906, -76.5790


def north(metres: float) -> float:
    """The latitude `metres` north of LAT."""
    return LAT + metres / 111_195.0


def east(metres: float) -> float:
    """The longitude `metres` east of LON, at LAT."""
    return LON + metres / (111_195.0 * math.cos(math.radians(LAT)))


def report(
    n: int,
    *,
    lat: float = LAT,
    lon: float = LON,
    hours: float = 0.0,
    category: str = "pothole",
    precision: Precision = Precision.INTERSECTION,
) -> Issue:
    issue = make_issue(f"t3_c{n}", category=category)
    assert issue.location is not None
    post = issue.post.model_copy(update={"created_at": START + timedelta(hours=hours)})
    location = Location(lat=lat, lon=lon, precision=precision, source="gazetteer", confidence=0.9)
    return issue.model_copy(
        update={"id": Issue.id_for("baltimore", post.id), "post": post, "location": location}
    )


def test_the_grid_distance_is_the_great_circle_distance() -> None:
    assert abs(distance_m(LAT, LON, north(50), LON) - 50) < 0.5
    assert abs(distance_m(LAT, LON, LAT, east(50)) - 50) < 0.5


def test_near_reports_of_one_category_form_one_cluster_anchored_by_the_first() -> None:
    clusterer = Clusterer(CONFIG)
    first, second, third = report(1), report(2, lat=north(40)), report(3, lon=east(-55))
    assert clusterer.assign(first).cluster == first.id
    assert (clusterer.assign(second).cluster, clusterer.assign(third).cluster) == (
        first.id,
        first.id,
    )
    assert clusterer.assign(third).size == 3
    assert clusterer.stats.as_dict() == {"problems": 1, "multi_report": 1, "largest": 3}


def test_a_far_report_or_another_category_anchors_its_own() -> None:
    clusterer = Clusterer(CONFIG)
    first = report(1)
    far = report(2, lat=north(61))
    trash = report(3, category="trash_dumping")
    for issue in (first, far, trash):
        assert clusterer.assign(issue).cluster == issue.id
    assert clusterer.stats.as_dict() == {"problems": 3, "multi_report": 0, "largest": 1}


def test_the_nearest_anchor_wins() -> None:
    clusterer = Clusterer(CONFIG)
    west_anchor, east_anchor = report(1, lon=east(-50)), report(2, lon=east(50))
    clusterer.assign(west_anchor)
    clusterer.assign(east_anchor)
    assert clusterer.assign(report(3, lon=east(20))).cluster == east_anchor.id
    assert clusterer.assign(report(4, lon=east(-10))).cluster == west_anchor.id


def test_the_window_edges() -> None:
    clusterer = Clusterer(CONFIG)
    first = report(1)
    clusterer.assign(first)
    assert clusterer.assign(report(2, hours=168)).cluster == first.id  # at the edge: in
    # The window runs from the cluster's last report: 168 h after the second is still in.
    assert clusterer.assign(report(3, hours=336)).cluster == first.id
    late = report(4, hours=336 + 168 + 0.01)
    assert clusterer.assign(late).cluster == late.id
    # A report posted before the cluster's first, within the window, joins it too.
    early = Clusterer(CONFIG)
    anchor = report(5, hours=100)
    early.assign(anchor)
    assert early.assign(report(6, hours=0)).cluster == anchor.id
    # The window then runs from that earlier report.
    assert early.assign(report(7, hours=-168.5)).cluster != anchor.id


def test_coarse_precisions_and_unlocated_issues_stand_alone() -> None:
    clusterer = Clusterer(CONFIG)
    for n, precision in enumerate((Precision.STREET, Precision.NEIGHBOURHOOD, Precision.CITY)):
        issue = report(10 + n, precision=precision)
        assert not clusterer.eligible(issue)
        assert clusterer.assign(issue).cluster == issue.id
    unlocated = make_issue("t3_nowhere", located=False)
    assert clusterer.assign(unlocated).cluster == unlocated.id
    assert clusterer.live_clusters == 0
    assert clusterer.stats.problems == 4
    custom = Clusterer(ClustersProfile(precisions=[Precision.STREET]))
    a, b = report(20, precision=Precision.STREET), report(21, precision=Precision.STREET)
    custom.assign(a)
    assert custom.assign(b).cluster == a.id


def test_a_redelivered_issue_gets_the_same_cluster_and_is_counted_once() -> None:
    clusterer = Clusterer(CONFIG)
    first, second = report(1), report(2)
    clusterer.assign(first)
    clusterer.assign(second)
    again = clusterer.assign(second)
    assert (again.cluster, again.size) == (first.id, 2)
    assert clusterer.stats.as_dict() == {"problems": 1, "multi_report": 1, "largest": 2}


def test_withdrawing_an_anchor_frees_its_members_to_be_assigned_again() -> None:
    clusterer = Clusterer(CONFIG)
    first, second, third = report(1), report(2), report(3)
    for issue in (first, second, third):
        clusterer.assign(issue)
    assert clusterer.withdraw(first.id) == [second.id, third.id]
    assert clusterer.assign(second).cluster == second.id
    assert clusterer.assign(third).cluster == second.id
    assert clusterer.withdraw(third.id) == []
    assert clusterer.assign(report(4)).size == 2


def test_state_rebuilt_from_records_places_reports_where_they_were() -> None:
    clusterer = Clusterer(CONFIG)
    anchor, member = report(1), report(2, lat=north(30))
    clusterer.add(Report.of(anchor), anchor.id)
    clusterer.add(Report.of(member), anchor.id)
    assert clusterer.assign(member).cluster == anchor.id
    assert clusterer.assign(report(3, lat=north(10))).size == 3


def test_eviction_keeps_memory_flat_over_a_long_stream() -> None:
    """A year of reports, three a day at the same corner and others spread over the city:
    only the clusters of the last window stay live."""
    clusterer = Clusterer(CONFIG)
    peak = 0
    for n in range(365 * 6):
        hours = n * 4.0
        spot = (n * 7919) % 400  # 400 distinct spots 100 m apart
        issue = report(n, lat=north(100 * (spot // 20)), lon=east(100 * (spot % 20)), hours=hours)
        clusterer.assign(issue)
        peak = max(peak, clusterer.live_clusters)
    # One cluster per spot at most, and the tracking of members does not grow either.
    assert peak <= 400
    assert clusterer.tracked_reports <= 168 / 4 + 400 + 1


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(-150, 150),
            st.floats(-150, 150),
            st.floats(0, 600),
            st.sampled_from(["pothole", "streetlight"]),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_clusters_are_deterministic_and_within_distance(
    points: list[tuple[float, float, float, str]],
) -> None:
    issues = [
        report(n, lat=north(dy), lon=east(dx), hours=h, category=c)
        for n, (dy, dx, h, c) in enumerate(points)
    ]
    runs = []
    for _ in range(2):
        clusterer = Clusterer(CONFIG)
        runs.append([clusterer.assign(issue) for issue in issues])
    assert runs[0] == runs[1]
    by_id = {issue.id: issue for issue in issues}
    for issue, assignment in zip(issues, runs[0], strict=True):
        anchor = by_id[assignment.cluster]
        assert anchor.category == issue.category
        assert anchor.location is not None and issue.location is not None
        metres = distance_m(
            issue.location.lat, issue.location.lon, anchor.location.lat, anchor.location.lon
        )
        assert metres <= CONFIG.distance_m + 1e-6
    # Interleaving another category changes nothing for this one.
    potholes = [issue for issue in issues if issue.category.name == "pothole"]
    alone = Clusterer(CONFIG)
    assert [alone.assign(i).cluster for i in potholes] == [
        a.cluster for i, a in zip(issues, runs[0], strict=True) if i.category.name == "pothole"
    ]
