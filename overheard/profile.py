"""A city profile: who the city is, what its residents say, and how its 311 names things.

Every vocabulary and threshold the classifier uses lives here, not in code.
Profiles are TOML files in `config/cities/`, found by name or by path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from overheard.model import Precision
from overheard.paths import CONFIG_DIR
from overheard.tomlfile import load_model

Terms = Annotated[list[str], Field(default_factory=list)]
Score = Annotated[float, Field(ge=0, le=1)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CityInfo(_Strict):
    #: Short machine name, used in issue ids and topic names: lowercase, no spaces.
    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]*$")]
    display_name: str
    #: Bumped whenever the vocabulary or thresholds change; recorded on every issue.
    version: str
    timezone: str = "UTC"
    #: Ways residents name the city ("baltimore", "bmore", "charm city").
    names: Terms
    #: Languages (ISO 639-1) the vocabulary and models cover; posts the platform marks
    #: as another language are not judged. Empty: judge every post.
    languages: list[str] = ["en"]


class Accounts(_Strict):
    """The city's official accounts: a post that mentions or answers one addresses the city."""

    x: Terms
    reddit: Terms


#: The catch-all category: a civic complaint that fits none of the others.
OTHER = "other"


class CategoryVocabulary(_Strict):
    label: str
    #: The city's 311 service type for this category (Open311 `service_code`).
    service_code: str | None = None
    #: Phrases that name a problem by themselves ("pothole", "water main break").
    problems: Terms
    #: Phrases that name the subject but need a complaint cue ("streetlight", "alley").
    topics: Terms

    @property
    def terms(self) -> list[str]:
        return self.problems + self.topics


class Community(_Strict):
    #: The subreddits that belong to the city: posts there are local by context.
    subreddits: Terms


class ComplaintVocabulary(_Strict):
    complaint_cues: Terms
    #: Words of civic life that let a post past the cheap scan without meaning a
    #: category by themselves ("road", "drain", "police"); a trailing `*` matches any
    #: word that starts so ("pollut*": pollution, polluted). The scan's recall on real
    #: civic complaints depends on this list: measure before trimming it.
    subjects: Terms
    #: Phrases that mark a report for emergency services rather than 311.
    urgent: Terms


class Places(_Strict):
    """Place names that make a post local before the gazetteer is consulted."""

    neighbourhoods: Terms
    landmarks: Terms
    streets: Terms


class GeoProfile(_Strict):
    """Where the city's gazetteer comes from (paths relative to the config folder)."""

    #: The OpenStreetMap extract (.osm.pbf) that holds the city.
    extract: Path
    #: The city boundary as GeoJSON, when the extract's relation is clipped.
    boundary: Path | None = None
    #: House numbers a block, for interpolating addresses OSM lacks.
    block_size: Annotated[int, Field(ge=1)] = 100

    def resolved(self, base: Path) -> GeoProfile:
        """The same, with relative paths taken from `base`."""
        return self.model_copy(
            update={
                "extract": base / self.extract,
                "boundary": base / self.boundary if self.boundary else None,
            }
        )


class Decision(_Strict):
    #: Keep posts that address the city (flagged) instead of dropping them.
    keep_addressed: bool = False
    #: Complaint score when a problem phrase names the problem by itself.
    problem_score: Score = 0.9
    #: Complaint score when a topic meets a complaint cue.
    cue_score: Score = 0.6
    #: A complaint cue counts only within this many characters of the subject.
    cue_window: Annotated[int, Field(ge=0)] = 60
    #: Minimum complaint score for an issue.
    min_complaint: Score = 0.5
    #: Locality score by evidence; the strongest piece of evidence wins.
    locality_place: Score = 0.9
    locality_community: Score = 0.7
    locality_city_name: Score = 0.6
    locality_none: Score = 0.2
    #: Thresholds on the trained models' probabilities; unset, the threshold tuned
    #: in training (recorded in the model's metadata) applies.
    complaint_threshold: Score | None = None
    civic_threshold: Score | None = None
    #: A post the civic model is this sure about reports a civic problem, which is a
    #: complaint even when nothing in it sounds like one ("garbage dumped by the school").
    civic_report_threshold: Score = 0.6
    #: The category model's choice counts only with at least this probability;
    #: below it a category phrase of the vocabulary decides, else `other`.
    category_threshold: Score = 0.5
    #: An issue needs a subject of one of the profile's categories in its text (a
    #: problem, topic or urgent phrase). The models learnt "civic" from other cities'
    #: posts and lean on words ("water", "street") that mean nothing alone elsewhere.
    require_subject: bool = True
    #: Urgent reports belong to emergency services: kept and counted, but not
    #: filed to 311 unless this is set.
    urgent_to_311: bool = False


