"""The Open311 GeoReport v2 test server, over real HTTP against its subprocess."""

from __future__ import annotations

import time
import tomllib
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from overheard.testing.open311_process import Open311Server, Open311ServerError
from overheard.testing.open311_services import baltimore_services, load_services

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data" / "open311"
BLOOMINGTON = DATA / "bloomington_services.json"
FIXTURES = DATA / "codeforamerica_open311_fixtures"
KEY = "s3cret-key"
POTHOLE = "TRM-Pothole Repair"
ALLEY = "SW-Dirty Alley"
DUMPING = "HCD-Illegal Dumping"


def shared(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"the shared Open311 data is not at {path}")
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Open311Server]:
    with Open311Server.start(services="baltimore", api_key=KEY) as running:
        yield running


@pytest.fixture(autouse=True)
def _reset(request: pytest.FixtureRequest) -> None:
    if "server" in request.fixturenames:
        request.getfixturevalue("server").reset()


@pytest.fixture
def http(server: Open311Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10.0) as client:
        yield client


def pothole(**extra: Any) -> dict[str, Any]:
    form = {
        "api_key": KEY,
        "service_code": POTHOLE,
        "lat": "39.2904",
        "long": "-76.6122",
        "attribute[LOCATION_TYPE]": "street",
        "description": "Huge pothole on Eastern Ave at S Conkling St",
        "media_url": "https://i.redd.it/abc123.jpg",
    }
    form.update(extra)
    return {k: v for k, v in form.items() if v is not None}


def create(http: httpx.Client, **extra: Any) -> str:
    response = http.post("/requests.json", data=pothole(**extra))
    assert response.status_code == 200, response.text
    return response.json()[0]["service_request_id"]


def errors(response: httpx.Response, status: int) -> list[str]:
    assert response.status_code == status, response.text
    body = response.json()
    assert isinstance(body, list) and body
    assert all(e["code"] == status for e in body)
    return [e["description"] for e in body]


def xml_items(text: str, root: str, item: str) -> list[dict[str, str]]:
    element = ET.fromstring(text)
    assert element.tag == root
    return [{c.tag: (c.text or "").strip() for c in child} for child in element.findall(item)]


def as_text(service: dict[str, Any]) -> dict[str, str]:
    def text(value: Any) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        return "" if value is None else str(value).strip()

    return {k: text(v) for k, v in service.items()}


# ---------------------------------------------------------------- catalogue and discovery


def test_the_baltimore_catalogue_has_every_service_code_of_the_city_profile() -> None:
    profile = tomllib.loads((ROOT / "config" / "cities" / "baltimore.toml").read_text())
    codes = {c["service_code"] for c in profile["categories"].values() if "service_code" in c}
    assert {s["service_code"] for s in baltimore_services()} == codes


def test_discovery_names_the_spec_and_both_formats(http: httpx.Client, server: Open311Server):
    body = http.get("/discovery.json").json()
    (endpoint,) = body["endpoints"]
    assert endpoint["specification"] == "http://wiki.open311.org/GeoReport_v2"
    assert endpoint["url"] == server.url
    assert set(endpoint["formats"]) == {"text/xml", "application/json"}
    root = ET.fromstring(http.get("/discovery.xml").text)
    assert root.tag == "discovery"
    assert [f.text for f in root.findall("endpoints/endpoint/formats/format")] == [
        "text/xml",
        "application/json",
    ]


def test_services_in_json_and_xml_agree(http: httpx.Client) -> None:
    as_json = http.get("/services.json")
    assert as_json.headers["content-type"].startswith("application/json")
    services = as_json.json()
    codes = [s["service_code"] for s in services]
    assert codes == [s["service_code"] for s in baltimore_services()]
    assert all(s["type"] == "realtime" for s in services)
    as_xml = http.get("/services.xml")
    assert as_xml.headers["content-type"].startswith("text/xml")
    assert xml_items(as_xml.text, "services", "service") == [as_text(s) for s in services]


