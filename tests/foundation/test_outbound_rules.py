"""The outbound address rules: what a production AS refuses to reach, and what the operator allows."""

from __future__ import annotations

import ipaddress

import pytest

from aggregator.outbound import (
    AllowedHosts,
    OutboundError,
    OutboundPolicy,
    OutboundRefused,
    OutboundSession,
    forbidden_reason,
)
from aggregator.testing.servers import reserve_port
from config import ConfigError, load_settings

PRODUCTION = OutboundPolicy(production=True)

REFUSED = {
    "0.0.0.0": "unspecified", "::": "unspecified",
    "127.0.0.1": "loopback", "127.8.9.10": "loopback", "::1": "loopback",
    "10.1.2.3": "private", "172.16.0.1": "private", "172.31.255.254": "private",
    "192.168.1.1": "private", "fc00::1": "private", "fd12:3456::1": "private",
    "100.64.0.1": "CGNAT", "100.127.255.254": "CGNAT",
    "169.254.1.1": "link-local", "fe80::1": "link-local",
    "169.254.169.254": "cloud metadata", "fd00:ec2::254": "cloud metadata",
    "224.0.0.1": "multicast", "239.255.255.250": "multicast", "ff02::1": "multicast",
    # IPv4 carried in IPv6 is judged as the IPv4 address
    "::ffff:127.0.0.1": "loopback", "::ffff:10.0.0.1": "private",
    "64:ff9b::a9fe:a9fe": "cloud metadata", "2002:c0a8:0101::1": "private",
    # the rest of the special-purpose registries
    "192.0.2.1": "special-purpose", "2001:db8::1": "special-purpose", "240.0.0.1": "special-purpose",
}
PUBLIC = ("93.184.216.34", "8.8.8.8", "172.32.0.1", "100.128.0.1", "2606:4700::1111",
          "::ffff:93.184.216.34")


@pytest.mark.parametrize(("address", "reason"), sorted(REFUSED.items()))
def test_production_refuses_each_non_public_range(address, reason):
    ip = ipaddress.ip_address(address)
    assert forbidden_reason(ip) == reason
    with pytest.raises(OutboundRefused, match=reason):
        PRODUCTION.check_address("bank.example", ip)


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_reachable(address):
    assert forbidden_reason(ipaddress.ip_address(address)) is None
    PRODUCTION.check_address("bank.example", ipaddress.ip_address(address))


def test_development_reaches_anything():
    for address in REFUSED:
        OutboundPolicy().check_address("localhost", ipaddress.ip_address(address))


def test_the_operator_allows_private_hosts_by_name_or_network():
    policy = OutboundPolicy(True, AllowedHosts.parse(["Bank.Internal", "10.20.0.0/16", "fd00:1::/32"]))
    policy.check_address("bank.internal", ipaddress.ip_address("10.9.9.9"))  # by name
    policy.check_address("other.internal", ipaddress.ip_address("10.20.3.4"))  # by network
    policy.check_address("v6.internal", ipaddress.ip_address("fd00:1::5"))
    with pytest.raises(OutboundRefused):
        policy.check_address("other.internal", ipaddress.ip_address("10.21.0.1"))
    with pytest.raises(OutboundRefused):  # an allowed network does not open the metadata address
        policy.check_address("other.internal", ipaddress.ip_address("169.254.169.254"))


def test_the_allowed_hosts_setting_is_validated():
    settings = load_settings({"AGGREGATOR_OUTBOUND_ALLOWED_HOSTS": "bank.internal, 10.20.0.0/16"})
    assert settings.outbound_allowed_hosts == ("bank.internal", "10.20.0.0/16")
    for bad in ("bank_internal", "10.0.0.0/33", "https://bank.internal", "-bank.internal"):
        with pytest.raises(ConfigError, match="AGGREGATOR_OUTBOUND_ALLOWED_HOSTS"):
            load_settings({"AGGREGATOR_OUTBOUND_ALLOWED_HOSTS": bad})


def test_a_name_resolving_to_loopback_is_refused_when_connecting():
    """``localhost`` is a name, not an address: only the address it resolves to at connect time
    reveals it is loopback. Nothing is sent: the refusal comes before the connection."""
    url = f"https://localhost:{reserve_port()}/jwks"
    with pytest.raises(OutboundRefused, match="loopback"):
        OutboundSession(PRODUCTION, 2).get(url)
    with pytest.raises(OutboundRefused, match="loopback"):
        PRODUCTION.check_url(url)  # the registration-time courtesy check agrees
    with pytest.raises(OutboundRefused, match="https"):
        OutboundSession(PRODUCTION, 2).get(url.replace("https", "http"))
    # allowed by the operator: the connection is attempted (and fails: nothing listens)
    allowed = OutboundPolicy(True, AllowedHosts.parse(["localhost"]))
    with pytest.raises(OutboundError) as caught:
        OutboundSession(allowed, 2).get(url)
    assert not isinstance(caught.value, OutboundRefused)
