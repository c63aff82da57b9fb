"""The replay report folder (`overheard replay --report DIR`), for analysts.

- `issues.geojson`: a FeatureCollection with one Point feature per located issue, each
  with its `cluster` (the id of the cluster's first issue, `overheard.clusters`) and
  `cluster_size` (its reports).
  Issues without a location are listed, with the same properties, in the
  top-level foreign member `"unlocated"` (RFC 7946, section 6.1), so one file
  holds every issue; `"city"` names the city.
- `summary.json`: the replay summary, as `Summary.as_dict()` gives it.
- `map.png`: the city's streets and boundary with the located issues
  (`overheard.mapping`), drawn offline.
- `report.html`: one self-contained page (inline CSS, the map as a data: URI, no
  script, a Content-Security-Policy that forbids fetching anything) with the
  summary, the map and every issue. Post text is user content: all of it is escaped.

The same archives and profile give the same bytes in every file: issues are
sorted by post time then id, JSON keys are sorted, and nothing about the run
(when, where, how long) is written.
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from overheard.clusters import Clusterer
from overheard.mapping import Dot, Ring, category_colours, draw_map
from overheard.model import Issue
from overheard.profile import ClustersProfile
from overheard.sinks.base import WRITTEN, BaseSink, Outcome
from overheard.whereabouts import Whereabouts

#: Characters of a post shown in the HTML list.
EXCERPT = 400


class IssueCollector(BaseSink):
    """A sink that keeps every issue in memory, once per id, for the report; with a
    `[clusters]` profile, also the cluster of each, assigned in the order issues arrive."""

    name = "report"

    def __init__(self, clusters: ClustersProfile | None = None) -> None:
        self._issues: dict[str, Issue] = {}
        self._clusterer = Clusterer(clusters) if clusters is not None else None
        self._cluster_of: dict[str, uuid.UUID] = {}

    def write(self, issues: Sequence[Issue]) -> list[Outcome]:
        for issue in issues:
            self._issues[str(issue.id)] = issue
            if self._clusterer is not None:
                self._cluster_of[str(issue.id)] = self._clusterer.assign(issue).cluster
        return [WRITTEN] * len(issues)

    @property
    def clusters(self) -> dict[str, Cluster]:
        """Issue id → its cluster, with the cluster's size (empty without a profile)."""
        sizes = Counter(self._cluster_of.values())
        return {
            issue: Cluster(str(cluster), sizes[cluster])
            for issue, cluster in self._cluster_of.items()
        }

    @property
    def issues(self) -> list[Issue]:
        """Every issue, by post time then id."""
        return sorted(self._issues.values(), key=lambda i: (i.post.created_at, str(i.id)))


@dataclass(frozen=True)
class Cluster:
    """The cluster an issue belongs to: its first issue's id, and how many reports."""

    id: str
    size: int


@dataclass(frozen=True)
class Entry:
    """An issue with the streets and neighbourhood it lies in (`Whereabouts`), and its
    cluster (None: the issue alone)."""

    issue: Issue
    streets: tuple[str, ...] = ()
    neighbourhood: str | None = None
    cluster: Cluster | None = None

    @property
    def cluster_id(self) -> str:
        return self.cluster.id if self.cluster else str(self.issue.id)

    @property
    def cluster_size(self) -> int:
        return self.cluster.size if self.cluster else 1

    def properties(self) -> dict[str, Any]:
        issue, location = self.issue, self.issue.location
        return {
            "id": str(issue.id),
            "post_id": issue.post.id,
            "category": issue.category.name,
            "service_code": issue.category.service_code,
            "precision": location.precision.value if location else None,
            "place": location.span.text if location and location.span else None,
            "streets": list(self.streets),
            "neighbourhood": self.neighbourhood,
            "urgent": issue.urgent,
            "post_url": issue.post.url,
            "created_at": issue.post.created_at.isoformat(),
            "explanation": list(issue.explanation),
            "cluster": self.cluster_id,
            "cluster_size": self.cluster_size,
        }


def entries(
    issues: Sequence[Issue],
    whereabouts: Whereabouts | None,
    clusters: Mapping[str, Cluster] | None = None,
) -> list[Entry]:
    found = []
    for issue in issues:
        cluster = (clusters or {}).get(str(issue.id))
        location = issue.location
        if whereabouts is None or location is None:
            found.append(Entry(issue, cluster=cluster))
            continue
        streets = tuple(whereabouts.streets(location))
        found.append(Entry(issue, streets, whereabouts.neighbourhood(location), cluster))
    return found