class PrivacyProfile(_Strict):
    """What the city's privacy policy allows beyond the defaults (`overheard.privacy`)."""

    #: Hand the author's handle to the open311 sink (never to the others). Only when the
    #: city's policy says its 311 may know who reported.
    handle_to_311: bool = False


class RepliesProfile(_Strict):
    """Acknowledgement drafts for residents whose report became a 311 request
    (`overheard.replies`), in the city's words and language."""

    #: `{request_id}` and `{url}` are filled in; keep it within a post's length (X: 280).
    template: str = (
        "Thanks, this was reported to the city as request {request_id}; you can follow it at {url}"
    )
    #: Where a resident follows a request, with `{request_id}`; unset, the template's
    #: `{url}` is left empty, so write a template without it.
    url: str | None = None
    #: Categories whose replies are approved without review. Empty: every reply waits
    #: for `overheard replies approve`.
    auto_reply: list[str] = []


class ClustersProfile(_Strict):
    """Reports of one problem grouped as one (`overheard.clusters`)."""

    #: Reports within this distance of a cluster's first report join it.
    distance_m: Annotated[float, Field(gt=0, le=5000)] = 60.0
    #: ... when posted within this many hours of the cluster's reports.
    window_hours: Annotated[float, Field(gt=0)] = 168.0
    #: Precisions that pin a problem closely enough to group; street, neighbourhood and
    #: city points are centroids shared by unrelated problems.
    precisions: list[Precision] = [
        Precision.ADDRESS,
        Precision.INTERSECTION,
        Precision.PLACE,
        Precision.PLATFORM_GEOTAG,
    ]


class CityProfile(_Strict):
    city: CityInfo
    accounts: Accounts
    community: Community
    vocabulary: ComplaintVocabulary
    categories: dict[str, CategoryVocabulary]
    places: Places
    geo: GeoProfile | None = None
    decision: Decision = Decision()
    privacy: PrivacyProfile = PrivacyProfile()
    replies: RepliesProfile = RepliesProfile()
    clusters: ClustersProfile = ClustersProfile()

    @field_validator("categories")
    @classmethod
    def _some_categories(
        cls, value: dict[str, CategoryVocabulary]
    ) -> dict[str, CategoryVocabulary]:
        if OTHER not in value:
            raise ValueError(f"a profile needs the catch-all category `{OTHER}`")
        empty = [key for key, terms in value.items() if key != OTHER and not terms.terms]
        if empty:
            raise ValueError(
                f"categories {', '.join(empty)} need at least one term in `problems` or "
                "`topics` (only `other` may have none)"
            )
        return value

    @property
    def name(self) -> str:
        return self.city.name


def profile_path(name_or_path: str) -> Path:
    """`baltimore` → config/cities/baltimore.toml; anything with a suffix or a slash is a path."""
    candidate = Path(name_or_path)
    if candidate.suffix or len(candidate.parts) > 1:
        return candidate
    return CONFIG_DIR / "cities" / f"{name_or_path}.toml"


def load_profile(name_or_path: str) -> CityProfile:
    return load_model(CityProfile, profile_path(name_or_path))
