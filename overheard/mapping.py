"""The report's static map, drawn offline: the city boundary and streets from the gazetteer,
issues as dots coloured by category, with a legend; a problem several residents reported
(a cluster) is circled by a ring that grows with its reports and is labelled with their
number.

Drawn with matplotlib's Agg canvas on a `Figure` of its own (no pyplot, so no global
backend or state), and saved without the "Software" text chunk, so the same input
gives the same PNG bytes.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import shapely
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.colors import to_hex
from matplotlib.figure import Figure

from overheard.geo.shapes import CityShape

SIZE_IN = (9.0, 9.0)
DPI = 100
LAND = "#f3efe6"
EDGE = "#5b5b5b"
STREET = "#a3a3a3"
CLUSTER = "#6a3d9a"
_MARGIN = 0.03


@dataclass(frozen=True)
class Dot:
    lat: float
    lon: float
    category: str


@dataclass(frozen=True)
class Ring:
    """A cluster of `reports` reports, drawn at its first report's point."""

    lat: float
    lon: float
    reports: int


def category_colours(categories: Iterable[str]) -> dict[str, str]:
    """One colour per category, given in name order so the same set always gets the same."""
    names = sorted(set(categories))
    palette = colormaps["tab10" if len(names) <= 10 else "tab20"]
    return {name: to_hex(palette(i % palette.N)) for i, name in enumerate(names)}


def draw_map(
    shape: CityShape | None, dots: Sequence[Dot], title: str, rings: Sequence[Ring] = ()
) -> bytes:
    """The map as PNG bytes."""
    figure = Figure(figsize=SIZE_IN, dpi=DPI)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    if shape is not None:
        _draw_city(axes, shape)
    colours = category_colours(dot.category for dot in dots)
    for category, colour in colours.items():
        mine = [dot for dot in dots if dot.category == category]
        axes.scatter(
            [dot.lon for dot in mine],
            [dot.lat for dot in mine],
            s=46,
            color=colour,
            edgecolors="white",
            linewidths=0.7,
            label=f"{category} ({len(mine)})",
            zorder=3,
        )
    _draw_rings(axes, rings)
    if colours:
        axes.legend(loc="upper left", title="category", fontsize=9, framealpha=0.9)
    else:
        axes.text(0.5, 0.02, "no located issues", transform=axes.transAxes, ha="center")
    _frame(axes, shape, dots)
    axes.set_title(title, fontsize=12)
    figure.tight_layout()
    out = io.BytesIO()
    figure.savefig(out, format="png", metadata={"Software": None})
    return out.getvalue()


def _draw_rings(axes: Axes, rings: Sequence[Ring]) -> None:
    for ring in rings:
        axes.scatter(
            [ring.lon],
            [ring.lat],
            s=46 + 60 * min(ring.reports, 12),
            facecolors="none",
            edgecolors=CLUSTER,
            linewidths=1.6,
            zorder=4,
        )
        axes.annotate(
            str(ring.reports),
            (ring.lon, ring.lat),
            xytext=(7, 7),
            textcoords="offset points",
            color=CLUSTER,
            fontsize=9,
            fontweight="bold",
            zorder=5,
        )


def _draw_city(axes: Axes, shape: CityShape) -> None:
    if shape.boundary is not None:
        for polygon in shapely.get_parts(shape.boundary):
            x, y = polygon.exterior.xy
            axes.fill(x, y, facecolor=LAND, edgecolor=EDGE, linewidth=1.2, zorder=1)
    lines = [
        shapely.get_coordinates(line)
        for street in shape.streets
        for line in shapely.get_parts(street.geometry)
    ]
    axes.add_collection(LineCollection(lines, colors=STREET, linewidths=0.6, zorder=2))


def _frame(axes: Axes, shape: CityShape | None, dots: Sequence[Dot]) -> None:
    """The city's extent (and every dot), a little margin, degrees of equal length."""
    bounds = shape.bounds if shape is not None else None
    xs = [dot.lon for dot in dots] + ([bounds[0], bounds[2]] if bounds else [])
    ys = [dot.lat for dot in dots] + ([bounds[1], bounds[3]] if bounds else [])
    if xs:
        dx = (max(xs) - min(xs)) * _MARGIN or 0.01
        dy = (max(ys) - min(ys)) * _MARGIN or 0.01
        axes.set_xlim(min(xs) - dx, max(xs) + dx)
        axes.set_ylim(min(ys) - dy, max(ys) + dy)
        axes.set_aspect(1 / math.cos(math.radians((min(ys) + max(ys)) / 2)))
    axes.set_xticks([])
    axes.set_yticks([])
