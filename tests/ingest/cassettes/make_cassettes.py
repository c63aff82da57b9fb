"""Writes every cassette in this folder; run from the repository root:

    .venv/bin/python tests/ingest/cassettes/make_cassettes.py

Recorded ones are copied from ../shared/data/cassettes (tweepy's and praw's own
recordings, see README.md here) with cookies and connection hashes removed and gzip
bodies stored decompressed; praw's
Betamax JSON is already in VCR.py's JSON cassette shape (`interactions` of `request`
and `response`), so it is copied as JSON and replayed with vcrpy's JSON serializer.

The answers no recording holds are written here from the platforms' documentation,
and their file names end in `_from_docs`. Where such a cassette needs a normal answer
after the error (a retry that succeeds), it reuses the recorded one, byte for byte.
"""

from __future__ import annotations

import copy
import gzip
import json
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[3] / "shared" / "data" / "cassettes"

X_SEARCH = "https://api.twitter.com/2/tweets/search/recent"
REDDIT = "https://oauth.reddit.com"
REDDIT_TOKEN = "https://www.reddit.com/api/v1/access_token"
#: Headers that identify a client or session, not the answer: never kept.
_DROPPED = {"set-cookie", "cookie", "x-connection-hash", "x-transaction-id", "cf-ray"}


def _scrub(headers: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in headers.items() if k.lower() not in _DROPPED}


def _scrubbed(interaction: dict[str, Any]) -> dict[str, Any]:
    """Without identifying headers, and with a gzip body stored decompressed: vcrpy 9.4
    under urllib3 2 replays a gzip body to requests without decoding it."""
    interaction = copy.deepcopy(interaction)
    interaction["request"]["headers"] = _scrub(interaction["request"]["headers"])
    response = interaction["response"]
    headers = _scrub(response["headers"])
    if headers.pop("content-encoding", None) == ["gzip"]:
        headers.pop("content-length", None)
        response["body"]["string"] = gzip.decompress(response["body"]["string"]).decode()
    response["headers"] = headers
    return interaction


def _write_yaml(name: str, interactions: list[dict[str, Any]], note: str) -> None:
    path = HERE / "x" / name
    path.parent.mkdir(exist_ok=True)
    text = yaml.safe_dump({"interactions": interactions, "version": 1}, sort_keys=False)
    path.write_text("".join(f"# {line}\n" for line in note.splitlines()) + text)


def _write_json(name: str, interactions: list[dict[str, Any]]) -> None:
    path = HERE / "reddit" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps({"interactions": interactions, "version": 1}, indent=1) + "\n")


def _x_answer(status: int, message: str, body: Any, headers: dict[str, str]) -> dict[str, Any]:
    """A GET of recent search answered as X's API v2 documentation describes."""
    return {
        "request": {"body": None, "headers": {}, "method": "GET", "uri": X_SEARCH},
        "response": {
            "body": {"string": body if isinstance(body, str) else json.dumps(body)},
            "headers": {"content-type": ["application/json; charset=utf-8"]}
            | {k: [v] for k, v in headers.items()},
            "status": {"code": status, "message": message},
        },
    }