def test_service_definition_in_json_and_xml(http: httpx.Client) -> None:
    definition = http.get(f"/services/{POTHOLE}.json").json()
    assert definition["service_code"] == POTHOLE
    location, size = definition["attributes"]
    assert location["code"] == "LOCATION_TYPE"
    assert location["datatype"] == "singlevaluelist"
    assert location["required"] is True
    assert location["order"] == 1
    assert {v["key"] for v in location["values"]} == {"street", "alley", "crosswalk"}
    assert size["datatype"] == "number" and size["required"] is False
    root = ET.fromstring(http.get(f"/services/{POTHOLE}.xml").text)
    assert root.tag == "service_definition"
    assert root.findtext("service_code") == POTHOLE
    attribute = root.find("attributes/attribute")
    assert attribute is not None
    assert attribute.findtext("code") == "LOCATION_TYPE"
    assert attribute.findtext("required") == "true"
    assert [v.findtext("key") for v in attribute.findall("values/value")] == [
        "street",
        "alley",
        "crosswalk",
    ]
    # A service without attributes has an empty definition.
    assert http.get(f"/services/{ALLEY}.json").json() == {"service_code": ALLEY, "attributes": []}


def test_unknown_service_definition_and_format(http: httpx.Client) -> None:
    assert errors(http.get("/services/NOPE.json"), 404)
    root = ET.fromstring(http.get("/services/NOPE.xml").text)
    assert root.tag == "errors" and root.findtext("error/code") == "404"
    assert http.get("/services.csv").status_code == 404


def test_bloomington_services_from_json_and_their_xml() -> None:
    with Open311Server.start(services=shared(BLOOMINGTON), api_key=KEY) as bloomington:
        services = httpx.get(f"{bloomington.url}/services.json").json()
        assert len(services) == 53
        assert len({s["group"] for s in services}) == 6
        graffiti = next(s for s in services if s["service_name"] == "Graffiti")
        assert graffiti["service_code"] == 37 and graffiti["metadata"] is True
        xml = httpx.get(f"{bloomington.url}/services.xml").text
        assert xml_items(xml, "services", "service") == [as_text(s) for s in services]
        definition = httpx.get(f"{bloomington.url}/services/37.json").json()
        assert definition == {"service_code": 37, "attributes": []}


def test_san_francisco_services_from_xml_with_the_fixture_definition() -> None:
    services_xml = shared(FIXTURES / "services.xml")
    definition = FIXTURES / "service_definition.xml"
    with Open311Server.start(
        services=services_xml, api_key=KEY, definitions=[f"021={definition}"]
    ) as sf:
        services = httpx.get(f"{sf.url}/services.json").json()
        # 36 <service> elements (shared/data/README.md says 29; the file has 36).
        assert len(services) == len(ET.parse(services_xml).getroot().findall("service")) == 36
        assert [s["service_code"] for s in services] == [
            s["service_code"] for s in load_services(services_xml)
        ]
        pavement = next(s for s in services if s["service_code"] == "021")
        assert pavement["service_name"] == "Pavement_Defect"
        assert pavement["metadata"] is True
        attribute = httpx.get(f"{sf.url}/services/021.json").json()["attributes"][0]
        assert attribute["code"] == "WHISHETN" and attribute["required"] is True
        assert attribute["values"] == [
            {"key": "123", "name": "Ford"},
            {"key": "124", "name": "Chrysler"},
        ]
        form = {"api_key": KEY, "service_code": "021", "address_string": "8TH AVE and JUDAH ST"}
        bad = httpx.post(f"{sf.url}/requests.json", data={**form, "attribute[WHISHETN]": "999"})
        assert "WHISHETN" in errors(bad, 400)[0]
        good = httpx.post(f"{sf.url}/requests.xml", data={**form, "attribute[WHISHETN]": "124"})
        assert good.status_code == 200
        (answer,) = xml_items(good.text, "service_requests", "request")
        assert answer["service_request_id"]
        (record,) = sf.requests()
        assert record["attributes"] == {"WHISHETN": "124"}
        assert record["request"]["address"] == "8TH AVE and JUDAH ST"


def test_a_definition_for_a_service_the_list_lacks_stops_the_start(tmp_path: Path) -> None:
    definition = shared(FIXTURES / "service_definition.xml")  # it defines DMV66
    with pytest.raises(Open311ServerError, match="DMV66"):
        Open311Server.start(
            services="baltimore", api_key=KEY, definitions=[definition], log_path=tmp_path / "l"
        )


# ---------------------------------------------------------------- creating requests


