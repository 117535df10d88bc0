"""Every alert is routable, documented, linked to a dashboard and covered by promtool tests."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

RUNBOOK_URL = re.compile(
    r"^https://github\.com/jobfleet/jobfleet/blob/main/docs/runbooks/(?P<file>[\w.-]+\.md)#(?P<anchor>[\w-]+)$"
)
DASHBOARD_URL = re.compile(r"^https?://[^/]+/d/(?P<uid>[\w-]+)(?:[/?].*)?$")
REQUIRED_ALERTS = {
    "JobfleetQueueLagHigh",
    "JobfleetBacklogGrowing",
    "JobfleetJobFailureRatioHigh",
    "JobfleetDLQGrowing",
    "JobfleetDeadLettersNearExpiry",
    "JobfleetNoLiveWorkers",
    "JobfleetTargetDown",
    "JobfleetExporterRedisDown",
    "JobfleetWorkerSaturation",
    "JobfleetStuckJob",
    "JobfleetAPIErrorRatioHigh",
    "JobfleetAPILatencyHigh",
    "JobfleetSLOBurnRate",
    "Watchdog",
}
# Alerts about one queue: Alertmanager groups and inhibits them by their `queue` label.
QUEUE_LEVEL_ALERTS = {
    "JobfleetQueueLagHigh",
    "JobfleetBacklogGrowing",
    "JobfleetJobFailureRatioHigh",
    "JobfleetDLQGrowing",
    "JobfleetDeadLettersNearExpiry",
    "JobfleetStuckJob",
    "JobfleetSLOBurnRate",
}
RUNBOOK_SECTIONS = ("## Meaning", "## Impact", "## Diagnosis", "## Mitigation")


def github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub generates for a Markdown file's headings."""
    anchors = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*$", markdown, flags=re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        anchors.add(slug)
    return anchors