def x_cassettes() -> None:
    recorded = yaml.safe_load((SHARED / "x" / "test_client_search_recent_tweets.yaml").read_text())
    (page,) = [_scrubbed(i) for i in recorded["interactions"]]
    source = "tweepy/tweepy cassettes/test_client_search_recent_tweets.yaml (MIT)"
    _write_yaml("search_recent.yaml", [page], f"Recorded: {source}.")

    # The last page of a poll, with every expansion Post needs, as in X's docs for
    # GET /2/tweets/search/recent (fields, expansions, includes, errors for a deleted
    # referenced tweet). It answers the request that carries the recorded next_token.
    token = json.loads(page["response"]["body"]["string"])["meta"]["next_token"]
    last = {
        "data": [
            {
                "id": "1578510000000000001",
                "text": "Pothole on Eastern Ave in Canton is back again @Baltimore311",
                "created_at": "2022-10-07T22:20:00.000Z",
                "author_id": "2244994945",
                "conversation_id": "1578509000000000000",
                "lang": "en",
                "geo": {
                    "place_id": "01fbe706f872cb32",
                    "coordinates": {"type": "Point", "coordinates": [-76.5786, 39.2851]},
                },
                "entities": {
                    "mentions": [{"start": 47, "end": 60, "username": "Baltimore311"}],
                    "hashtags": [{"start": 0, "end": 0, "tag": "potholes"}],
                    "urls": [
                        {
                            "start": 0,
                            "end": 0,
                            "url": "https://t.co/abc",
                            "expanded_url": "https://example.org/photo",
                        }
                    ],
                },
                "referenced_tweets": [{"type": "replied_to", "id": "1578509000000000000"}],
                "edit_history_tweet_ids": ["1578510000000000001"],
            },
            {
                # Only the fields X always returns: every optional one is missing.
                "id": "1578509500000000002",
                "text": "streetlight out on Fleet St in Fells Point for a week",
                "edit_history_tweet_ids": ["1578509500000000002"],
            },
        ],
        "includes": {
            "users": [
                {"id": "2244994945", "username": "canton_neighbor", "location": "Baltimore, MD"}
            ],
            "places": [
                {
                    "id": "01fbe706f872cb32",
                    "full_name": "Baltimore, MD",
                    "name": "Baltimore",
                    "country_code": "US",
                    "place_type": "city",
                    "geo": {
                        "type": "Feature",
                        "bbox": [-76.711519, 39.197207, -76.529453, 39.372206],
                    },
                }
            ],
        },
        "errors": [
            {
                "value": "1578509000000000000",
                "detail": "Could not find tweet with referenced_tweets.id: [1578509000000000000].",
                "title": "Not Found Error",
                "resource_type": "tweet",
                "parameter": "referenced_tweets.id",
                "resource_id": "1578509000000000000",
                "type": "https://api.twitter.com/2/problems/resource-not-found",
            }
        ],
        "meta": {
            "newest_id": "1578510000000000001",
            "oldest_id": "1578509500000000002",
            "result_count": 2,
        },
    }
    answer = _x_answer(200, "OK", last, {})
    answer["request"]["uri"] = f"{X_SEARCH}?next_token={token}"
    _write_yaml(
        "search_recent_paged_from_docs.yaml",
        [page, answer],
        f"First page recorded ({source}); the last page written from X's API v2 docs.",
    )

    stale = {
        "errors": [
            {
                "parameters": {"next_token": [token]},
                "message": f"The `next_token` query parameter value [{token}] is not valid",
            }
        ],
        "title": "Invalid Request",
        "detail": "One or more parameters to your request was invalid.",
        "type": "https://api.twitter.com/2/problems/invalid-request",
    }
    refused = _x_answer(400, "Bad Request", stale, {})
    refused["request"]["uri"] = f"{X_SEARCH}?next_token={token}"
    _write_yaml(
        "search_recent_400_next_token_from_docs.yaml",
        [refused, page, answer],
        "Written from X's docs: a next_token it no longer accepts (400), then the pages of "
        f"search_recent_paged_from_docs.yaml (first one recorded: {source}).",
    )
    then = f"the pages of search_recent_paged_from_docs.yaml (first one recorded: {source})"
    unauthorized = {
        "title": "Unauthorized",
        "type": "about:blank",
        "status": 401,
        "detail": "Unauthorized",
    }
    _write_yaml(
        "search_recent_401_from_docs.yaml",
        [_x_answer(401, "Unauthorized", unauthorized, {})],
        "Written from X's API v2 docs: an invalid or expired bearer token.",
    )
    forbidden = {
        "client_id": "101010101",
        "detail": "When authenticating requests to the Twitter API v2 endpoints, you must use "
        "keys and tokens from a Twitter developer App that is attached to a Project.",
        "registration_url": "https://developer.twitter.com/en/docs/projects/overview",
        "title": "Client Forbidden",
        "required_enrollment": "Appropriate Level of API Access",
        "reason": "client-not-enrolled",
        "type": "https://api.twitter.com/2/problems/client-forbidden",
    }
    _write_yaml(
        "search_recent_403_from_docs.yaml",
        [_x_answer(403, "Forbidden", forbidden, {})],
        "Written from X's API v2 docs: an app whose access level does not include this "
        "endpoint (client-forbidden).",
    )
    too_many = {
        "title": "Too Many Requests",
        "detail": "Too Many Requests",
        "type": "about:blank",
        "status": 429,
    }
    with_reset = {
        "x-rate-limit-limit": "450",
        "x-rate-limit-remaining": "0",
        "x-rate-limit-reset": "1665183229",
    }
    _write_yaml(
        "search_recent_429_from_docs.yaml",
        [_x_answer(429, "Too Many Requests", too_many, with_reset), page, answer],
        f"Written from X's rate-limit docs (429 with x-rate-limit-reset), then {then}.",
    )
    _write_yaml(
        "search_recent_429_no_reset_from_docs.yaml",
        [_x_answer(429, "Too Many Requests", too_many, {}), page, answer],
        f"Written from X's docs: a 429 without rate-limit headers, then {then}.",
    )
    unavailable = {
        "title": "Service Unavailable",
        "detail": "Service Unavailable",
        "type": "about:blank",
        "status": 503,
    }
    _write_yaml(
        "search_recent_503_from_docs.yaml",
        [_x_answer(503, "Service Unavailable", unavailable, {}), page, answer],
        f"Written from X's docs: a 503 (server overloaded), then {then}.",
    )
    compliance_cassettes(page, answer, source)
    stream_cassettes(page, answer, source)
    truncated = json.dumps(last)[:700]
    _write_yaml(
        "search_recent_truncated_from_docs.yaml",
        [_x_answer(200, "OK", truncated, {}), page, answer],
        f"A 200 whose JSON body is cut short (the last page, at 700 bytes), then {then}.",
    )


