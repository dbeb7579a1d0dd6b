"""SSRF: every spelling of an inward address is refused by default, on the first hop and on every redirect."""

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tools import FetchSettings, ToolExecutor, ToolsConfig, UnsafeURLError, UrlPolicy
from tools.safety import parse_ipv4_loose

SSRF_URLS = [
    "http://127.0.0.1/",
    "http://localhost/",
    "http://LOCALHOST./",
    "http://0.0.0.0/",
    "http://[::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]/",
    "http://2130706433/",
    "http://0x7f000001/",
    "http://0177.0.0.1/",
    "http://0x7f.0.0.1/",
    "http://127.1/",
    "http://10.0.0.1/",
    "http://10.255.255.254:8080/admin",
    "http://172.16.0.1/",
    "http://172.31.255.1/",
    "http://192.168.0.1/",
    "http://169.254.169.254/latest/meta-data/",
    "http://[fd00::1]/",
    "http://[fe80::1]/",
    "http://[::]/",
    "http://100.64.0.1/",
    "http://224.0.0.251/",
    "http://240.0.0.1/",
    "http://[2002:7f00:1::]/",  # 6to4 wrapping loopback
    "http://[64:ff9b::a00:1]/",  # NAT64 wrapping 10.0.0.1
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://user:pass@127.0.0.1:80/",
    "http://intranet.test/",  # a DNS name resolving to a private address
    "http://rebind.test/",  # one public and one private answer
    "file:///etc/passwd",
    "gopher://127.0.0.1:25/",
]

FAKE_DNS = {"intranet.test": ["10.1.2.3"], "rebind.test": ["93.184.216.34", "192.168.1.10"]}


def fake_then_system(host: str, port: int) -> list[str]:
    from tools.safety import system_resolver

    return FAKE_DNS.get(host) or system_resolver(host, port)


@pytest.mark.parametrize("url", SSRF_URLS)
def test_ssrf_attempts_are_refused_by_default(url):
    with ToolExecutor(resolver=fake_then_system) as tools, pytest.raises(UnsafeURLError) as err:
        tools.execute("extract_content", {"url": url})
    assert "refusing" in str(err.value) or "not allowed" in str(err.value) or "metadata" in str(err.value)


def test_suite_size():
    assert len(SSRF_URLS) >= 20


def test_redirect_to_loopback_is_refused(web):
    # the first hop is explicitly allowed by name; its redirect to 127.0.0.1 is not
    resolver = lambda host, port: ["127.0.0.1"] if host == "public.test" else []  # noqa: E731
    config = ToolsConfig(fetch=FetchSettings(allow=("public.test",)))
    with ToolExecutor(config, resolver=resolver) as tools, pytest.raises(UnsafeURLError, match="loopback"):
        tools.execute("extract_content", {"url": f"http://public.test:{web.port}/to-loopback"})
    assert web.hits["/to-loopback"] >= 1


def test_connection_is_pinned_to_the_checked_address(web):
    """The name is resolved by our resolver only (the system cannot resolve it): the fetch uses that address."""
    resolver = lambda host, port: ["127.0.0.1"] if host == "pinned.test" else []  # noqa: E731
    config = ToolsConfig(fetch=FetchSettings(allow=("pinned.test",)))
    with ToolExecutor(config, resolver=resolver) as tools:
        out = tools.execute("extract_content", {"url": f"http://pinned.test:{web.port}/article"})
    assert "frozen language models" in out["text"]


def test_allow_list_by_network(web):
    policy = UrlPolicy(allow=("127.0.0.0/8",))
    assert policy.check(f"{web.base}/article").ip == "127.0.0.1"
    with pytest.raises(UnsafeURLError):
        policy.check("http://10.0.0.1/")


def test_public_address_passes_and_keeps_host_header():
    pinned = UrlPolicy(resolver=lambda h, p: ["93.184.216.34"]).check("https://Example.COM:8443/a?b=1")
    assert (pinned.ip, pinned.host_header) == ("93.184.216.34", "example.com:8443")
    assert pinned.connect_url == "https://93.184.216.34:8443/a?b=1"


def test_unresolvable_host_is_a_clear_error():
    with pytest.raises(UnsafeURLError, match="cannot resolve"):
        UrlPolicy().check("http://no-such-host.invalid/")


@given(st.integers(0, 2**32 - 1))
def test_loose_ipv4_forms_agree(n):
    ip = ipaddress.IPv4Address(n)
    a, b, c, d = ip.packed
    assert parse_ipv4_loose(str(n)) == ip
    assert parse_ipv4_loose(hex(n)) == ip
    assert parse_ipv4_loose(f"{a}.{(b << 16) + (c << 8) + d}") == ip
    assert parse_ipv4_loose(f"0{a:o}.0x{b:x}.{c}.{d}") == ip
