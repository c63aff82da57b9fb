"""The labelled sets the text models learn from, and their fixed held-out splits.

Three real sets live in `<data>/complaints/` (see the shared data README for
provenance and licences; the text is read in place and never copied into the
repository):

- ACL-2019 complaints (`complaints-data.csv`, no header): tweets to brands,
  labelled complaint or not;
- Mumbai urban-issue tweets: labelled complaint (about the city) or not, the text
  carrying mojibake that ftfy repairs;
- Bengaluru civic issues: civic descriptions with a category, plus general
  tweets that are not civic.

A fifth of each set is held out. A row is held out when a salted hash of its
repaired, stripped text falls in the held-out bucket, so identical texts always
land on the same side. The chosen rows' keys are committed under
`config/models/splits/` and training reads those lists, not the hash: the split
stays fixed even if the rule were changed.
"""

from __future__ import annotations

import csv
import hashlib
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import ftfy

from overheard.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = REPO.parent / "shared" / "data"
SPLITS_DIR = REPO / "config" / "models" / "splits"
BENGALURU_LABEL_MAP = REPO / "config" / "label-maps" / "bengaluru.toml"

HELDOUT_SHARE = 0.2
_SALT = b"overheard/heldout/v1\x00"


class Source(StrEnum):
    ACL = "acl"
    MUMBAI = "mumbai"
    BENGALURU = "bengaluru"


FILES = {
    Source.ACL: "complaints-data.csv",
    Source.MUMBAI: "mumbai_urban_issue_tweets.csv",
    Source.BENGALURU: "bengaluru_civic_issues.csv",
}


@dataclass(frozen=True)
class Row:
    """One labelled text; a label the set does not give is None."""

    source: Source
    key: str
    text: str
    complaint: int | None = None
    civic: int | None = None
    category: str | None = None  # the set's own name


def repair(text: str) -> str:
    """Undo mojibake (UTF-8 read as cp1252) and strip."""
    return ftfy.fix_text(text).strip()


def text_key(text: str) -> str:
    """A short stable key for a row that has no usable id (the Mumbai ids were mangled)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def is_heldout(text: str) -> bool:
    """Whether a repaired text belongs to the held-out fifth (the rule the split was made by)."""
    digest = hashlib.sha256(_SALT + text.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < HELDOUT_SHARE


def data_file(data_dir: Path, source: Source) -> Path:
    return data_dir / "complaints" / FILES[source]


def missing_files(data_dir: Path) -> list[Path]:
    """The labelled sets not found under `data_dir` (none: the models can be trained)."""
    return [data_file(data_dir, s) for s in Source if not data_file(data_dir, s).is_file()]


def _read(path: Path) -> list[list[str]]:
    if not path.is_file():
        raise ConfigError(f"labelled data absent: {path}")
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.reader(handle))


def _flag(value: str) -> int:
    return 1 if value.strip() == "1" else 0


def load_acl(data_dir: Path) -> list[Row]:
    """`tweet_id, text, label, domain`, no header; keyed by tweet_id."""
    return [
        Row(Source.ACL, tweet_id.strip(), repair(text), complaint=_flag(label))
        for tweet_id, text, label, _domain in _read(data_file(data_dir, Source.ACL))
    ]


def load_mumbai(data_dir: Path) -> list[Row]:
    """`tweet_id, tweet, complaint, category`; keyed by the repaired text's hash.

    The complaint label marks a complaint about an urban issue, so it is both a
    complaint and a civic label. The category codes have no published names and
    are not used.
    """
    rows = []
    for _id, tweet, complaint, _category in _read(data_file(data_dir, Source.MUMBAI))[1:]:
        text = repair(tweet)
        flag = _flag(complaint)
        rows.append(Row(Source.MUMBAI, text_key(text), text, complaint=flag, civic=flag))
    return rows


def load_bengaluru(data_dir: Path) -> list[Row]:
    """`(unnamed), index, description, category, civic_issue`; keyed by `index`."""
    rows = []
    for _unnamed, index, description, category, civic in _read(
        data_file(data_dir, Source.BENGALURU)
    )[1:]:
        flag = _flag(civic)
        rows.append(
            Row(
                Source.BENGALURU,
                index.strip(),
                repair(description),
                civic=flag,
                category=category.strip() if flag and category.strip() else None,
            )
        )
    return rows


LOADERS = {Source.ACL: load_acl, Source.MUMBAI: load_mumbai, Source.BENGALURU: load_bengaluru}


def split_file(source: Source, splits_dir: Path = SPLITS_DIR) -> Path:
    return splits_dir / f"{source.value}.heldout.txt"


def heldout_keys(source: Source, splits_dir: Path = SPLITS_DIR) -> frozenset[str]:
    """The committed held-out keys of a set."""
    path = split_file(source, splits_dir)
    if not path.is_file():
        raise ConfigError(f"held-out split absent: {path} (written by write_splits)")
    lines = path.read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip() for line in lines if line.strip() and not line.startswith("#"))


def chosen_keys(rows: Iterable[Row]) -> list[str]:
    """The keys the hash rule holds out, sorted and without repeats."""
    return sorted({row.key for row in rows if is_heldout(row.text)})


def write_splits(data_dir: Path, splits_dir: Path = SPLITS_DIR) -> dict[Source, int]:
    """Choose the held-out rows of every set by the hash rule and write their keys."""
    splits_dir.mkdir(parents=True, exist_ok=True)
    counts = {}
    for source, loader in LOADERS.items():
        keys = chosen_keys(loader(data_dir))
        header = (
            f"# held-out keys of {FILES[source]}: rows whose repaired text hashes into the "
            f"held-out {HELDOUT_SHARE:.0%} (classify/datasets.py)\n"
        )
        split_file(source, splits_dir).write_text(header + "".join(f"{k}\n" for k in keys))
        counts[source] = len(keys)
    return counts


@dataclass(frozen=True)
class Split:
    train: list[Row]
    heldout: list[Row]


def load_split(data_dir: Path, source: Source, splits_dir: Path = SPLITS_DIR) -> Split:
    """A set's rows divided by its committed held-out keys."""
    keys = heldout_keys(source, splits_dir)
    rows = LOADERS[source](data_dir)
    return Split(
        train=[row for row in rows if row.key not in keys],
        heldout=[row for row in rows if row.key in keys],
    )


def load_label_map(path: Path = BENGALURU_LABEL_MAP) -> dict[str, str]:
    """A set's own category names to taxonomy keys (`[map]` table of a TOML file)."""
    try:
        with path.open("rb") as handle:
            table = tomllib.load(handle).get("map", {})
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"label map {path}: {exc}") from exc
    if not isinstance(table, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in table.items()
    ):
        raise ConfigError(f"label map {path}: [map] must map names to taxonomy keys")
    return dict(table)


def civic_complaint_texts(data_dir: Path = DEFAULT_DATA_DIR) -> list[str]:
    """Every civic complaint text, for measuring the prefilter's recall.

    The Mumbai complaint rows and the Bengaluru civic rows, both splits, repaired.
    """
    mumbai = [row.text for row in load_mumbai(data_dir) if row.complaint == 1]
    bengaluru = [row.text for row in load_bengaluru(data_dir) if row.civic == 1]
    return mumbai + bengaluru


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
