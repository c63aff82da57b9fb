"""The `overheard` command: one subcommand per job, each option naming its environment variable."""

from __future__ import annotations

import json
import sys
import threading
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from overheard.classify.encoder import SHIPPED as SHIPPED_ENCODER
from overheard.errors import ConfigError
from overheard.settings import Settings, env_name, load_settings, shown

if TYPE_CHECKING:
    from overheard.replay_time import TimeWindow

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
deadletters_app = typer.Typer(
    help="The dead-letter topic: list, show, and replay fixed messages to their origin.",
    no_args_is_help=True,
)
app.add_typer(deadletters_app, name="deadletters")

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


LogFormatOption = Annotated[
    str | None,
    typer.Option(
        "--log-format",
        envvar=env_name("log", "format"),
        show_envvar=True,
        help="json, text, or auto (text when stderr is a terminal, JSON lines otherwise).",
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


def _logging(level: str, settings: Settings | None = None) -> None:
    """Structured logs on stderr, every secret of `settings` masked (overheard/logs.py)."""
    from overheard import logs

    if settings is None:
        logs.configure(level)
        return
    logs.configure(level, settings.log.format, logs.secrets_in(settings))


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


class ReplayBus(StrEnum):
    MEMORY = "memory"
    KAFKA = "kafka"


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
    report: Annotated[
        Path | None,
        typer.Option(
            "--report",
            help="Also write a report folder: issues.geojson, summary.json, map.png and a "
            "self-contained report.html.",
            file_okay=False,
        ),
    ] = None,
    log_level: LogLevel = "WARNING",
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help="Only posts created at this ISO date (its midnight UTC) or datetime or later.",
        ),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(
            "--until",
            help="Only posts created before this ISO date (its midnight UTC) or datetime.",
        ),
    ] = None,
    speed: Annotated[
        float | None,
        typer.Option(
            "--speed",
            min=0.001,
            help="Replay at this multiple of real time (posts' own times, gaps capped at "
            "a minute), for demos; as fast as possible when not given.",
        ),
    ] = None,
    bus: Annotated[
        ReplayBus,
        typer.Option(
            "--bus",
            help="memory: every stage in this process; kafka: through the broker "
            "(--bootstrap), on topics and groups of this replay's own, deleted at the end.",
        ),
    ] = ReplayBus.MEMORY,
    bootstrap: Bootstrap = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=0,
            help="Processes that read and classify shares of the archives (in-process bus, "
            "no --speed); 0: one per usable core, 1: all in this process. Default: "
            "[replay] workers (0).",
        ),
    ] = None,
    encoder: Annotated[
        bool | None,
        typer.Option(
            "--encoder/--no-encoder",
            help="Whether the fine-tuned encoder re-scores what the linear civic head lets "
            "through. --no-encoder: the linear heads alone, about ten times faster and less "
            "accurate. Default: [models] encoder (on).",
        ),
    ] = None,
) -> None:
    """Replay archived feeds through every stage in this process, and print a summary.

    Progress is drawn on stderr when it is a terminal. Posts outside --since/--until
    are skipped and counted."""
    from overheard.pipeline import Pipeline
    from overheard.pipeline import replay as run_replay
    from overheard.progress import ReplayProgress
    from overheard.report import IssueCollector, write_report

    window = _time_window(since, until)
    settings = _settings(
        config,
        city=city,
        database__url=db,
        bus__kind="memory",
        bus__bootstrap_servers=bootstrap,
        sinks=sink,
        replay__workers=workers,
        models__encoder=encoder,
    )
    if bus is ReplayBus.KAFKA:
        from overheard.replay_kafka import fresh_bus

        settings = fresh_bus(settings)
    _logging(log_level, settings)
    try:
        pipeline = Pipeline.build(settings)
    except ConfigError as exc:
        err.print(f"[bold red]configuration error[/]\n{exc}", highlight=False)
        raise typer.Exit(2) from exc
    collector = IssueCollector(pipeline.profile.clusters)
    try:
        with ReplayProgress(archives, pipeline.summary, err) as progress:
            run_replay(
                pipeline,
                archives,
                extra_sinks=[collector] if report else [],
                on_progress=progress.advance,
                window=window,
                speed=speed,
            )
    except KeyboardInterrupt:
        err.print(
            "replay interrupted: no summary; the sinks keep what was written before it",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(130) from None
    summary = pipeline.summary.as_dict()
    city_name = pipeline.profile.city.display_name
    if report is not None:
        try:
            write_report(
                report,
                collector.issues,
                summary,
                city_name,
                pipeline.summary.whereabouts,
                collector.clusters,
            )
        except KeyboardInterrupt:
            err.print(
                f"replay interrupted while writing its report: the sinks hold every issue; "
                f"{report}/ may still hold an earlier report's files",
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(130) from None
    if json_summary:
        out.print_json(json.dumps(summary))
    else:
        _print_summary(summary, city_name, settings)
    if report is not None:
        # On stderr with --json, so that stdout stays one JSON document.
        (err if json_summary else out).print(
            f"report in {report}/ (open {report / 'report.html'})", highlight=False
        )


def _time_window(since: str | None, until: str | None) -> TimeWindow | None:
    """`--since/--until` as a window, or None when neither is given."""
    from overheard.replay_time import TimeWindow, parse_instant

    if since is None and until is None:
        return None
    try:
        return TimeWindow(
            parse_instant(since) if since else None, parse_instant(until) if until else None
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--since/--until") from exc


def _print_summary(summary: dict[str, Any], city: str, settings: Settings) -> None:
    table = Table(title=f"overheard replay — {city}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("posts read", str(summary["posts_read"]))
    if summary["outside_time_range"]:
        table.add_row("outside --since/--until (skipped)", str(summary["outside_time_range"]))
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
    outcomes = summary["outcomes"]
    table.add_row("judged not a complaint", str(outcomes.get("no_complaint", 0)))
    table.add_row("a complaint, not civic", str(outcomes.get("not_civic", 0)))
    table.add_row("not judged (language, no words)", str(outcomes.get("not_judged", 0)))
    table.add_row("addressed the city (excluded)", str(summary["addressed_city_excluded"]))
    table.add_row("outside the city (excluded)", str(summary["outside_city_excluded"]))
    table.add_row("urgent", str(summary["urgent"]))
    clusters = summary["clusters"]
    table.add_row("problems (clusters of reports)", str(clusters["problems"]))
    table.add_row("  with more than one report", str(clusters["multi_report"]))
    table.add_row("  most reports of one problem", str(clusters["largest"]))
    for sink, count in summary["issues_written"].items():
        table.add_row(f"written to {sink}", str(count))
    letters = summary["deadletters"]
    table.add_row("dead letters", str(sum(letters.values())))
    for reason, count in letters.items():
        table.add_row(f"  {reason}", str(count))
    for kind in ("streets", "neighbourhoods"):
        top = summary[f"top_{kind}"]
        table.add_row(f"top {kind}", "" if top else "none")
        for entry in top:
            table.add_row(f"  {escape(entry['name'])}", str(entry["issues"]))
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
    connector: Annotated[
        str | None,
        typer.Option(
            "--connector",
            envvar=env_name("ingest", "connector"),
            show_envvar=True,
            help="What the ingest stage reads: archive (the --archive files), x or reddit "
            "(live, credentials from OVERHEARD_X__* / OVERHEARD_REDDIT__*).",
        ),
    ] = None,
    config: ConfigFile = None,
    city: City = None,
    db: Database = None,
    bootstrap: Bootstrap = None,
    sink: Sinks = None,
    log_level: LogLevel = "INFO",
    log_format: LogFormatOption = None,
    health_port: Annotated[
        int | None,
        typer.Option(
            "--health-port",
            help="Serve /healthz, /readyz and /metrics on this port (0: any free port). "
            f"Environment: {env_name('health', 'enabled')}=true and {env_name('health', 'port')}.",
        ),
    ] = None,
) -> None:
    """Run stages as a daemon on Kafka until SIGTERM or SIGINT; SIGHUP reloads the profile."""
    from overheard.daemon import (
        ShutdownTimedOut,
        StageFailed,
        StageName,
        install_signal_handlers,
        run_daemon,
    )
    from overheard.pipeline import Pipeline
    from overheard.retry import Stopped

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
        ingest__connector=connector,
        log__format=log_format,
        health__enabled=True if health_port is not None else None,
        health__port=health_port,
    )
    _logging(log_level, settings)
    stop = threading.Event()
    reload = install_signal_handlers(stop)
    try:
        pipeline = Pipeline.build(settings, stop)
        run_daemon(pipeline, chosen, archive or [], reload)
    except Stopped:
        err.print("stopped before every stage had started")
    except StageFailed as exc:
        err.print(f"[bold red]{exc}[/]: see the log above")
        raise typer.Exit(1) from exc
    except ShutdownTimedOut as exc:
        err.print(f"[bold red]shutdown grace period exceeded[/]: {exc}")
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
    from overheard.logs import Masker, secrets_in

    settings = _settings(
        config, city=city, database__url=db, bus__bootstrap_servers=bootstrap, bus__kind=bus
    )
    results = run_checks(settings)
    mask = Masker(secrets_in(settings))
    table = Table(title="overheard check", title_justify="left")
    for column in ("what", "status", "detail"):
        table.add_column(column, overflow="fold")
    for result in results:
        status = "[green]✓ ok[/]" if result.ok else "[bold red]✗ failed[/]"
        table.add_row(escape(result.what), status, escape(mask(result.detail)))
    out.print(table)
    failed = [result.what for result in results if not result.ok]
    if failed:
        out.print(
            f"[bold red]{len(failed)} of {len(results)} failed[/]: {escape(', '.join(failed))}"
        )
        raise typer.Exit(1)
    out.print(f"[green]all {len(results)} checks passed[/]")


DeadLetterIds = Annotated[
    list[str] | None,
    typer.Argument(help="Dead letters by id (partition:offset, as `deadletters list` shows)."),
]
StageFilter = Annotated[
    str | None, typer.Option("--stage", help="Only those from this stage (ingest, classify, sink).")
]
ErrorFilter = Annotated[
    str | None,
    typer.Option("--error", help="Only those of this error type, e.g. MalformedMessage."),
]


def _deadletters(
    config: Path | None, city: str | None, bootstrap: str | None
) -> tuple[Settings, Any, list[Any]]:
    """The settings, the city's topics, and every dead letter in its topic (read from Kafka)."""
    from overheard.deadletters import parse, read_kafka
    from overheard.errors import OverheardError
    from overheard.pipeline import topics_for
    from overheard.profile import load_profile

    settings = _settings(config, city=city, bus__bootstrap_servers=bootstrap, bus__kind="kafka")
    try:
        topics = topics_for(settings, load_profile(settings.city))
        letters = parse(read_kafka(settings.bus, topics.deadletters))
    except OverheardError as exc:
        err.print(f"[bold red]error[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from exc
    return settings, topics, letters


def _chosen(letters: list[Any], ids: list[str], stage: str | None, error: str | None) -> list[Any]:
    from overheard.deadletters import select

    try:
        return select(letters, ids, stage, error)
    except KeyError as exc:
        err.print(f"[bold red]no such dead letter[/]: {exc.args[0]}", highlight=False)
        raise typer.Exit(2) from exc


@deadletters_app.command("list")
def deadletters_list(
    config: ConfigFile = None,
    city: City = None,
    bootstrap: Bootstrap = None,
    stage: StageFilter = None,
    error: ErrorFilter = None,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON object a line.")] = False,
) -> None:
    """List the dead letters: id, when, stage, error, reason and origin (from the headers)."""
    _, topics, letters = _deadletters(config, city, bootstrap)
    chosen = _chosen(letters, [], stage, error)
    rows = [
        {
            "id": s.id,
            "at": s.letter.at.isoformat() if s.letter.at else "",
            "stage": s.letter.stage,
            "error": s.letter.error,
            "reason": s.letter.reason,
            "origin": s.letter.origin,
            "bytes": len(s.letter.original),
        }
        for s in chosen
    ]
    if json_out:
        for row in rows:
            out.print(json.dumps(row), highlight=False, soft_wrap=True)
        return
    table = Table(title=f"{topics.deadletters}: {len(rows)} dead letters", title_justify="left")
    for column in ("id", "at", "stage", "error", "reason", "origin", "bytes"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(escape(str(value)) for value in row.values()))
    out.print(table)


@deadletters_app.command("show")
def deadletters_show(
    letter_id: Annotated[str, typer.Argument(help="partition:offset, as `list` shows.")],
    config: ConfigFile = None,
    city: City = None,
    bootstrap: Bootstrap = None,
    raw: Annotated[
        bool, typer.Option("--raw", help="Write only the original bytes, unchanged, to stdout.")
    ] = False,
) -> None:
    """Show one dead letter: its headers, then the original message."""
    _, _, letters = _deadletters(config, city, bootstrap)
    [stored] = _chosen(letters, [letter_id], None, None)
    if raw:
        sys.stdout.buffer.write(stored.letter.original)
        sys.stdout.buffer.flush()
        return
    table = Table(title=f"dead letter {stored.id}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for name, value in stored.record.headers:
        table.add_row(escape(name), escape(value.decode("utf-8", "replace")))
    key = stored.record.key
    table.add_row("key", escape(key.decode("utf-8", "replace")) if key is not None else "none")
    table.add_row("original bytes", str(len(stored.letter.original)))
    out.print(table)
    try:
        text = stored.letter.original.decode("utf-8")
    except UnicodeDecodeError:
        out.print("the original is not UTF-8 text; as hex:")
        text = stored.letter.original.hex(" ")
    out.print(escape(text), highlight=False, soft_wrap=True)


@deadletters_app.command("replay")
def deadletters_replay(
    ids: DeadLetterIds = None,
    config: ConfigFile = None,
    city: City = None,
    bootstrap: Bootstrap = None,
    every: Annotated[
        bool, typer.Option("--all", help="Every dead letter (narrowed by --stage, --error).")
    ] = False,
    stage: StageFilter = None,
    error: ErrorFilter = None,
) -> None:
    """Re-drive dead letters, byte for byte, to the topic they came from (after a fix).

    Replaying the same letter twice writes no issue twice: issue ids are derived from
    the post, and sinks write each issue once.
    """
    from overheard.bus.kafka import KafkaBus
    from overheard.deadletters import replay as run_replay

    if not ids and not every:
        err.print("name dead letters by id, or pass --all")
        raise typer.Exit(2)
    settings, topics, letters = _deadletters(config, city, bootstrap)
    chosen = _chosen(letters, ids or [], stage, error)
    producer = KafkaBus(settings.bus, topics).producer()
    try:
        done = run_replay(chosen, producer, topics)
    finally:
        producer.close()
    table = Table(title=f"replayed {sum(r.topic is not None for r in done)}", title_justify="left")
    for column in ("id", "stage", "to", "note"):
        table.add_column(column, overflow="fold")
    for replayed in done:
        table.add_row(
            replayed.stored.id,
            replayed.stored.letter.stage,
            replayed.topic or "-",
            escape(replayed.note),
        )
    out.print(table)


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
    COMPLAINT = "complaint"
    CIVIC = "civic"
    CATEGORY = "category"
    LOCATION = "location"


@app.command()
def explain(
    text: Annotated[str, typer.Argument(help="The post's text.")],
    config: ConfigFile = None,
    city: City = None,
    platform: Annotated[
        str, typer.Option(help="The platform the post is from: x or reddit.")
    ] = "x",
    subreddit: Annotated[str | None, typer.Option(help="The subreddit of a Reddit post.")] = None,
    mention: Annotated[
        list[str] | None, typer.Option(help="An account the post mentions (repeatable).")
    ] = None,
    reply_to: Annotated[
        str | None, typer.Option("--reply-to", help="The account the post answers.")
    ] = None,
    language: Annotated[
        str | None, typer.Option(help="The language the platform gives the post.")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Print the decision for one text and why: every step of the cascade that weighed it."""
    from overheard.explain import as_json, explain, post_for, render
    from overheard.model import Platform
    from overheard.pipeline import Pipeline

    settings = _settings(config, city=city)
    try:
        classifier = Pipeline.build(settings).classifier()
        post = post_for(
            text,
            platform=Platform(platform),
            subreddit=subreddit,
            mentions=tuple(mention or ()),
            reply_to_author=reply_to,
            language=language,
        )
    except (ConfigError, ValueError) as exc:
        err.print(f"[bold red]error[/]\n{escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from exc
    decision = explain(classifier, post)
    if json_out:
        out.print_json(json.dumps(as_json(decision, classifier)))
    else:
        render(decision, classifier, out)


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
    label_column: Annotated[
        str, typer.Option(help="The column holding the label (complaint, civic, category).")
    ] = "label",
    label_map: Annotated[
        Path | None,
        typer.Option(
            "--label-map",
            help="TOML whose \\[map] table turns the set's category names into taxonomy keys.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    models: Annotated[
        Path, typer.Option("--models", help="The trained text models' folder (overheard train).")
    ] = Path("var/models"),
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Measure overheard on a labelled set: precision, recall, F1 of the text models'
    complaint, civic or category head against `label`; location: share located and error
    in metres."""
    from overheard.evaluation import Columns, evaluate_location

    if task is not Task.LOCATION:
        columns = Columns(text_column, label=label_column)
        _evaluate_text(labelled, task, models, label_map, columns, json_out)
        return
    from overheard.geo.city import locator_for
    from overheard.profile import load_profile

    settings = _settings(config, city=city)
    try:
        profile = load_profile(settings.city)
        locator = locator_for(profile, settings.geo.gazetteer_dir, settings.geo)
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


def _evaluate_text(
    labelled: Path,
    task: Task,
    models_dir: Path,
    label_map: Path | None,
    columns: Any,
    json_out: bool,
) -> None:
    from overheard.classify.datasets import load_label_map
    from overheard.classify.textmodels import TextModels
    from overheard.evaluation import evaluate_text, text_tables

    try:
        names = load_label_map(label_map) if label_map is not None else None
        result = evaluate_text(labelled, task.value, TextModels.load(models_dir), names, columns)
    except ConfigError as exc:
        err.print(f"[bold red]error[/]\n{escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from exc
    if json_out:
        out.print_json(json.dumps(result))
        return
    for table in text_tables(result, f"overheard eval — {task.value}, {labelled.name}"):
        out.print(table)


@app.command()
def train(
    data: Annotated[
        Path | None,
        typer.Option(help="The shared data folder holding complaints/ (default: ../shared/data)."),
    ] = None,
    out_dir: Annotated[
        Path, typer.Option("--out", help="Where the trained models and their metrics go.")
    ] = Path("var/models"),
    seed: Annotated[
        int | None, typer.Option(help="Random seed (default: config/models/text-models.toml).")
    ] = None,
    encoder: Annotated[
        bool,
        typer.Option(
            "--encoder",
            help="Also fine-tune the MiniLM encoder's complaint and civic heads (about 25 "
            "minutes on two cores; needs JAX: pip install -e '.[train]').",
        ),
    ] = False,
    encoder_out: Annotated[
        Path, typer.Option(help="Where the fine-tuned encoder adapter goes.")
    ] = SHIPPED_ENCODER,
) -> None:
    """Train the text models (complaint, civic, category) and print their held-out figures."""
    from overheard.classify.datasets import DEFAULT_DATA_DIR
    from overheard.classify.finetune import train_encoder
    from overheard.classify.train import load_config
    from overheard.classify.train import train as train_models
    from overheard.evaluation import encoder_table, heldout_table

    _logging("INFO")
    try:
        if encoder:
            config = load_config()
            encoder_metrics = train_encoder(
                data or DEFAULT_DATA_DIR,
                encoder_out,
                config["encoder"],
                int(config["seed"]) if seed is None else seed,
            )
            out.print(encoder_table(encoder_metrics))
        metrics = train_models(data or DEFAULT_DATA_DIR, out_dir, seed)
    except ConfigError as exc:
        err.print(f"[bold red]error[/]\n{escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from exc
    out.print(heldout_table(metrics))
    out.print(f"models {metrics['version']} written to {out_dir}")


# -- ingest: the live connectors' deletion checks -------------------------------------------

ingest_app = typer.Typer(
    help="The live connectors' chores outside `run`: deletions on the platforms.",
    no_args_is_help=True,
)
app.add_typer(ingest_app, name="ingest")


class CheckedPlatform(StrEnum):
    x = "x"
    reddit = "reddit"


@ingest_app.command("compliance")
def ingest_compliance(
    platform: Annotated[CheckedPlatform, typer.Argument(help="x or reddit.")],
    forget_them: Annotated[
        bool,
        typer.Option(
            "--forget/--no-forget",
            help="Forget what was found in every sink now (as the daemon's housekeeping "
            "would), or only record it.",
        ),
    ] = True,
    config: ConfigFile = None,
    city: City = None,
    db: Database = None,
) -> None:
    """Ask X (batch compliance) or Reddit (/api/info) which posts sent were deleted since,
    record them with the connectors' deletions, and forget them."""
    from overheard import audit
    from overheard.errors import OverheardError
    from overheard.forget import forget_deletions
    from overheard.ingest.cursors import CursorStore
    from overheard.ingest.recheck import Checker, keep_days, now_utc, recheck
    from overheard.ingest.reddit_client import reddit_client
    from overheard.ingest.reddit_recheck import RedditRecheck
    from overheard.ingest.x_compliance import XCompliance
    from overheard.privacy import Pseudonymiser

    settings = _settings(config, city=city, database__url=db)
    _logging("WARNING", settings)
    store = CursorStore(settings.ingest.checkpoint_dir / "live.sqlite")
    try:
        checker: Checker
        if platform is CheckedPlatform.x:
            checker = XCompliance.from_settings(settings.x, threading.Event())
        else:
            checker = RedditRecheck(reddit_client(settings.reddit))
        batch = recheck(checker, store, keep_days(settings), now_utc())
        store.commit(batch.stream, batch.cursor, batch.deletions)
        out.print(
            f"{batch.cursor['checked']} post(s) checked on {platform.value}, "
            f"{len(batch.deletions)} deleted or removed since read"
        )
        if forget_them:
            sinks = _open_sinks(settings)
            audit_log = audit.AuditLog.from_settings(settings)
            try:
                done = forget_deletions(
                    store.deletions(), sinks, audit_log, Pseudonymiser.from_settings(settings)
                )
            finally:
                for sink in sinks:
                    sink.close()
                audit_log.close()
            out.print(f"{done} post(s) forgotten (recorded in the audit log)")
    except ConfigError as exc:
        err.print(f"[bold red]configuration error[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from exc
    except OverheardError as exc:
        err.print(f"[bold red]error[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(1) from exc
    finally:
        store.close()


# -- privacy: forget and retention ----------------------------------------------------------

retention_app = typer.Typer(
    help="Post text kept per sink for [retention] text_days, then dropped.", no_args_is_help=True
)
app.add_typer(retention_app, name="retention")


def _open_sinks(settings: Settings) -> list[Any]:
    """The configured sinks, made as the daemon makes them and opened."""
    from overheard.errors import OverheardError
    from overheard.sinks.registry import create_sink

    sinks: list[Any] = []
    try:
        for name in settings.sinks:
            sink = create_sink(name, settings)
            sink.open()
            sinks.append(sink)
    except OverheardError as exc:
        for sink in sinks:
            sink.close()
        err.print(f"[bold red]error[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from exc
    return sinks


@app.command("forget")
def forget_command(
    post_id: Annotated[
        str | None, typer.Argument(help="The post, as overheard names it: x:1849…, reddit:t1_…")
    ] = None,
    author: Annotated[
        str | None,
        typer.Option("--author", help="Every post of this author (the platform's author id)."),
    ] = None,
    config: ConfigFile = None,
    city: City = None,
    db: Database = None,
) -> None:
    """Remove a post's (or an author's) text and author from every sink that keeps them."""
    from overheard import audit
    from overheard.errors import OverheardError
    from overheard.forget import forget
    from overheard.privacy import Pseudonymiser

    if (post_id is None) == (author is None):
        err.print("[bold red]error[/] give a POST_ID or --author ID, not both")
        raise typer.Exit(2)
    settings = _settings(config, city=city, database__url=db)
    _logging("WARNING", settings)
    sinks = _open_sinks(settings)
    audit_log = audit.AuditLog.from_settings(settings)
    try:
        changed = forget(
            sinks,
            audit_log,
            Pseudonymiser.from_settings(settings),
            actor=audit.cli_actor(),
            post_id=post_id,
            author_id=author,
        )
    except OverheardError as exc:
        err.print(f"[bold red]error[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from exc
    finally:
        for sink in sinks:
            sink.close()
        audit_log.close()
    for name, count in changed.items():
        out.print(f"{name}: {count} record(s) changed")
    out.print("forgotten (recorded in the audit log)")


@retention_app.command("apply")
def retention_apply(config: ConfigFile = None, city: City = None, db: Database = None) -> None:
    """Drop the post text each sink keeps past its retention; keep the issues."""
    from datetime import UTC, datetime

    from overheard import audit
    from overheard.errors import OverheardError
    from overheard.retention import apply_retention

    settings = _settings(config, city=city, database__url=db)
    _logging("WARNING", settings)
    sinks = _open_sinks(settings)
    audit_log = audit.AuditLog.from_settings(settings)
    try:
        changed = apply_retention(
            sinks,
            settings.retention,
            audit_log,
            actor=audit.cli_actor(),
            now=datetime.now(UTC),
        )
    except OverheardError as exc:
        err.print(f"[bold red]error[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from exc
    finally:
        for sink in sinks:
            sink.close()
        audit_log.close()
    if not changed:
        out.print("no sink has a retention ([retention] text_days)")
    for name, count in changed.items():
        out.print(f"{name}: text dropped from {count} record(s)")


# -- replies: acknowledgement drafts for residents -------------------------------------------

replies_app = typer.Typer(
    help="Replies to residents whose report became a 311 request: review before posting.",
    no_args_is_help=True,
)
app.add_typer(replies_app, name="replies")


def _reply_queue(config: Path | None, city: str | None) -> Any:
    from overheard import audit
    from overheard.replies import ReplyQueue

    settings = _settings(config, city=city)
    return ReplyQueue(audit.AuditLog.from_settings(settings))


@replies_app.command("list")
def replies_list(
    state: Annotated[
        str | None,
        typer.Option(help="Only those in this state: draft, approved, rejected, posting, posted."),
    ] = None,
    config: ConfigFile = None,
    city: City = None,
) -> None:
    """List the replies in the review queue, oldest first."""
    queue = _reply_queue(config, city)
    table = Table(title="replies", title_justify="left")
    for column in ("issue", "post", "state", "request", "text"):
        table.add_column(column, overflow="fold")
    for reply in queue.list(state):
        table.add_row(
            str(reply.issue_id),
            escape(reply.post_id),
            reply.state,
            escape(reply.service_request_id),
            escape(reply.text),
        )
    out.print(table)


def _review(issue_id: str, approve: bool, config: Path | None, city: str | None) -> None:
    import uuid
    from datetime import UTC, datetime

    from overheard.audit import cli_actor

    try:
        wanted = uuid.UUID(issue_id)
    except ValueError as exc:
        err.print(f"[bold red]error[/] not an issue id: {escape(issue_id)}")
        raise typer.Exit(2) from exc
    queue = _reply_queue(config, city)
    if not queue.review(wanted, approve, cli_actor(), datetime.now(UTC)):
        out.print(f"no draft of issue {wanted} (see `overheard replies list`)")
        raise typer.Exit(1)
    out.print(f"{'approved' if approve else 'rejected'}: {wanted}")


@replies_app.command("approve")
def replies_approve(
    issue_id: Annotated[str, typer.Argument(help="The issue whose draft reply to approve.")],
    config: ConfigFile = None,
    city: City = None,
) -> None:
    """Approve a draft reply: it will be posted once."""
    _review(issue_id, True, config, city)


@replies_app.command("reject")
def replies_reject(
    issue_id: Annotated[str, typer.Argument(help="The issue whose draft reply to reject.")],
    config: ConfigFile = None,
    city: City = None,
) -> None:
    """Reject a draft reply: it is never posted."""
    _review(issue_id, False, config, city)


@replies_app.command("post")
def replies_post(config: ConfigFile = None, city: City = None) -> None:
    """Post the approved replies, once each, with the accounts of [replies]."""
    from datetime import UTC, datetime

    from overheard import audit
    from overheard.errors import OverheardError
    from overheard.replies import ReplyQueue, post_approved
    from overheard.reply_platforms import repliers

    settings = _settings(config, city=city)
    _logging("WARNING", settings)
    queue = ReplyQueue(audit.AuditLog.from_settings(settings))
    accounts = repliers(settings)
    if not accounts:
        err.print("[bold red]error[/] no reply account is configured ([replies])")
        raise typer.Exit(2)
    for platform, replier in accounts.items():
        try:
            posted = post_approved(queue, replier, datetime.now(UTC), platform=platform)
        except OverheardError as exc:
            err.print(f"[bold red]error[/] {platform}: {escape(str(exc))}", highlight=False)
            raise typer.Exit(1) from exc
        out.print(f"{platform}: {posted} repl{'y' if posted == 1 else 'ies'} posted")