#: A compliance job as X's batch-compliance docs show it; the signed URLs' signatures are
#: placeholders (a real one is a credential for that job's files).
COMPLIANCE_JOB = "1425543269983784962"
_SIGNED = (
    "?X-Goog-Algorithm=GOOG4-RSA-SHA256"
    "&X-Goog-Credential=complianceapi-public-svc-acct%40twttr-compliance-public-prod.iam."
    "gserviceaccount.com%2F20210811%2Fauto%2Fstorage%2Fgoog4_request"
    "&X-Goog-Date=20210811T194255Z&X-Goog-Expires={expires}"
    "&X-Goog-SignedHeaders={signed}&X-Goog-Signature=<SIGNATURE>"
)
UPLOAD_URL = (
    f"https://storage.googleapis.com/twttr-tweet-compliance/{COMPLIANCE_JOB}/submission/"
    f"1202726487847104512_{COMPLIANCE_JOB}"
    + _SIGNED.format(expires="900", signed="content-type%3Bhost")
)
DOWNLOAD_URL = (
    f"https://storage.googleapis.com/twttr-tweet-compliance/{COMPLIANCE_JOB}/delivery/"
    f"1202726487847104512_{COMPLIANCE_JOB}" + _SIGNED.format(expires="604800", signed="host")
)
#: Posts of the recorded search page that the results report, with X's reasons.
COMPLIANCE_EVENTS = [
    ("1578515564971970560", "2022-10-07T22:18:02.000Z", "deleted"),
    ("1578514055010324480", "2022-10-07T22:12:02.000Z", "suspended"),
]


def _compliance_job(status: str) -> dict[str, Any]:
    return {
        "data": {
            "created_at": "2021-08-11T19:42:55.000Z",
            "download_expires_at": "2021-08-18T19:42:55.000Z",
            "download_url": DOWNLOAD_URL,
            "id": COMPLIANCE_JOB,
            "resumable": False,
            "status": status,
            "type": "tweets",
            "upload_expires_at": "2021-08-11T19:57:55.000Z",
            "upload_url": UPLOAD_URL,
        }
    }


