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


# Connector HTTP (channels, carriers, nodes) goes through CheckedTransport: the same pinning.


class Site:
    """A tiny HTTP/1.1 keep-alive server that answers every request with its own address."""

    def __init__(self, host: str, port: int = 0, tls: ssl.SSLContext | None = None) -> None:
        self.host, self.port, self.tls = host, port, tls
        self.connections = 0
        self.server_names: list[str | None] = []
        self.server: asyncio.Server | None = None
        self.open: set[asyncio.StreamWriter] = set()
        if tls is not None:
            tls.sni_callback = lambda sock, name, ctx: self.server_names.append(name)

    async def __aenter__(self) -> Site:
        self.server = await asyncio.start_server(self._serve, self.host, self.port, ssl=self.tls)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.open:
            writer.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open.add(writer)
        body = self.host.encode()
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.open.discard(writer)
            writer.close()


def rebinding(monkeypatch: pytest.MonkeyPatch, name: str, first: str, then: str) -> list[str]:
    """Makes `name` resolve to `first` once and to `then` from then on; returns the answers given."""
    real = socket.getaddrinfo
    given: list[str] = []

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != name:
            return real(host, port, *args, **kwargs)
        given.append(then if given else first)
        return real(given[-1], port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return given


def test_connector_http_connects_to_the_checked_address_not_a_second_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    """The name answers an allowed address when checked and another one afterwards: the connection
    still goes to the checked address, and the next check refuses the new one."""
    import httpx

    from crossdock.events.webhooks.addresses import CheckedTransport

    given = rebinding(monkeypatch, "rebind.test", "127.0.0.1", "127.0.0.2")

    async def scenario() -> None:
        async with Site("127.0.0.1") as checked:
            try:
                other = await Site("127.0.0.2", checked.port).__aenter__()
            except OSError:
                pytest.skip("127.0.0.2 cannot be bound here")
            try:
                policy = AddressPolicy.from_setting("127.0.0.1/32")
                async with httpx.AsyncClient(transport=CheckedTransport(policy)) as http:
                    answer = await http.get(f"http://rebind.test:{checked.port}/stock")
                    assert answer.text == "127.0.0.1"
                    assert answer.request.headers["host"] == f"rebind.test:{checked.port}"
                    with pytest.raises(httpx.ConnectError, match=r"rebind\.test resolves to 127\.0\.0\.2"):
                        await http.get(f"http://rebind.test:{checked.port}/stock")
                assert given[0] == "127.0.0.1" and set(given[1:]) == {"127.0.0.2"}
                assert other.connections == 0 and checked.connections == 1
            finally:
                await other.__aexit__()

    asyncio.run(scenario())


def test_connector_http_keeps_its_connections() -> None:
    import httpcore
    import httpx

    from crossdock.events.webhooks.addresses import CheckedTransport

    async def scenario() -> None:
        async with Site("127.0.0.1") as site:
            transport = CheckedTransport(AddressPolicy.from_setting("127.0.0.0/8"))
            async with httpx.AsyncClient(transport=transport) as http:
                answers = [await http.get(f"http://127.0.0.1:{site.port}/{n}") for n in range(5)]
            assert {a.text for a in answers} == {"127.0.0.1"}
            assert site.connections == 1
            with pytest.raises(httpcore.ConnectError, match="was not checked"):
                await transport.backend.connect_tcp("elsewhere.test", site.port)

    asyncio.run(scenario())


def test_connector_https_verifies_the_name_while_connecting_to_the_checked_address(
    certificate: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import httpx

    from crossdock.events.webhooks.addresses import CheckedTransport

    rebinding(monkeypatch, "localhost", "127.0.0.1", "127.0.0.1")
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(certificate)
    trust = ssl.create_default_context(cafile=str(tmp_path / "cert.pem"))
    policy = AddressPolicy.from_setting("127.0.0.0/8")

    async def scenario() -> None:
        async with Site("127.0.0.1", tls=tls) as site:
            async with httpx.AsyncClient(transport=CheckedTransport(policy, verify=trust)) as http:
                answer = await http.get(f"https://localhost:{site.port}/stock")
                assert answer.text == "127.0.0.1" and site.server_names == ["localhost"]
                with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                    await http.get(f"https://127.0.0.1:{site.port}/stock")  # the certificate is for `localhost`
            async with httpx.AsyncClient(transport=CheckedTransport(policy)) as http:
                with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                    await http.get(f"https://localhost:{site.port}/stock")  # not trusted by default

    asyncio.run(scenario())