def test_a_realtime_post_answers_an_id_that_get_shows(
    http: httpx.Client, server: Open311Server
) -> None:
    response = http.post("/requests.json", data=pothole(account_id="acct-7", email="a@b.org"))
    assert response.status_code == 200
    (answer,) = response.json()
    assert set(answer) == {"service_request_id", "service_notice", "account_id"}
    assert answer["account_id"] == "acct-7"
    service_request_id = answer["service_request_id"]

    (shown,) = http.get(f"/requests/{service_request_id}.json").json()
    assert shown["service_request_id"] == service_request_id
    assert shown["service_code"] == POTHOLE
    assert shown["service_name"] == "Pothole Repair"
    assert shown["status"] == "open"
    assert (shown["lat"], shown["long"]) == (39.2904, -76.6122)
    assert shown["description"] == "Huge pothole on Eastern Ave at S Conkling St"
    assert shown["media_url"] == "https://i.redd.it/abc123.jpg"
    datetime.fromisoformat(shown["requested_datetime"])

    (as_xml,) = xml_items(
        http.get(f"/requests/{service_request_id}.xml").text, "service_requests", "request"
    )
    assert as_xml == as_text(shown)

    record = next(
        r for r in server.requests() if r["request"]["service_request_id"] == service_request_id
    )
    assert record["form"]["email"] == "a@b.org"
    assert record["form"]["attribute[LOCATION_TYPE]"] == "street"
    assert record["attributes"] == {"LOCATION_TYPE": "street"}


def test_address_alone_is_a_location_and_xml_answers_xml(http: httpx.Client) -> None:
    response = http.post(
        "/requests.xml",
        data=pothole(lat=None, long=None, address_string="3400 Eastern Ave, Baltimore"),
    )
    assert response.status_code == 200
    (answer,) = xml_items(response.text, "service_requests", "request")
    (shown,) = http.get(f"/requests/{answer['service_request_id']}.json").json()
    assert shown["address"] == "3400 Eastern Ave, Baltimore"
    assert shown["lat"] is None


def test_multivaluelist_and_datetime_attributes(http: httpx.Client, server: Open311Server):
    form = {
        "api_key": KEY,
        "service_code": DUMPING,
        "address_id": "545483",
        "attribute[MATERIAL][]": ["tires", "mattress"],
        "attribute[SEEN_AT]": "2026-11-20T07:30:00-05:00",
    }
    response = http.post("/requests.json", data=form)
    assert response.status_code == 200, response.text
    service_request_id = response.json()[0]["service_request_id"]
    record = next(
        r for r in server.requests() if r["request"]["service_request_id"] == service_request_id
    )
    assert record["attributes"]["MATERIAL"] == ["tires", "mattress"]
    assert record["form"]["attribute[MATERIAL][]"] == ["tires", "mattress"]
    bad = http.post("/requests.json", data={**form, "attribute[SEEN_AT]": "last tuesday"})
    assert "SEEN_AT" in errors(bad, 400)[0]
    bad = http.post("/requests.json", data={**form, "attribute[MATERIAL][]": ["tires", "sofa"]})
    assert "sofa" in errors(bad, 400)[0]


def test_a_batch_service_answers_a_token_that_resolves(
    http: httpx.Client, server: Open311Server
) -> None:
    server.control(service_types={ALLEY: "batch"})
    services = http.get("/services.json").json()
    assert next(s for s in services if s["service_code"] == ALLEY)["type"] == "batch"
    form = {"api_key": KEY, "service_code": ALLEY, "lat": "39.28", "long": "-76.58"}
    (answer,) = http.post("/requests.json", data=form).json()
    assert "service_request_id" not in answer
    token = answer["token"]
    (resolved,) = http.get(f"/tokens/{token}.json").json()
    assert resolved["token"] == token
    (shown,) = http.get(f"/requests/{resolved['service_request_id']}.json").json()
    assert shown["service_code"] == ALLEY
    (as_xml,) = xml_items(http.get(f"/tokens/{token}.xml").text, "service_requests", "request")
    assert as_xml == {"service_request_id": resolved["service_request_id"], "token": token}
    assert errors(http.get("/tokens/not-a-token.json"), 404)


def test_the_tokens_switch_and_pending_tokens(http: httpx.Client, server: Open311Server):
    server.control(tokens=True, token_pending=2)
    (answer,) = http.post("/requests.json", data=pothole()).json()
    token = answer["token"]
    assert http.get(f"/tokens/{token}.json").json()[0]["service_request_id"] is None
    assert http.get(f"/tokens/{token}.json").json()[0]["service_request_id"] is None
    service_request_id = http.get(f"/tokens/{token}.json").json()[0]["service_request_id"]
    assert http.get(f"/requests/{service_request_id}.json").status_code == 200