def _storage(method: str, uri: str, body: str, content_type: str) -> dict[str, Any]:
    """A PUT or GET of a signed Cloud Storage URL (an empty 200 to an upload)."""
    return {
        "request": {"body": None, "headers": {}, "method": method, "uri": uri},
        "response": {
            "body": {"string": body},
            "headers": {"content-type": [content_type]},
            "status": {"code": 200, "message": "OK"},
        },
    }


def compliance_cassettes(page: dict[str, Any], answer: dict[str, Any], source: str) -> None:
    """X API v2 batch compliance (POST /2/compliance/jobs, the upload, GET
    /2/compliance/jobs/:id, the download), as X's docs for the endpoints describe them."""
    jobs = "https://api.twitter.com/2/compliance/jobs"
    created = _x_answer(200, "OK", _compliance_job("created"), {})
    created["request"].update(method="POST", uri=jobs)
    upload = _storage("PUT", UPLOAD_URL, "", "text/html; charset=UTF-8")

    def status(state: str) -> dict[str, Any]:
        answer = _x_answer(200, "OK", _compliance_job(state), {})
        answer["request"]["uri"] = f"{jobs}/{COMPLIANCE_JOB}"
        return answer

    results = "".join(
        json.dumps(
            {
                "id": native,
                "action": "delete",
                "created_at": created_at,
                "redacted_at": "2022-10-09T08:30:00.000Z",
                "reason": reason,
            }
        )
        + "\n"
        for native, created_at, reason in COMPLIANCE_EVENTS
    )
    download = _storage("GET", DOWNLOAD_URL, results, "application/octet-stream")
    done = [created, upload, status("in_progress"), status("complete"), download]
    _write_yaml(
        "compliance_from_docs.yaml",
        done,
        "Written from X's API v2 batch compliance docs: a job created, the ids uploaded, "
        "the job in progress, then complete, and its results (JSON lines).",
    )
    _write_yaml(
        "compliance_failed_from_docs.yaml",
        [created, upload, status("failed")],
        "Written from X's API v2 batch compliance docs: a job that failed.",
    )
    _write_yaml(
        "compliance_then_search_from_docs.yaml",
        [*done, page, answer],
        "The compliance check of compliance_from_docs.yaml, then the pages of "
        f"search_recent_paged_from_docs.yaml (first one recorded: {source}).",
    )


#: The tag of the rule the stream's posts matched (a stream name, as overheard tags rules).
STREAM_TAG = "x:search:0123456789ab"


