"""Webhook SSRF guard: only allowed hosts, only public addresses unless a network is allowed, checked after DNS
resolution and connected to the checked address; a refused destination is a permanent error."""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Callable

import pytest
from flask.testing import FlaskClient

from jobfleet.core.errors import ConfigError, PermanentError
from jobfleet.core.settings import Settings
from jobfleet.workers.jobs.ssrf import DestinationPolicy, resolve
from tests.conftest import Receiver, RunningWorker, wait_for_state

DEFAULT = DestinationPolicy()


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "::1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "fd00:ec2::254",  # AWS metadata over IPv6
        "100.64.0.1",  # carrier-grade NAT
        "0.0.0.0",
        "::ffff:127.0.0.1",  # IPv4-mapped loopback
        "224.0.0.1",
        "fe80::1",
    ],
)
def test_non_public_addresses_are_refused_by_default(address: str) -> None:
    assert not DEFAULT.address_allowed(ipaddress.ip_address(address))


def test_public_addresses_and_explicitly_allowed_networks_pass() -> None:
    assert DEFAULT.address_allowed(ipaddress.ip_address("93.184.215.14"))
    policy = DestinationPolicy.from_settings("*", "10.20.0.0/16, 127.0.0.1/32")
    assert policy.address_allowed(ipaddress.ip_address("10.20.3.4"))
    assert policy.address_allowed(ipaddress.ip_address("::ffff:127.0.0.1"))
    assert not policy.address_allowed(ipaddress.ip_address("10.21.0.1"))


def test_the_host_allowlist_takes_names_wildcards_and_cidrs() -> None:
    policy = DestinationPolicy.from_settings("hooks.example.com, *.partner.io, 203.0.113.0/24", "")
    assert policy.host_allowed("hooks.example.com")
    assert policy.host_allowed("a.b.partner.io")
    assert policy.host_allowed("203.0.113.9")
    assert not policy.host_allowed("partner.io.evil.com")
    assert not policy.host_allowed("example.com")
    with pytest.raises(ConfigError, match="JOBFLEET_WEBHOOK_ALLOWED_NETWORKS"):
        DestinationPolicy.from_settings("*", "not-a-network")


def test_the_check_runs_on_the_resolved_address_not_the_name() -> None:
    # "localhost" is a name: only resolution shows it is loopback
    with pytest.raises(PermanentError, match=r"resolves to .*loopback, private, link-local or metadata"):
        resolve("http://localhost:8080/hook", DEFAULT)
    with pytest.raises(PermanentError, match="not on JOBFLEET_WEBHOOK_ALLOWED_HOSTS"):
        resolve("https://evil.example/hook", DestinationPolicy(hosts=("good.example",)))
    pinned = resolve(
        "http://localhost:8080/hook?x=1", DestinationPolicy(allowed_networks=(ipaddress.ip_network("127.0.0.0/8"),))
    )
    assert (pinned.address, pinned.host, pinned.port, pinned.path) == ("127.0.0.1", "localhost", 8080, "/hook?x=1")


def test_a_webhook_to_a_refused_destination_is_dead_lettered_as_permanent_without_a_request(
    client: FlaskClient, settings: Settings, start_worker: Callable[..., RunningWorker], receiver: Receiver
) -> None:
    # Given a worker with the default policy (loopback not allowed) and a receiver on 127.0.0.1
    start_worker(dataclasses.replace(settings, webhook_allowed_networks=""))
    job_id = client.post("/v1/jobs/webhook", json={"url": receiver.url, "payload": {}}).get_json()["job_id"]
    body = wait_for_state(client, job_id, {"succeeded", "dead"})
    assert body["state"] == "dead"
    assert body["attempts"] == 1  # permanent: no retry
    assert body["error"]["type"] == "PermanentError"
    assert "127.0.0.1" in body["error"]["message"]
    assert "JOBFLEET_WEBHOOK_ALLOWED_NETWORKS" in body["error"]["message"]
    assert receiver.requests == []
    assert client.get(f"/v1/dlq/{job_id}").get_json()["reason"] == "permanent"


def test_a_redirect_to_an_internal_address_is_not_followed(
    client: FlaskClient, worker: RunningWorker, receiver: Receiver
) -> None:
    receiver.statuses = [302]
    job_id = client.post("/v1/jobs/webhook", json={"url": receiver.url, "payload": {}}).get_json()["job_id"]
    body = wait_for_state(client, job_id, {"succeeded", "dead"})
    assert body["state"] == "dead"
    assert "redirects are not followed" in body["error"]["message"]
    assert len(receiver.requests) == 1
