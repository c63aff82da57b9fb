"""`overheard explain`: the decision for one text, step by step, readable without the code.

These run with the vocabulary alone (`models.enabled=false`), so they need no
trained models; tests/classify/test_cascade_models.py explains with them.
"""

import json

from typer.testing import CliRunner

from overheard.cli import app

VOCABULARY_ONLY = {"OVERHEARD_MODELS__ENABLED": "false", "COLUMNS": "200"}


def explain(*args: str) -> CliRunner:
    return CliRunner().invoke(app, ["explain", *args], env=VOCABULARY_ONLY)


def test_an_issue_is_explained_step_by_step_with_its_place_and_service_code() -> None:
    result = explain("The streetlight at Fleet and Ponca has been out for weeks, nobody fixes it")
    assert result.exit_code == 0, result.output
    lines = result.output
    assert lines.startswith("a local complaint: an issue for the city")
    assert "the subject 'streetlight' (chars 4-15) meets the complaint cue 'been out'" in lines
    assert "category: streetlight, 311 service code: BGE-StLight(s) Out" in lines
    assert "at intersection precision from 'Fleet and Ponca'" in lines
    assert "classifier cascade/3+vocabulary-only, profile" in lines


def test_json_names_the_outcome_the_deciding_step_and_every_step() -> None:
    result = explain("@Baltimore311 pothole on Eastern Ave", "--mention", "Baltimore311", "--json")
    assert result.exit_code == 0, result.output
    decision = json.loads(result.output)
    assert decision["outcome"] == "addressed_city"
    assert decision["decided_at"] == "decide"
    assert decision["issue"] is None
    assert decision["steps"][-1] == {
        "stage": "decide",
        "text": "addresses the city (mentions @Baltimore311): the city already heard it",
    }


def test_a_post_stopped_by_the_scan_says_so() -> None:
    result = explain("The Orioles clinched the division!", "--json")
    decision = json.loads(result.output)
    assert decision["outcome"] == "stopped_by_scan"
    assert decision["decided_at"] == "prefilter"


def test_an_emergency_is_kept_urgent_and_not_filed_to_311() -> None:
    result = explain("Gas leak smell on Eastern Ave near Linwood", "--json")
    issue = json.loads(result.output)["issue"]
    assert issue["urgent"] is True
    assert issue["to_311"] is False


def test_a_language_the_profile_does_not_cover_is_not_judged() -> None:
    result = explain("Hay un bache enorme en Eastern Ave", "--language", "es", "--json")
    decision = json.loads(result.output)
    assert decision["outcome"] == "not_judged"
    assert "written in 'es', which the profile does not cover (en)" in decision["steps"][0]["text"]


def test_an_unknown_platform_is_a_clear_error() -> None:
    result = explain("pothole", "--platform", "myspace")
    assert result.exit_code == 2
    assert "myspace" in result.output
