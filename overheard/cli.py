"""The `overheard` command: one subcommand per job, each option naming its environment variable."""

from __future__ import annotations

import json
import logging
import sys
import threading
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from overheard.errors import ConfigError
from overheard.settings import Settings, env_name, load_settings, shown

app = typer.Typer(
    help="Hears residents' complaints about local problems and hands them to the city.",
    no_args_is_help=True,
    add_completion=False,
)
config_app = typer.Typer(help="Inspect the configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")
sinks_app = typer.Typer(
    help="The sinks installed (entry points overheard.sinks).", no_args_is_help=True
)
app.add_typer(sinks_app, name="sinks")
gazetteer_app = typer.Typer(
    help="The offline gazetteer (streets, addresses, places, boundary) from OpenStreetMap.",
    no_args_is_help=True,
)
app.add_typer(gazetteer_app, name="gazetteer")

out = Console()
err = Console(stderr=True)

ConfigFile = Annotated[
    Path | None,
    typer.Option(
        "--config", envvar="OVERHEARD_CONFIG", help="Settings file (TOML).", show_envvar=True
    ),
]
City = Annotated[
    str | None,
    typer.Option(
        "--city",
        envvar=env_name("city"),
        show_envvar=True,
        help="City profile: a name in config/cities/ or a TOML path.",
    ),
]
Database = Annotated[
    str | None,
    typer.Option(
        "--db",
        envvar=env_name("database", "url"),
        show_envvar=True,
        help=f"SQLAlchemy URL of the sql sink (password in {env_name('database', 'password')}).",
    ),
]
Bootstrap = Annotated[
    str | None,
    typer.Option(
        "--bootstrap",
        envvar=env_name("bus", "bootstrap_servers"),
        show_envvar=True,
        help="Kafka bootstrap servers, host:port[,host:port…].",
    ),
]
Sinks = Annotated[
    list[str] | None,
    typer.Option(
        "--sink",
        help="A sink to write issues to, by name (see `overheard sinks list`); repeat for "
        "several, each with its own consumer group. Environment: OVERHEARD_SINKS, a JSON "
        'list such as \'["sql", "jsonl"]\'.',
    ),
]
LogLevel = Annotated[
    str,
    typer.Option(
        "--log-level",
        envvar="OVERHEARD_LOG_LEVEL",
        show_envvar=True,
        help="DEBUG, INFO, WARNING or ERROR.",
    ),
]


def _flags(**given: Any) -> dict[str, Any]:
    """Command-line values as nested settings, leaving out what was not given."""
    flags: dict[str, Any] = {}
    for dotted, value in given.items():
        if value is None:
            continue
        *parents, leaf = dotted.split("__")
        node = flags
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = value
    return flags


def _settings(config: Path | None, **given: Any) -> Settings:
    try:
        return load_settings(config, _flags(**given))
    except ConfigError as exc:
        err.print(f"[bold red]configuration error[/]\n{exc}", highlight=False)
        raise typer.Exit(2) from exc


def _logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("kafka").setLevel(logging.WARNING)


@config_app.command("show")
def config_show(
    config: ConfigFile = None, city: City = None, db: Database = None, bootstrap: Bootstrap = None
) -> None:
    """Print the effective settings (defaults < file < environment < flags), secrets masked."""
    settings = _settings(config, city=city, database__url=db, bus__bootstrap_servers=bootstrap)
    out.print_json(json.dumps(shown(settings)))


@sinks_app.command("list")
def sinks_list() -> None:
    """List every installed sink: its package, version, entry point, and whether it loads."""
    from overheard.sinks.registry import GROUP, discover

    found = discover()
    table = Table(title=f"sinks (entry points {GROUP})", title_justify="left")
    for column in ("name", "package", "version", "entry point", "status"):
        table.add_column(column, overflow="fold")
    for sink in found.values():
        status = "[green]ok[/]" if sink.ok else f"[bold red]error[/] {escape(sink.error or '')}"
        table.add_row(sink.name, sink.package, sink.version, sink.value, status)
    out.print(table)
    if not found:
        out.print(f"no sinks installed: no package declares entry points in {GROUP}")