def stream_cassettes(page: dict[str, Any], answer: dict[str, Any], source: str) -> None:
    """The filtered stream: its rules (GET and POST /2/tweets/search/stream/rules) and a
    connection (GET /2/tweets/search/stream) that delivers posts and keep-alives, then
    closes; as X's filtered-stream docs describe them. Before it, the recent-search pages
    that backfill a connection."""
    rules_uri = "https://api.twitter.com/2/tweets/search/stream/rules"
    present = {
        "data": [
            {
                "id": "1578519000000000010",
                "value": "pothole old rule",
                "tag": "x:search:fedcba987654",
            },
            {"id": "1578519000000000011", "value": "cats has:images", "tag": "someone-else"},
        ],
        "meta": {"sent": "2022-10-07T22:40:00.000Z", "result_count": 2},
    }
    listed = _x_answer(200, "OK", present, {})
    listed["request"]["uri"] = rules_uri
    deleted = _x_answer(
        200,
        "OK",
        {
            "meta": {
                "sent": "2022-10-07T22:40:01.000Z",
                "summary": {"deleted": 1, "not_deleted": 0},
            }
        },
        {},
    )
    deleted["request"].update(method="POST", uri=rules_uri)
    added = _x_answer(
        200,
        "OK",
        {
            "data": [{"id": "1578519000000000012", "value": "(the query)", "tag": STREAM_TAG}],
            "meta": {
                "sent": "2022-10-07T22:40:02.000Z",
                "summary": {"created": 1, "not_created": 0, "valid": 1, "invalid": 0},
            },
        },
        {},
    )
    added["request"].update(method="POST", uri=rules_uri)

    def post(native: str, text: str, tag: str) -> str:
        return json.dumps(
            {
                "data": {
                    "id": native,
                    "text": text,
                    "author_id": "2244994945",
                    "created_at": "2022-10-07T22:41:00.000Z",
                    "lang": "en",
                    "edit_history_tweet_ids": [native],
                },
                "includes": {
                    "users": [
                        {
                            "id": "2244994945",
                            "username": "canton_neighbor",
                            "location": "Baltimore, MD",
                        }
                    ]
                },
                "matching_rules": [{"id": "1578519000000000012", "tag": tag}],
            }
        )

    lines = [
        post("1578520000000000001", "Streetlight out on Boston St in Canton again", STREAM_TAG),
        "",  # a keep-alive: an empty line
        post("1578520000000000002", "my cat has a new toy", "someone-else"),
        post("1578520000000000003", "Trash piling up in the alley off Fleet St", STREAM_TAG),
    ]
    streamed = _x_answer(200, "OK", "\r\n".join(lines) + "\r\n", {})
    streamed["request"]["uri"] = "https://api.twitter.com/2/tweets/search/stream"
    # vcrpy's replayed body never reports its connection closed, so tweepy connects again
    # at once: X accepting that connection (a keep-alive), which the connector ends.
    again = _x_answer(200, "OK", "\r\n", {})
    again["request"]["uri"] = streamed["request"]["uri"]
    _write_yaml(
        "stream_from_docs.yaml",
        [page, answer, listed, deleted, added, streamed, again],
        "The pages of search_recent_paged_from_docs.yaml (first one recorded: "
        f"{source}) as the backfill, then, written from X's filtered-stream docs: the rules "
        "listed (one stale overheard rule, one of someone else), deleted, added, a "
        "connection that delivers three posts and a keep-alive, then ends, and the "
        "reconnection tweepy makes.",
    )
    none = _x_answer(
        200, "OK", {"meta": {"sent": "2022-10-07T22:40:00.000Z", "result_count": 0}}, {}
    )
    none["request"]["uri"] = rules_uri
    refused = _x_answer(
        401,
        "Unauthorized",
        {"title": "Unauthorized", "type": "about:blank", "status": 401, "detail": "Unauthorized"},
        {},
    )
    refused["request"]["uri"] = "https://api.twitter.com/2/tweets/search/stream"
    _write_yaml(
        "stream_401_from_docs.yaml",
        [page, answer, none, added, refused],
        "The backfill pages as in stream_from_docs.yaml, no rules yet, one added, then the "
        "connection refused (401), written from X's filtered-stream docs.",
    )


def _reddit_answer(status: int, message: str, body: str, content_type: str) -> dict[str, Any]:
    return {
        "request": {"body": None, "headers": {}, "method": "GET", "uri": ""},
        "response": {
            "body": {"string": body},
            "headers": {"Content-Type": [content_type]},
            "status": {"code": status, "message": message},
        },
    }


#: Reddit's 503 page (served by its CDN when the backend is overloaded): HTML, not JSON.
_REDDIT_503_PAGE = """<!doctype html>
<html>
  <head><title>Reddit - Dive into anything</title></head>
  <body>
    <h1>all of our servers are busy right now</h1>
    <p>please try again in a minute</p>
    <p>(error code: 503)</p>
  </body>
</html>
"""