def write_report(
    directory: Path,
    issues: Sequence[Issue],
    summary: dict[str, Any],
    city: str,
    whereabouts: Whereabouts | None,
    clusters: Mapping[str, Cluster] | None = None,
) -> None:
    """Write the four files into `directory` (created when missing, files replaced);
    `clusters` (`IssueCollector.clusters`) groups the issues into problems.

    Every file is made in memory first and each replaces its old self whole (written
    beside it, then renamed), so an interrupted report never leaves a truncated file."""
    listed = entries(issues, whereabouts, clusters)
    dots = [
        Dot(location.lat, location.lon, entry.issue.category.name)
        for entry in listed
        if (location := entry.issue.location) is not None
    ]
    title = f"{city}: {len(dots)} of {len(listed)} issues located, {summary['posts_read']} posts"
    rings = [
        Ring(location.lat, location.lon, entry.cluster_size)
        for entry in listed
        if entry.cluster_size > 1
        and entry.cluster_id == str(entry.issue.id)
        and (location := entry.issue.location) is not None
    ]
    png = draw_map(whereabouts.shape if whereabouts else None, dots, title, rings)
    files = {
        "issues.geojson": _json(geojson(listed, city)).encode(),
        "summary.json": _json(summary).encode(),
        "map.png": png,
        "report.html": page(listed, summary, city, png).encode(),
    }
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        part = directory / f".{name}.part"
        part.write_bytes(content)
        os.replace(part, directory / name)