def test_a_blackbox_service_answers_neither_id_nor_token(
    http: httpx.Client, server: Open311Server
) -> None:
    server.control(service_types={POTHOLE: "blackbox"}, service_notice="We will look into it.")
    (answer,) = http.post("/requests.json", data=pothole()).json()
    assert answer == {"service_notice": "We will look into it.", "account_id": None}


@pytest.mark.parametrize(
    ("change", "status", "needle"),
    [
        ({"api_key": None}, 403, "api_key"),
        ({"api_key": "wrong"}, 403, "api_key"),
        ({"service_code": "NOT-A-SERVICE"}, 404, "NOT-A-SERVICE"),
        ({"service_code": None}, 400, "service_code"),
        ({"lat": None, "long": None}, 400, "location"),
        ({"lat": "39.29", "long": None}, 400, "lat and long"),
        ({"lat": "139.29"}, 400, "out of range"),
        ({"description": "x" * 4001}, 400, "4000"),
        ({"attribute[LOCATION_TYPE]": None}, 400, "LOCATION_TYPE"),
        ({"attribute[LOCATION_TYPE]": "river"}, 400, "river"),
        ({"attribute[SIZE_IN]": "huge"}, 400, "number"),
        ({"attribute[COLOUR]": "red"}, 400, "COLOUR"),
        ({"media_url": "file:///etc/passwd"}, 400, "media_url"),
    ],
)
def test_invalid_posts_are_refused_and_not_recorded(
    http: httpx.Client, server: Open311Server, change: dict[str, Any], status: int, needle: str
) -> None:
    before = len(server.requests())
    descriptions = errors(http.post("/requests.json", data=pothole(**change)), status)
    assert any(needle in d for d in descriptions), descriptions
    assert len(server.requests()) == before


def test_every_problem_is_listed_and_xml_errors_follow_the_spec(http: httpx.Client) -> None:
    form = pothole(lat=None, long=None, description="x" * 4001)
    form.pop("attribute[LOCATION_TYPE]")
    assert len(errors(http.post("/requests.json", data=form), 400)) == 3
    response = http.post("/requests.xml", data=form)
    assert response.status_code == 400
    root = ET.fromstring(response.text)
    assert root.tag == "errors"
    assert [e.findtext("code") for e in root.findall("error")] == ["400"] * 3
    assert all(e.findtext("description") for e in root.findall("error"))


def test_a_description_of_4000_characters_is_accepted(http: httpx.Client) -> None:
    assert create(http, description="x" * 4000)


def test_unknown_request_id_is_404(http: httpx.Client) -> None:
    assert errors(http.get("/requests/999999.json"), 404)


# ---------------------------------------------------------------- GET requests


def test_get_requests_filters(http: httpx.Client, server: Open311Server) -> None:
    server.clear()
    first, second, third = (create(http) for _ in range(3))
    dumping = http.post(
        "/requests.json",
        data={
            "api_key": KEY,
            "service_code": DUMPING,
            "address_id": "1",
            "attribute[MATERIAL][]": "bulk",
        },
    ).json()[0]["service_request_id"]
    server.update_request(second, status="closed", status_notes="Repaired.")
    old = (datetime.now(UTC) - timedelta(days=200)).replace(microsecond=0)
    server.update_request(third, requested_datetime=old.isoformat())

    def ids(**params: str) -> list[str]:
        response = http.get("/requests.json", params=params)
        assert response.status_code == 200, response.text
        return [r["service_request_id"] for r in response.json()]

    # The default window is the last 90 days, newest first.
    assert ids() == [dumping, second, first]
    # service_request_id overrides every other argument.
    assert sorted(ids(service_request_id=f"{third},{first}", status="closed")) == sorted(
        [first, third]
    )
    assert ids(service_code=DUMPING) == [dumping]
    assert ids(service_code=f"{POTHOLE},{DUMPING}") == [dumping, second, first]
    assert ids(status="closed") == [second]
    assert ids(status="open") == [dumping, first]
    closed = http.get("/requests.json", params={"status": "closed"}).json()[0]
    assert closed["status_notes"] == "Repaired."
    start = (old - timedelta(days=1)).isoformat()
    end = (old + timedelta(days=1)).isoformat()
    assert ids(start_date=start, end_date=end) == [third]
    assert ids(start_date=start) == [third]
    assert ids(end_date=end) == [third]
    assert ids(start_date=(datetime.now(UTC) - timedelta(hours=1)).isoformat()) == [
        dumping,
        second,
        first,
    ]
    assert errors(
        http.get(
            "/requests.json",
            params={"start_date": start, "end_date": datetime.now(UTC).isoformat()},
        ),
        400,
    )
    assert errors(http.get("/requests.json", params={"status": "pending"}), 400)
    assert errors(http.get("/requests.json", params={"end_date": "yesterday"}), 400)
    server.control(max_rows=2)
    assert ids() == [dumping, second]
    listed = xml_items(http.get("/requests.xml").text, "service_requests", "request")
    assert [r["service_request_id"] for r in listed] == [dumping, second]