def reddit_cassettes() -> None:
    sources = {
        "new_askreddit.json": "TestSubredditListings.test_new.json",
        "comments_askreddit.json": "TestSubredditListings.test_comments.json",
        "stream_comments.json": "TestSubredditStreams.test_comments__with_continue_after_id.json",
    }
    for name, source in sources.items():
        recorded = json.loads((SHARED / "reddit" / source).read_text())
        _write_json(name, [_scrubbed(i) for i in recorded["interactions"]])

    recorded = json.loads((SHARED / "reddit" / sources["comments_askreddit.json"]).read_text())
    token, listing = (_scrubbed(i) for i in recorded["interactions"])
    comments_uri = listing["request"]["uri"]

    # After the error, the recorded listing cut to its first three comments (enough to
    # show the stream goes on, without a second copy of 130 kB).
    small = json.loads(listing["response"]["body"]["string"])
    small["data"]["children"] = small["data"]["children"][:3]
    small["data"]["after"] = None  # as on a listing's last page, so praw asks for no more
    listing["response"]["body"]["string"] = json.dumps(small)
    listing["response"]["headers"].pop("Content-Length", None)

    page = _reddit_answer(503, "Service Unavailable", _REDDIT_503_PAGE, "text/html; charset=utf-8")
    page["request"]["uri"] = comments_uri
    # prawcore asks three times before it gives up on a 5xx.
    _write_json("comments_503_from_docs.json", [token, page, page, page, listing])

    torn = _reddit_answer(
        200, "OK", listing["response"]["body"]["string"][:1500], "application/json; charset=UTF-8"
    )
    torn["request"]["uri"] = comments_uri
    _write_json("comments_truncated_from_docs.json", [token, torn, listing])

    refused = _reddit_answer(
        401,
        "Unauthorized",
        json.dumps({"message": "Unauthorized", "error": 401}),
        "application/json; charset=UTF-8",
    )
    refused["request"] = dict(token["request"], headers={})
    _write_json("token_401_from_docs.json", [refused])

    # A comment deleted by its author and one removed by moderators, as Reddit's listing
    # shows them: body and author replaced, the thread context kept.
    gone = copy.deepcopy(small)
    children = gone["data"]["children"]
    children[0]["data"].update(body="[deleted]", author="[deleted]")
    children[1]["data"].update(body="[removed]", author="[deleted]")
    gone["data"]["children"] = children
    deleted = _reddit_answer(200, "OK", json.dumps(gone), "application/json; charset=UTF-8")
    deleted["request"]["uri"] = comments_uri
    _write_json("comments_deleted_from_docs.json", [token, deleted])

    info_cassettes(token)


#: What /api/info answers about the things the re-check tests ask for.
INFO_URI = f"{REDDIT}/api/info/?id=t3_48fbm9,t3_48fbig,t3_48fbgl,t1_cklfmye&raw_json=1"


def info_cassettes(token: dict[str, Any]) -> None:
    """/api/info: praw's recording for a comment that is still up, and, written from
    Reddit's API docs, an answer holding submissions removed by moderators and deleted by
    their author, from real submissions of the recorded r/askreddit listing."""
    recorded = json.loads(
        (SHARED / "reddit" / "TestComment.test_parent__submission.json").read_text()
    )
    _, info = (_scrubbed(i) for i in recorded["interactions"][:2])
    _write_json("info_comment.json", [token, info])

    new = json.loads((SHARED / "reddit" / "TestSubredditListings.test_new.json").read_text())
    listing = json.loads(new["interactions"][1]["response"]["body"]["string"])
    up, removed, deleted = (copy.deepcopy(c) for c in listing["data"]["children"][:3])
    up["data"]["removed_by_category"] = None
    removed["data"].update(removed_by_category="moderator", selftext="[removed]")
    deleted["data"].update(removed_by_category="deleted", selftext="[deleted]", author="[deleted]")
    comment = json.loads(info["response"]["body"]["string"])["data"]["children"][0]
    comment = copy.deepcopy(comment)
    comment["data"].update(body="[removed]", body_html='<div class="md"><p>[removed]</p></div>')
    answer = {
        "kind": "Listing",
        "data": {
            "modhash": "",
            "children": [up, removed, deleted, comment],
            "after": None,
            "before": None,
        },
    }
    asked = _reddit_answer(200, "OK", json.dumps(answer), "application/json; charset=UTF-8")
    asked["request"]["uri"] = INFO_URI
    _write_json("info_removed_from_docs.json", [token, asked])


if __name__ == "__main__":
    x_cassettes()
    reddit_cassettes()
