"""Webhooks never reach an address the operator has not allowed: not at registration, not when a
change of URL is asked for, and not at the moment of connecting (the address is checked again)."""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import subprocess
from pathlib import Path
from typing import Any

import pytest

from crossdock.domain.events import POSITION_CHANGED
from crossdock.events.webhooks.addresses import AddressPolicy, Refused
from tests.conftest import LiveServer
from tests.webhook_helpers import Answer, Receiver, hub, until
from tests.world import seed

PRIVATE = "CROSSDOCK_WEBHOOK_ALLOW_PRIVATE"
REFUSED = {
    "http://10.0.0.1/hooks": "10.0.0.1 is a private address",
    "http://192.168.1.20:8080/hooks": "private address",
    "http://172.16.5.4/hooks": "private address",
    "http://169.254.169.254/latest/meta-data/": "cloud metadata address",
    "http://[fd00:ec2::254]/latest/meta-data/": "cloud metadata address",
    "http://[::1]:8080/hooks": "::1 is a loopback address",
    "http://127.0.0.1:8080/hooks": "loopback address",
    "http://localhost:8080/hooks": "localhost resolves to",
    "http://100.64.0.7/hooks": "carrier-grade NAT address",
    "http://[fd12:3456::1]/hooks": "unique-local address",
    "http://[fe80::1]/hooks": "link-local address",
    "http://224.0.0.251/hooks": "multicast address",
    "http://0.0.0.0/hooks": "unspecified address",
    "http://240.0.0.1/hooks": "reserved address",
    "http://[::ffff:10.1.2.3]/hooks": "(that is 10.1.2.3) is a private address",
    "http://[2002:a00:1::]/hooks": "(that is 10.0.0.1) is a private address",
}
PUBLIC = ("http://93.184.216.34/hooks", "https://[2606:4700:4700::1111]/hooks", "http://8.8.8.8:8080/x")


def check(policy: AddressPolicy, url: str) -> str:
    """The address the URL would be called at; Refused if it may not be."""
    return str(asyncio.run(policy.check(url)).address)


@pytest.mark.parametrize("url", sorted(REFUSED))
def test_private_addresses_are_refused_unless_allowed(url: str) -> None:
    with pytest.raises(Refused, match=PRIVATE) as refused:
        check(AddressPolicy(), url)
    assert REFUSED[url] in str(refused.value)
    everything = AddressPolicy.from_setting("0.0.0.0/0, ::/0")
    assert check(everything, url)


def test_an_allow_list_opens_only_its_networks() -> None:
    loopback = AddressPolicy.from_setting("127.0.0.0/8")
    assert check(loopback, "http://127.0.0.1:9/hooks") == "127.0.0.1"
    assert check(loopback, "http://127.9.9.9/hooks") == "127.9.9.9"
    local = {info[4][0] for info in socket.getaddrinfo("localhost", 80, type=socket.SOCK_STREAM)}
    if local <= {"127.0.0.1"}:  # where localhost is also ::1, every address must be allowed
        assert check(loopback, "http://localhost:9/hooks") == "127.0.0.1"
    for url in ("http://10.0.0.1/", "http://[::1]/", "http://169.254.169.254/", "http://[::ffff:10.0.0.1]/"):
        with pytest.raises(Refused):
            check(loopback, url)
    two = AddressPolicy.from_setting("10.0.0.0/8 169.254.169.254")
    assert check(two, "http://10.1.1.1/") == "10.1.1.1"
    assert check(two, "http://169.254.169.254/") == "169.254.169.254"
    with pytest.raises(Refused):
        check(two, "http://169.254.169.253/")
    with pytest.raises(ValueError, match=PRIVATE):
        AddressPolicy.from_setting("10.0.0.0/33")


def test_public_addresses_and_only_http_schemes_pass() -> None:
    for url in PUBLIC:
        assert check(AddressPolicy(), url)
    for url, why in (
        ("ftp://93.184.216.34/x", "scheme"),
        ("file:///etc/passwd", "scheme"),
        ("gopher://93.184.216.34/", "scheme"),
        ("http:///hooks", "no host"),
        ("http://does-not-exist.invalid/hooks", "does not resolve"),
    ):
        with pytest.raises(Refused, match=why):
            check(AddressPolicy(), url)