# ---------------------------------------------------------------- switches


def test_fail_next_answers_503_then_recovers(http: httpx.Client, server: Open311Server):
    server.control(fail_next=[503, {"status": 503, "retry_after": 7}])
    first = http.post("/requests.json", data=pothole())
    assert errors(first, 503)
    assert "Retry-After" not in first.headers
    second = http.get("/services.json")
    assert second.status_code == 503 and second.headers["Retry-After"] == "7"
    assert http.post("/requests.json", data=pothole()).status_code == 200
    statuses = [r["status"] for r in server.received()[-3:]]
    assert statuses == [503, 503, 200]


def test_fail_for_s_answers_every_api_request_until_the_time_has_passed(
    http: httpx.Client, server: Open311Server
) -> None:
    before = len(server.requests())
    server.control(fail_next=[{"status": 500, "method": "POST"}])
    shown = server.control(fail_for_s=1.0)
    assert shown["fail_status"] == 503
    assert 0 < shown["fail_left_s"] <= 1.0
    started = time.monotonic()
    assert errors(http.post("/requests.json", data=pothole()), 503)
    assert http.get("/services.json").status_code == 503
    assert http.get("/requests.json").status_code == 503
    assert server.switches()["fail_next"] != []  # fail_next waits for the outage to end
    while time.monotonic() - started < 1.0:
        assert http.get("/discovery.json").status_code == 503
        time.sleep(0.1)
    assert time.monotonic() - started >= 1.0
    assert http.get("/services.json").status_code == 200
    assert server.switches()["fail_left_s"] == 0
    assert http.post("/requests.json", data=pothole()).status_code == 500  # then fail_next
    assert http.post("/requests.json", data=pothole()).status_code == 200
    assert len(server.requests()) == before + 1


def test_fail_for_s_with_another_status_and_its_end(
    http: httpx.Client, server: Open311Server
) -> None:
    server.control(fail_for_s=60, fail_status=429)
    limited = http.get("/services.xml")
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "1"
    assert ET.fromstring(limited.text).findtext("error/code") == "429"
    assert server.control(fail_for_s=0)["fail_left_s"] == 0
    assert http.get("/services.json").status_code == 200
    server.control(fail_for_s=60)
    server.reset()
    assert http.get("/services.json").status_code == 200
    for bad in ({"fail_for_s": -1}, {"fail_status": 42}):
        with pytest.raises(httpx.HTTPStatusError):
            server.control(**bad)


def test_the_most_api_requests_in_flight_at_once(http: httpx.Client, server: Open311Server) -> None:
    server.clear()
    server.control(delay_s=0.3)
    with ThreadPoolExecutor(5) as pool:
        statuses = list(pool.map(lambda _: http.get("/services.json").status_code, range(5)))
    assert statuses == [200] * 5
    shown = server.switches()
    assert (shown["in_flight"], shown["max_in_flight"]) == (0, 5)
    server.clear()
    assert server.switches()["max_in_flight"] == 0


def test_429_carries_retry_after(http: httpx.Client, server: Open311Server) -> None:
    server.control(fail_next=[429, {"status": 429, "retry_after": 30}])
    assert http.get("/services.json").headers["Retry-After"] == "1"
    response = http.get("/services.xml")
    assert response.status_code == 429 and response.headers["Retry-After"] == "30"
    assert ET.fromstring(response.text).findtext("error/code") == "429"