def alert_cases(promtool_tests: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Every alert_rule_test case across the promtool test files."""
    return [
        case
        for suite in promtool_tests.values()
        for test in suite.get("tests", [])
        for case in test.get("alert_rule_test", [])
    ]


def test_every_required_alert_is_defined(alert_rules: list[dict[str, Any]]) -> None:
    defined = {rule["alert"] for rule in alert_rules}
    assert not REQUIRED_ALERTS - defined, f"missing alerts: {sorted(REQUIRED_ALERTS - defined)}"


def test_every_alert_has_a_severity_and_the_four_annotations(alert_rules: list[dict[str, Any]]) -> None:
    for rule in alert_rules:
        name, labels, annotations = rule["alert"], rule.get("labels", {}), rule.get("annotations", {})
        allowed = {"none"} if name == "Watchdog" else {"critical", "warning"}
        assert labels.get("severity") in allowed, name
        assert set(annotations) >= {"summary", "description", "runbook_url", "dashboard_url"}, name
        assert "{{" not in annotations["summary"], f"{name}: summary must be static"
        assert re.search(r"\$(labels|value)", annotations["description"]), f"{name}: description is not templated"


def test_every_runbook_url_points_at_an_existing_runbook_section(alert_rules: list[dict[str, Any]], repo: Path) -> None:
    for rule in alert_rules:
        match = RUNBOOK_URL.match(rule["annotations"]["runbook_url"])
        assert match, f"{rule['alert']}: runbook_url {rule['annotations']['runbook_url']!r}"
        # docs/runbooks/dlq.md belongs to the DLQ operations guide, not to an alert.
        assert match["file"] != "dlq.md"
        runbook = repo / "docs/runbooks" / match["file"]
        assert runbook.is_file(), f"{rule['alert']}: {runbook} is missing"
        text = runbook.read_text()
        assert match["anchor"] in github_anchors(text), f"{rule['alert']}: no #{match['anchor']} in {runbook}"
        for section in RUNBOOK_SECTIONS:
            assert section in text, f"{runbook} lacks {section}"


def test_runbook_index_links_every_runbook(repo: Path) -> None:
    index = (repo / "docs/runbooks/README.md").read_text()
    for runbook in (repo / "docs/runbooks").glob("*.md"):
        if runbook.name not in {"README.md", "dlq.md"}:
            assert f"({runbook.name}#" in index, f"README.md does not link {runbook.name}"


def test_every_dashboard_url_names_a_provisioned_dashboard(
    alert_rules: list[dict[str, Any]], dashboards: dict[str, dict[str, Any]]
) -> None:
    uids = {board["uid"] for board in dashboards.values()}
    for rule in alert_rules:
        match = DASHBOARD_URL.match(rule["annotations"]["dashboard_url"])
        assert match, f"{rule['alert']}: dashboard_url {rule['annotations']['dashboard_url']!r}"
        assert match["uid"] in uids, f"{rule['alert']}: no dashboard with uid {match['uid']}"


def test_every_alert_rule_fires_in_a_promtool_test(
    alert_rules: list[dict[str, Any]], promtool_tests: dict[str, dict[str, Any]]
) -> None:
    fired = {
        (case["alertname"], alert["exp_labels"].get("severity"))
        for case in alert_cases(promtool_tests)
        for alert in case.get("exp_alerts") or []
    }
    for rule in alert_rules:
        assert (rule["alert"], rule["labels"]["severity"]) in fired, f"{rule['alert']} never fires in a test"


def test_every_alert_stays_quiet_in_a_promtool_test(
    alert_rules: list[dict[str, Any]], promtool_tests: dict[str, dict[str, Any]]
) -> None:
    quiet = {case["alertname"] for case in alert_cases(promtool_tests) if not case.get("exp_alerts")}
    # Watchdog is vector(1): it cannot be quiet, and its silence is what the dead man's switch detects.
    expected = {rule["alert"] for rule in alert_rules} - {"Watchdog"}
    assert expected <= quiet, f"no quiet case for {sorted(expected - quiet)}"


def test_queue_level_alerts_fire_with_a_queue_label(promtool_tests: dict[str, dict[str, Any]]) -> None:
    for case in alert_cases(promtool_tests):
        if case["alertname"] in QUEUE_LEVEL_ALERTS:
            for alert in case.get("exp_alerts") or []:
                assert "queue" in alert["exp_labels"], case["alertname"]


def test_every_recording_rule_has_an_expression_test(
    recording_rules: list[dict[str, Any]], promtool_tests: dict[str, dict[str, Any]]
) -> None:
    tested = {
        re.split(r"[{\s]", case["expr"].strip(), maxsplit=1)[0]
        for suite in promtool_tests.values()
        for test in suite.get("tests", [])
        for case in test.get("promql_expr_test", [])
        if case.get("exp_samples")
    }
    missing = {rule["record"] for rule in recording_rules} - tested
    assert not missing, f"recording rules without a promql_expr_test: {sorted(missing)}"


@pytest.mark.parametrize("name", ["recording.yml", "alerts.yml"])
def test_recording_rule_names_follow_level_metric_operations(name: str, repo: Path) -> None:
    text = (repo / "prometheus/rules" / name).read_text()
    for record in re.findall(r"^\s*- record:\s*(\S+)", text, flags=re.MULTILINE):
        assert re.fullmatch(r"[a-z_]+:[a-z_]+:[a-z0-9_]+", record), record


def test_alert_tests_evaluate_recording_groups_before_alert_groups(
    promtool_tests: dict[str, dict[str, Any]], rule_group_names: dict[str, list[str]]
) -> None:
    # promtool's default group order is random; alerts on recorded series would see stale values.
    expected = rule_group_names["recording.yml"] + rule_group_names["alerts.yml"]
    for name, suite in promtool_tests.items():
        rule_files = {Path(path).name for path in suite["rule_files"]}
        if {"recording.yml", "alerts.yml"} <= rule_files:
            assert suite.get("group_eval_order") == expected, name
