"""Small builders of realistic posts and issues for tests (Baltimore examples)."""

from __future__ import annotations

from datetime import UTC, datetime

from overheard.model import (
    Category,
    Issue,
    Location,
    Platform,
    Post,
    Precision,
    Provenance,
    Scores,
    Span,
    Thread,
    Versions,
)

COLLECTED = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def post(
    text: str,
    native_id: str = "t3_wp55z",
    *,
    platform: Platform = Platform.REDDIT,
    subreddit: str | None = "baltimore",
    mentions: tuple[str, ...] = (),
    language: str | None = None,
    reply_to_author: str | None = None,
    quoted_author: str | None = None,
) -> Post:
    return Post(
        id=Post.make_id(platform, native_id),
        platform=platform,
        url=f"https://www.reddit.com/r/baltimore/comments/{native_id.removeprefix('t3_')}/",
        created_at=datetime(2012, 7, 19, 13, 5, tzinfo=UTC),
        text=text,
        mentions=mentions,
        language=language,
        thread=Thread(
            subreddit=subreddit if platform is Platform.REDDIT else None,
            reply_to_author=reply_to_author,
            quoted_author=quoted_author,
        ),
        provenance=Provenance(connector="test", connector_version="0", collected_at=COLLECTED),
    )


POTHOLE_TEXT = (
    "There's a pothole on Eastern Ave near Linwood big enough to swallow a bike wheel. "
    "It's been there for three weeks and nobody has fixed it."
)


def make_issue(
    native_id: str = "t3_wp55z",
    *,
    city: str = "baltimore",
    text: str = POTHOLE_TEXT,
    category: str = "pothole",
    service_code: str | None = "TRM-Pothole Repair",
    located: bool = True,
) -> Issue:
    """A pothole on Eastern Ave, reported on r/baltimore, as the classifier would emit it."""
    the_post = post(text, native_id)
    place = "Eastern Ave near Linwood"
    location = None
    if located and place in text:
        start = text.index(place)
        location = Location(
            lat=39.2906,
            lon=-76.5790,
            precision=Precision.INTERSECTION,
            span=Span(text=place, start=start, end=start + len(place)),
            source="gazetteer",
            confidence=0.85,
        )
    return Issue(
        id=Issue.id_for(city, the_post.id),
        city=city,
        post=the_post,
        category=Category(name=category, service_code=service_code),
        scores=Scores(complaint=0.93, category=0.88, locality=0.97),
        location=location,
        addresses_city=False,
        names_city=False,
        decided_by="analysis:complaint-model",
        explanation=("complaint cue: 'nobody has fixed it'", "category vocabulary: 'pothole'"),
        versions=Versions(classifier="0.1.0", profile="2026.11.0"),
    )