def test_the_rate_limit(http: httpx.Client, server: Open311Server) -> None:
    server.control(rate_limit=2, rate_window_s=30)
    assert http.get("/services.json").status_code == 200
    assert http.get("/discovery.json").status_code == 200
    limited = http.post("/requests.json", data=pothole())
    assert errors(limited, 429)
    assert 1 <= int(limited.headers["Retry-After"]) <= 30
    server.control(rate_limit=0)
    assert http.get("/services.json").status_code == 200


def test_html_and_empty_bodies(http: httpx.Client, server: Open311Server) -> None:
    server.control(fail_next=[{"status": 502, "body": "html"}, {"status": 200, "body": "empty"}])
    page = http.post("/requests.json", data=pothole())
    assert page.status_code == 502
    assert page.headers["content-type"].startswith("text/html")
    assert "<h1>502 Bad Gateway</h1>" in page.text
    empty = http.post("/requests.json", data=pothole())
    assert empty.status_code == 200 and empty.content == b""


def test_a_failure_can_wait_for_a_method(http: httpx.Client, server: Open311Server) -> None:
    server.control(fail_next=[{"status": 500, "method": "POST"}])
    assert http.get("/services.json").status_code == 200
    assert http.post("/requests.json", data=pothole()).status_code == 500
    assert server.switches()["fail_next"] == []


def test_a_slow_server_times_the_client_out_but_still_files(
    http: httpx.Client, server: Open311Server
) -> None:
    server.control(delay_s=0.8)
    before = len(server.requests())
    with pytest.raises(httpx.ReadTimeout):
        http.post("/requests.json", data=pothole(), timeout=0.3)
    server.control(delay_s=0)
    server.control(fail_next=[{"delay_s": 0.4}])
    started = time.monotonic()
    assert http.get("/services.json").status_code == 200
    assert time.monotonic() - started >= 0.4
    # The timed-out request is handled after its delay, as a real server would.
    deadline = time.monotonic() + 5
    while len(server.requests()) == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(server.requests()) == before + 1


def test_the_control_api_refuses_unknown_switches(server: Open311Server) -> None:
    with pytest.raises(httpx.HTTPStatusError):
        server.control(explode=True)
    with pytest.raises(httpx.HTTPStatusError):
        server.control(fail_next=["soon"])
    garbled = httpx.post(f"{server.url}/_control", content=b"{not json")
    assert garbled.status_code == 400


# ---------------------------------------------------------------- flags and restarts


def test_switches_from_the_command_line_and_state_across_restarts(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    flags = ["--fail-next", "503", "--tokens", "--fail-for-s", "300", "--fail-status", "502"]
    with Open311Server.start(
        api_key=KEY, state=state, jurisdiction="baltimore.md.us", extra_args=flags
    ) as first:
        url = f"{first.url}/requests.json"
        assert first.switches()["fail_left_s"] > 0
        assert httpx.post(url, data=pothole()).status_code == 502
        first.control(fail_for_s=0)  # end the outage now, whatever the machine's speed
        assert httpx.post(url, data=pothole()).status_code == 503
        elsewhere = httpx.post(url, data=pothole(jurisdiction_id="bloomington.in.gov"))
        assert errors(elsewhere, 404)
        assert httpx.post(url, data=pothole(jurisdiction_id="baltimore.md.us")).status_code == 200
        token = httpx.post(url, data=pothole()).json()[0]["token"]
        service_request_id = httpx.get(f"{first.url}/tokens/{token}.json").json()[0][
            "service_request_id"
        ]
    assert state.exists()
    with Open311Server.start(api_key=KEY, state=state) as second:
        (shown,) = httpx.get(f"{second.url}/requests/{service_request_id}.json").json()
        assert shown["description"] == pothole()["description"]
        resolved = httpx.get(f"{second.url}/tokens/{token}.json").json()[0]
        assert resolved["service_request_id"] == service_request_id
        (answer,) = httpx.post(f"{second.url}/requests.json", data=pothole()).json()
        assert int(answer["service_request_id"]) > int(service_request_id)
        assert len(second.requests()) == 3


def test_a_server_that_cannot_start_says_why(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-services.json"
    with pytest.raises(Open311ServerError, match="no-such-services"):
        Open311Server.start(services=missing, api_key=KEY)