def test_the_api_refuses_them_with_a_clear_problem_and_keeps_nothing(tmp_path: Path) -> None:
    with LiveServer(f"sqlite:///{tmp_path / 'ssrf.db'}") as live, live.client() as http:
        for url, why in REFUSED.items():
            r = http.post("/v1/webhook-endpoints", json={"url": url})
            assert r.status_code == 422, (url, r.text)
            assert r.headers["content-type"] == "application/problem+json"
            problem = r.json()
            assert problem["type"].endswith("/invalid-request") and why in problem["detail"], problem
            assert problem["detail"].startswith("url: ")
        assert http.get("/v1/webhook-endpoints").json()["endpoints"] == []

        public = http.post("/v1/webhook-endpoints", json={"url": PUBLIC[0]})
        assert public.status_code == 201, public.text
        endpoint: dict[str, Any] = public.json()
        moved = http.patch(f"/v1/webhook-endpoints/{endpoint['id']}", json={"url": "http://169.254.169.254/"})
        assert moved.status_code == 422 and "cloud metadata" in moved.json()["detail"]
        assert http.get(f"/v1/webhook-endpoints/{endpoint['id']}").json()["url"] == PUBLIC[0]


def test_the_address_is_checked_again_when_connecting(tmp_path: Path) -> None:
    """Registered while allowed (or resolving elsewhere then): the dispatcher still refuses to
    connect, logs why, and keeps the message for later."""
    with Receiver() as receiver, hub(f"sqlite:///{tmp_path / 'again.db'}", deliver_to="") as h:
        endpoint = h.http.post("/v1/webhook-endpoints", json={"url": receiver.url, "event_types": [POSITION_CHANGED]})
        assert endpoint.status_code == 201, endpoint.text
        endpoint_id = endpoint.json()["id"]
        seed(h.http, {"TEE": {"wh-east": 1}})
        log = until(lambda: h.http.get(f"/v1/webhook-endpoints/{endpoint_id}/attempts").json()["attempts"], bool)
        assert log[0]["status"] == "failed" and log[0]["response_code"] is None
        assert log[0]["error"].startswith("refused: 127.0.0.1 is a loopback address")
        pending = h.http.get(f"/v1/webhook-endpoints/{endpoint_id}/messages").json()["messages"]
        assert [m["status"] for m in pending] == ["pending"]
        assert receiver.received() == []


def test_redirects_are_not_followed(tmp_path: Path) -> None:
    with (
        Receiver() as inside,
        Receiver(lambda d: Answer(307, {"Location": inside.url})) as outside,
        hub(f"sqlite:///{tmp_path / 'redirect.db'}") as h,
    ):
        endpoint = h.http.post("/v1/webhook-endpoints", json={"url": outside.url}).json()
        ping = h.http.post(f"/v1/webhook-endpoints/{endpoint['id']}/test").json()
        assert ping["status"] == "failed" and ping["response_code"] == 307
        assert ping["error"] == f"redirect 307 to {inside.url} not followed"
        assert len(outside.received()) == 1 and inside.received() == []


@pytest.fixture
def certificate(tmp_path: Path) -> Path:
    """A self-signed certificate for the name `localhost` (key and certificate in one file)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    pem = tmp_path / "localhost.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
            "-keyout",
            str(pem),
            "-out",
            str(tmp_path / "cert.pem"),
        ],
        check=True,
        capture_output=True,
    )
    pem.write_text(pem.read_text() + (tmp_path / "cert.pem").read_text())
    return pem


def test_https_speaks_to_the_name_while_connecting_to_the_checked_address(
    certificate: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = {info[4][0] for info in socket.getaddrinfo("localhost", 80, type=socket.SOCK_STREAM)}
    if not local <= {"127.0.0.1"}:
        pytest.skip("localhost is not only 127.0.0.1 here")
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(certificate)
    with (
        Receiver(tls=tls, name="localhost") as receiver,
        LiveServer(f"sqlite:///{tmp_path / 'tls.db'}", webhook_allow_private="127.0.0.0/8") as live,
        live.client() as http,
    ):
        endpoint = http.post("/v1/webhook-endpoints", json={"url": receiver.url}).json()
        untrusted = http.post(f"/v1/webhook-endpoints/{endpoint['id']}/test").json()
        assert untrusted["status"] == "failed" and "CERTIFICATE_VERIFY_FAILED" in untrusted["error"]
        assert receiver.received() == []

        monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "cert.pem"))  # now trusted, for `localhost` only
        trusted = http.post(f"/v1/webhook-endpoints/{endpoint['id']}/test").json()
        assert trusted["status"] == "succeeded", trusted
        assert receiver.received()[0].headers["host"] == f"localhost:{receiver.port}"
        assert receiver.server_names[-1] == "localhost"

        wrong_name = http.patch(
            f"/v1/webhook-endpoints/{endpoint['id']}", json={"url": receiver.url.replace("localhost", "127.0.0.1")}
        )
        assert wrong_name.status_code == 200
        mismatch = http.post(f"/v1/webhook-endpoints/{endpoint['id']}/test").json()
        assert mismatch["status"] == "failed" and "127.0.0.1" in mismatch["error"]