@app.command()
def replay(
    archives: Annotated[
        list[Path],
        typer.Argument(
            help="Archive files (JSON, JSONL, CSV; .gz/.bz2).", exists=True, dir_okay=False
        ),
    ],
    config: ConfigFile = None,
    city: City = None,
    db: Database = None,
    sink: Sinks = None,
    json_summary: Annotated[
        bool, typer.Option("--json", help="Print the summary as JSON.")
    ] = False,
    log_level: LogLevel = "WARNING",
) -> None:
    """Replay archived feeds through every stage in this process, and print a summary."""
    from overheard.pipeline import Pipeline
    from overheard.pipeline import replay as run_replay

    _logging(log_level)
    settings = _settings(config, city=city, database__url=db, bus__kind="memory", sinks=sink)
    try:
        pipeline = Pipeline.build(settings)
    except ConfigError as exc:
        err.print(f"[bold red]configuration error[/]\n{exc}", highlight=False)
        raise typer.Exit(2) from exc
    summary = run_replay(pipeline, archives).as_dict()
    if json_summary:
        out.print_json(json.dumps(summary))
        return
    _print_summary(summary, pipeline.profile.city.display_name, settings)


def _print_summary(summary: dict[str, Any], city: str, settings: Settings) -> None:
    table = Table(title=f"overheard replay — {city}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("posts read", str(summary["posts_read"]))
    share = summary["stopped_by_prefilter_share"]
    table.add_row(
        "stopped by the prefilter scan", f"{summary['stopped_by_prefilter']} ({share:.0%})"
    )
    table.add_row("issues found", str(summary["issues"]))
    for category, count in summary["issues_by_category"].items():
        table.add_row(f"  {category}", str(count))
    for precision, count in summary["issues_by_precision"].items():
        shown = "  not located" if precision == "unlocated" else f"  located: {precision}"
        table.add_row(shown, str(count))
    table.add_row("addressed the city (excluded)", str(summary["addressed_city_excluded"]))
    table.add_row("outside the city (excluded)", str(summary["outside_city_excluded"]))
    table.add_row("urgent", str(summary["urgent"]))
    for sink, count in summary["issues_written"].items():
        table.add_row(f"written to {sink}", str(count))
    letters = summary["deadletters"]
    table.add_row("dead letters", str(sum(letters.values())))
    for reason, count in letters.items():
        table.add_row(f"  {reason}", str(count))
    out.print(table)
    if "sql" in settings.sinks:
        out.print(f"issues are in {settings.database.shown_url()}", highlight=False)


@app.command()
def run(
    stage: Annotated[
        str,
        typer.Option(
            "--stage",
            envvar="OVERHEARD_STAGE",
            show_envvar=True,
            help="all, ingest, classify or sink.",
        ),
    ] = "all",
    archive: Annotated[
        list[Path] | None,
        typer.Option("--archive", help="Archive files the ingest stage feeds into Kafka."),
    ] = None,
    config: ConfigFile = None,
    city: City = None,
    db: Database = None,
    bootstrap: Bootstrap = None,
    sink: Sinks = None,
    log_level: LogLevel = "INFO",
) -> None:
    """Run stages as a daemon on Kafka until SIGTERM or SIGINT."""
    from overheard.daemon import StageFailed, StageName, install_signal_handlers, run_daemon
    from overheard.pipeline import Pipeline
    from overheard.retry import Stopped

    _logging(log_level)
    try:
        chosen = StageName(stage)
    except ValueError as exc:
        err.print(f"--stage must be one of {', '.join(s.value for s in StageName)}")
        raise typer.Exit(2) from exc
    settings = _settings(
        config,
        city=city,
        database__url=db,
        bus__bootstrap_servers=bootstrap,
        bus__kind="kafka",
        sinks=sink,
    )
    stop = threading.Event()
    install_signal_handlers(stop)
    try:
        pipeline = Pipeline.build(settings, stop)
        run_daemon(pipeline, chosen, archive or [])
    except Stopped:
        err.print("stopped before every stage had started")
    except StageFailed as exc:
        err.print(f"[bold red]{exc}[/]: see the log above")
        raise typer.Exit(1) from exc
    except ConfigError as exc:
        err.print(f"[bold red]configuration error[/]\n{exc}", highlight=False)
        raise typer.Exit(2) from exc


@app.command()
def check(
    config: ConfigFile = None,
    city: City = None,
    db: Database = None,
    bootstrap: Bootstrap = None,
    bus: Annotated[
        str | None,
        typer.Option(
            "--bus", envvar=env_name("bus", "kind"), show_envvar=True, help="memory or kafka."
        ),
    ] = None,
) -> None:
    """Validate the configuration and reach every dependency; exit non-zero if any fails."""
    from overheard.checks import run_checks

    settings = _settings(
        config, city=city, database__url=db, bus__bootstrap_servers=bootstrap, bus__kind=bus
    )
    results = run_checks(settings)
    table = Table(title="overheard check", title_justify="left")
    for column in ("what", "status", "detail"):
        table.add_column(column)
    for result in results:
        status = "[green]ok[/]" if result.ok else "[bold red]failed[/]"
        table.add_row(result.what, status, result.detail)
    out.print(table)
    if not all(result.ok for result in results):
        raise typer.Exit(1)


@gazetteer_app.command("build")
def gazetteer_build(
    pbf: Annotated[
        Path,
        typer.Argument(help="The city's OpenStreetMap extract (.osm.pbf).", dir_okay=False),
    ],
    out_file: Annotated[
        Path,
        typer.Option("--out", help="The gazetteer file to write (replaced only when complete)."),
    ],
    boundary: Annotated[
        Path | None,
        typer.Option(
            "--boundary",
            help="The city boundary as GeoJSON, when the extract's relation is clipped.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    admin_relation: Annotated[
        str | None,
        typer.Option(
            "--admin-relation",
            help="Take the city boundary from this administrative relation of the extract "
            "(id or name); it must be whole.",
        ),
    ] = None,
    block_size: Annotated[
        int,
        typer.Option("--block-size", help="House numbers a block (interpolation).", min=1),
    ] = 100,
) -> None:
    """Build the gazetteer of a city from an OpenStreetMap extract, and print its counts."""
    from overheard.geo.build import GazetteerBuildError, build_gazetteer

    try:
        report = build_gazetteer(
            pbf, out_file, boundary=boundary, admin_relation=admin_relation, block_size=block_size
        )
    except GazetteerBuildError as exc:
        err.print(f"[bold red]gazetteer build failed[/]: {escape(str(exc))}", highlight=False)
        raise typer.Exit(1) from exc
    table = Table(title=f"gazetteer {report.path}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    for name, count in report.counts.items():
        if name != "boundary":
            table.add_row(name.replace("_", " "), str(count))
    table.add_row("boundary", report.boundary_source or "none")
    table.add_row("seconds", f"{report.seconds:.1f}")
    out.print(table)


class Task(StrEnum):
    # The complaint, civic and category tasks arrive with the trained models.
    LOCATION = "location"


@app.command("eval")
def evaluate(
    labelled: Annotated[
        Path,
        typer.Argument(
            help="A CSV or JSONL file with `text` and the truth.", exists=True, dir_okay=False
        ),
    ],
    task: Annotated[Task, typer.Option("--task", help="What to measure.")] = Task.LOCATION,
    config: ConfigFile = None,
    city: City = None,
    text_column: Annotated[str, typer.Option(help="The column holding the text.")] = "text",
    lat_column: Annotated[str, typer.Option(help="The column holding the true latitude.")] = "lat",
    lon_column: Annotated[str, typer.Option(help="The column holding the true longitude.")] = "lon",
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Measure overheard on a labelled set; location: share located and error in metres."""
    from overheard.evaluation import Columns, evaluate_location
    from overheard.geo.city import locator_for
    from overheard.profile import load_profile

    settings = _settings(config, city=city)
    try:
        profile = load_profile(settings.city)
        locator = locator_for(profile, settings.geo.gazetteer_dir)
        if locator is None:
            raise ConfigError(f"the {profile.name} profile names no [geo] extract to locate with")
        result = evaluate_location(labelled, locator, Columns(text_column, lat_column, lon_column))
    except ConfigError as exc:
        err.print(f"[bold red]error[/]\n{exc}", highlight=False)
        raise typer.Exit(2) from exc
    if json_out:
        out.print_json(json.dumps(result))
        return
    table = Table(
        title=f"overheard eval — {task.value}, {labelled.name}",
        show_header=False,
        title_justify="left",
    )
    table.add_column(style="bold")
    table.add_column(justify="right")
    for key in (
        "n",
        "located_share",
        "median_error_m",
        "p90_error_m",
        "within_100m",
        "within_250m",
        "outside_city",
        "skipped_without_true_point",
    ):
        table.add_row(key, str(result[key]))
    for precision, figures in result["by_precision"].items():
        error = figures["median_error_m"]
        shown = f"{figures['n']}" + ("" if error is None else f" (median {error} m)")
        table.add_row(f"  {precision}", shown)
    out.print(table)
