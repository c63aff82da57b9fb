"""`overheard explain "text"`: one decision, and why, for a person who never saw the code."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from overheard.classify.decide import Classifier, Decision, Outcome
from overheard.model import Platform, Post, Provenance, Thread

#: What each outcome means, in words.
MEANINGS = {
    Outcome.NOT_JUDGED: "not judged",
    Outcome.STOPPED_BY_SCAN: "not a complaint: nothing civic in it",
    Outcome.NO_COMPLAINT: "not a complaint",
    Outcome.NOT_CIVIC: "a complaint, but not about a problem a city service fixes",
    Outcome.ADDRESSED_CITY: "a local complaint the city already heard (excluded)",
    Outcome.OUTSIDE_CITY: "a complaint about a place outside the city (excluded)",
    Outcome.ISSUE: "a local complaint: an issue for the city",
}


def post_for(
    text: str,
    *,
    platform: Platform = Platform.X,
    subreddit: str | None = None,
    mentions: tuple[str, ...] = (),
    reply_to_author: str | None = None,
    language: str | None = None,
) -> Post:
    """A post carrying `text`, as a connector would give it."""
    now = datetime.now(UTC)
    return Post(
        id=Post.make_id(platform, "explain"),
        platform=platform,
        created_at=now,
        text=text,
        language=language,
        mentions=mentions,
        thread=Thread(subreddit=subreddit, reply_to_author=reply_to_author),
        provenance=Provenance(connector="explain", connector_version="1", collected_at=now),
    )


def explain(classifier: Classifier, post: Post) -> Decision:
    (decision,) = classifier.classify([post])
    return decision


def as_json(decision: Decision, classifier: Classifier) -> dict[str, Any]:
    issue = decision.issue
    return {
        "outcome": decision.outcome.value,
        "meaning": MEANINGS[decision.outcome],
        "decided_at": decision.decided_at.value,
        "steps": [{"stage": step.stage.value, "text": step.text} for step in decision.steps],
        "issue": issue.model_dump(mode="json", exclude={"post"}) if issue else None,
        "versions": classifier.versions.model_dump(),
    }


def render(decision: Decision, classifier: Classifier, console: Console) -> None:
    console.print(
        f"[bold]{MEANINGS[decision.outcome]}[/] "
        f"([cyan]{decision.outcome.value}[/], settled by the {decision.decided_at.value} step)"
    )
    table = Table(show_header=True, header_style="bold", expand=False)
    table.add_column("step")
    table.add_column("what it found")
    for step in decision.steps:
        table.add_row(step.stage.value, step.text)
    console.print(table)
    issue = decision.issue
    if issue is not None:
        code = issue.category.service_code or "none (not filed to 311)"
        console.print(f"category: [bold]{issue.category.name}[/], 311 service code: {code}")
        if issue.location is not None:
            where = issue.location
            span = f" from '{where.span.text}'" if where.span else ""
            console.print(
                f"place: {where.lat:.5f}, {where.lon:.5f} at {where.precision.value} "
                f"precision{span} (confidence {where.confidence:.2f})"
            )
        else:
            console.print("place: not found in the text")
        if issue.urgent:
            console.print(f"urgent: yes; filed to 311: {'yes' if issue.to_311 else 'no'}")
    versions = classifier.versions
    console.print(f"[dim]classifier {versions.classifier}, profile {versions.profile}[/]")