def _json(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def geojson(listed: Sequence[Entry], city: str) -> dict[str, Any]:
    features = []
    unlocated = []
    for entry in listed:
        location = entry.issue.location
        if location is None:
            unlocated.append(entry.properties())
            continue
        features.append(
            {
                "type": "Feature",
                "id": str(entry.issue.id),
                "geometry": {
                    "type": "Point",
                    "coordinates": [round(location.lon, 7), round(location.lat, 7)],
                },
                "properties": entry.properties(),
            }
        )
    return {"type": "FeatureCollection", "city": city, "features": features, "unlocated": unlocated}


# -- the HTML page ----------------------------------------------------------------------

_CSS = """
body { font: 15px/1.45 system-ui, sans-serif; color: #222; margin: 0 auto; max-width: 1100px;
       padding: 1.5rem; background: #fff; }
h1 { font-size: 1.6rem; margin: 0 0 1rem; }
h2 { font-size: 1.2rem; border-bottom: 1px solid #ddd; padding-bottom: .2rem; }
table.summary { border-collapse: collapse; min-width: 26rem; }
table.summary td { padding: .15rem .8rem; border-bottom: 1px solid #eee; }
table.summary td.n { text-align: right; font-variant-numeric: tabular-nums; }
table.summary tr.sub td:first-child { padding-left: 2rem; color: #555; }
img.map { max-width: 100%; height: auto; border: 1px solid #ddd; }
ol.issues { padding-left: 1.4rem; }
ol.issues > li { margin: 0 0 1.1rem; }
.swatch { display: inline-block; width: .8rem; height: .8rem; border-radius: 50%;
          margin-right: .35rem; vertical-align: baseline; }
.meta, .place { color: #555; }
.urgent { color: #b00020; font-weight: 600; }
.cluster { color: #6a3d9a; font-weight: 600; }
blockquote { margin: .3rem 0; padding: .2rem .8rem; border-left: 3px solid #ccc;
             white-space: pre-wrap; overflow-wrap: anywhere; }
ul.why { margin: .2rem 0; color: #333; font-size: .92rem; }
"""

_POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
_SUB = ' class="sub"'


def page(listed: Sequence[Entry], summary: dict[str, Any], city: str, png: bytes) -> str:
    title = f"overheard replay — {city}"
    colours = category_colours(e.issue.category.name for e in listed)
    picture = base64.b64encode(png).decode("ascii")
    posts = {str(entry.issue.id): entry.issue.post.id for entry in listed}
    items = "\n".join(_item(entry, colours, posts) for entry in listed)
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{_POLICY}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title>
<style>{_CSS}</style>
</head>
<body>
<h1>{escape(title)}</h1>
<section id="summary">
<h2>Summary</h2>
<table class="summary">
{_summary_rows(summary)}
</table>
</section>
<section id="map">
<h2>Map</h2>
<img class="map" alt="map of {escape(city)} with the located issues"
 src="data:image/png;base64,{picture}">
</section>
<section id="issues">
<h2>Issues ({len(listed)})</h2>
<ol class="issues">
{items}
</ol>
</section>
</body>
</html>
"""


def _summary_rows(summary: dict[str, Any]) -> str:
    rows: list[tuple[str, Any, bool]] = [
        ("posts read", summary["posts_read"], False),
        (
            "stopped by the prefilter",
            f"{summary['stopped_by_prefilter']} ({summary['stopped_by_prefilter_share']:.0%})",
            False,
        ),
        ("issues found", summary["issues"], False),
        *((name, n, True) for name, n in summary["issues_by_category"].items()),
        *(
            ("not located" if p == "unlocated" else f"located: {p}", n, True)
            for p, n in summary["issues_by_precision"].items()
        ),
        ("addressed the city (excluded)", summary["addressed_city_excluded"], False),
        ("outside the city (excluded)", summary["outside_city_excluded"], False),
        ("urgent", summary["urgent"], False),
        *_cluster_rows(summary.get("clusters")),
        ("dead letters", sum(summary["deadletters"].values()), False),
        *((reason, n, True) for reason, n in summary["deadletters"].items()),
        ("top streets", "", False),
        *((top["name"], top["issues"], True) for top in summary["top_streets"]),
        ("top neighbourhoods", "", False),
        *((top["name"], top["issues"], True) for top in summary["top_neighbourhoods"]),
    ]
    return "\n".join(
        f"<tr{_SUB if sub else ''}><td>{escape(str(label))}</td>"
        f'<td class="n">{escape(str(value))}</td></tr>'
        for label, value, sub in rows
    )


def _cluster_rows(clusters: dict[str, int] | None) -> list[tuple[str, Any, bool]]:
    if clusters is None:
        return []
    return [
        ("problems (clusters of reports)", clusters["problems"], False),
        ("with more than one report", clusters["multi_report"], True),
        ("most reports of one problem", clusters["largest"], True),
    ]


def _item(entry: Entry, colours: dict[str, str], posts: dict[str, str]) -> str:
    issue = entry.issue
    post = issue.post
    category = issue.category
    head = (
        f'<span class="swatch" style="background:{colours[category.name]}"></span>'
        f"<strong>{escape(category.name)}</strong>"
    )
    if category.service_code:
        head += f' <span class="meta">(311 service {escape(category.service_code)})</span>'
    if issue.urgent:
        head += ' <span class="urgent">urgent</span>'
    if entry.cluster_size > 1:
        head += f' <span class="cluster">{_reports(entry, posts)}</span>'
    text = post.text if len(post.text) <= EXCERPT else post.text[:EXCERPT].rstrip() + "…"
    why = "".join(f"<li>{escape(reason)}</li>" for reason in issue.explanation)
    link = _link(post.url)
    when = post.created_at.strftime("%Y-%m-%d %H:%M UTC")
    return f"""<li class="issue" id="issue-{issue.id}">
<div>{head}</div>
<div class="place">{_place(entry)}</div>
<blockquote>{escape(text)}</blockquote>
<ul class="why">{why}</ul>
<div class="meta">{escape(when)} · {escape(post.id)}{link}</div>
</li>"""


def _reports(entry: Entry, posts: dict[str, str]) -> str:
    """How many reports the problem has, naming the first one's post from a later one."""
    said = f"{entry.cluster_size} reports of one problem"
    if entry.cluster_id == str(entry.issue.id):
        return f"{said} (the first)"
    return f"{said} (first: {escape(posts.get(entry.cluster_id, entry.cluster_id))})"


def _place(entry: Entry) -> str:
    location = entry.issue.location
    if location is None:
        return "not located"
    said = f"“{escape(location.span.text)}” — " if location.span else ""
    where = [*entry.streets, *([entry.neighbourhood] if entry.neighbourhood else [])]
    found = f" ({escape(', '.join(where))})" if where else ""
    return f"{said}{escape(location.precision.value)}{found}"


def _link(url: str | None) -> str:
    """A link to the post, only for http(s) URLs (a `javascript:` URL in an archive is not)."""
    if not url or urlsplit(url).scheme not in ("http", "https"):
        return ""
    return f' · <a href="{escape(url)}" rel="noopener noreferrer">the post</a>'
