"""Result downloads: one deadline, every redirect hop checked, bounded size, safe messages.

Nothing here leaves 127.0.0.0/8. Names resolve only through ``fake_dns`` (any other lookup fails
the test), and every connection goes through ``genstore._pinned.connect_tcp``, replaced by a
guard that routes the few "public" test addresses to loopback servers and fails the test on any
other address outside 127.0.0.0/8.
"""

from __future__ import annotations

import datetime
import gzip
import ipaddress
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import httpcore
import pytest
from genstore import _netguard, _pinned
from genstore._download import Download, DownloadError, DownloadRules, open_download
from genstore._netguard import IPAddress, NetPolicy
from genstore._options import StoreOptions

LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
PUBLIC_IP = "93.184.215.14"  # stands for "somewhere on the internet"; routed to loopback below
SECRET = "plantedTok3n"


@dataclass
class Net:
    """The test's whole network: fake DNS answers and where fake public addresses really go."""

    dns: dict[str, list[str]] = field(default_factory=dict)
    routes: dict[str, str] = field(default_factory=lambda: {PUBLIC_IP: "127.0.0.1"})
    lookups: list[str] = field(default_factory=list)
    connects: list[str] = field(default_factory=list)

    def resolve(self, host: str, port: int, timeout: float) -> list[IPAddress]:
        self.lookups.append(host)
        if host not in self.dns:
            raise AssertionError(f"the test resolved {host!r}, which it did not plant")
        return [ipaddress.ip_address(a) for a in self.dns[host]]

    def connect(self, address: str, port: int, timeout: float) -> httpcore.NetworkStream:
        self.connects.append(address)
        real = self.routes.get(address, address)
        if ipaddress.ip_address(real) not in LOOPBACK:
            raise AssertionError(f"the test tried to connect to {address}")
        return httpcore.SyncBackend().connect_tcp(real, port, timeout=timeout)


@pytest.fixture(autouse=True)
def net(monkeypatch: pytest.MonkeyPatch) -> Net:
    network = Net()
    monkeypatch.setattr(_netguard, "resolve_name", network.resolve)
    monkeypatch.setattr(_pinned, "connect_tcp", network.connect)
    return network


class _QuietServer(ThreadingHTTPServer):
    owner: Server

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that hangs up mid-answer is what several tests do on purpose


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _QuietServer

    def do_GET(self) -> None:
        owner = self.server.owner
        owner.hits.append(self.path)
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        route = getattr(owner, "route_" + parts.path.strip("/").replace("-", "_"), None)
        if route is None:
            self.answer(404, b"no such route")
        else:
            route(self, query)

    def answer(self, status: int, body: bytes, **headers: str) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class Server:
    """A loopback HTTP(S) server with the routes these tests need (``route_<path>``)."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.stop = threading.Event()
        self.hits: list[str] = []
        self.sni: list[str | None] = []
        self.server = _QuietServer(("127.0.0.1", 0), _Handler)
        self.server.owner = self
        if tls is not None:
            tls.sni_callback = self._record_sni
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def _record_sni(self, sock: ssl.SSLObject, name: str | None, ctx: ssl.SSLContext) -> None:
        self.sni.append(name)

    def url(self, path: str, host: str = "127.0.0.1", scheme: str = "http") -> str:
        return f"{scheme}://{host}:{self.port}{path}"

    # routes ---------------------------------------------------------------------------------

    def route_ok(self, h: _Handler, q: dict[str, str]) -> None:
        h.answer(200, b"RESULT" * int(q.get("n", "1")), Content_Type="image/png")

    def route_host(self, h: _Handler, q: dict[str, str]) -> None:
        h.answer(200, h.headers.get("Host", "").encode())

    def route_redirect(self, h: _Handler, q: dict[str, str]) -> None:
        time.sleep(float(q.get("delay", "0")))  # a slow hop (server side)
        h.answer(int(q.get("status", "302")), b"", Location=q["to"])

    def route_loop(self, h: _Handler, q: dict[str, str]) -> None:
        h.answer(302, b"", Location="/loop")

    def route_status(self, h: _Handler, q: dict[str, str]) -> None:
        h.answer(int(q["code"]), b"error body")

    def route_drip(self, h: _Handler, q: dict[str, str]) -> None:
        """Headers promising 1000 bytes, then one byte every ``every`` seconds."""
        h.send_response(200)
        h.send_header("Content-Length", "1000")
        h.end_headers()
        h.wfile.flush()
        self._drip(h, float(q.get("every", "0.1")))

    def route_drip_headers(self, h: _Handler, q: dict[str, str]) -> None:
        """The status line itself, a byte at a time."""
        h.wfile.write(b"HTTP/1.1 200 OK\r\nX-Pad: ")
        self._drip(h, 0.1)

    def _drip(self, h: _Handler, every: float) -> None:
        for _ in range(200):
            if self.stop.wait(every):
                return
            try:
                h.wfile.write(b"x")
                h.wfile.flush()
            except OSError:
                return

    def route_stall(self, h: _Handler, q: dict[str, str]) -> None:
        h.send_response(200)
        h.send_header("Content-Length", "10")
        h.end_headers()
        h.wfile.write(b"12345")
        h.wfile.flush()
        self.stop.wait(20)

    def route_chunked(self, h: _Handler, q: dict[str, str]) -> None:
        h.send_response(200)
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        for _ in range(int(q["chunks"])):
            h.wfile.write(b"400\r\n" + b"z" * 1024 + b"\r\n")
        h.wfile.write(b"0\r\n\r\n")

    def route_gzip(self, h: _Handler, q: dict[str, str]) -> None:
        body = gzip.compress(b"\0" * int(q["size"]))
        h.answer(200, body, Content_Encoding="gzip")

    def close(self) -> None:
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    yield s
    s.close()


def rules(**changes: object) -> DownloadRules:
    values: dict[str, object] = {"limit": 1 << 20, "deadline": 10.0, "idle_timeout": 5.0}
    values.update(changes)
    return DownloadRules(**values)  # type: ignore[arg-type]


def fetch(url: str, how: DownloadRules | None = None) -> tuple[Download, bytes]:
    with open_download(url, how or rules()) as download:
        return download, b"".join(download.chunks)


def refused(url: str, how: DownloadRules | None = None) -> str:
    with pytest.raises(DownloadError) as caught:
        fetch(url, how)
    return str(caught.value)


# --- plain downloads -----------------------------------------------------------------------


def test_a_loopback_result_is_downloaded(server: Server) -> None:
    download, body = fetch(server.url("/ok?n=3"))
    assert body == b"RESULT" * 3
    assert download.content_type == "image/png"


def test_it_connects_to_the_checked_address_but_speaks_to_the_name(
    server: Server, net: Net
) -> None:
    net.dns["files.test"] = [PUBLIC_IP]
    _, body = fetch(server.url("/host", host="files.test"))
    assert body == f"files.test:{server.port}".encode()
    assert net.lookups == ["files.test"] and net.connects == [PUBLIC_IP]


def test_a_name_is_resolved_once_per_hop_so_rebinding_cannot_redirect_it(
    server: Server, net: Net, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers = iter([[PUBLIC_IP], ["169.254.169.254"], ["169.254.169.254"]])

    def rebinding(host: str, port: int, timeout: float) -> list[IPAddress]:
        return [ipaddress.ip_address(a) for a in next(answers)]

    monkeypatch.setattr(_netguard, "resolve_name", rebinding)
    _, body = fetch(server.url("/ok", host="rebind.test"))
    assert body == b"RESULT"
    assert net.connects == [PUBLIC_IP]
    assert next(answers) == ["169.254.169.254"]  # asked once: the second answer never used


def test_gzip_bodies_are_decoded(server: Server) -> None:
    _, body = fetch(server.url("/gzip?size=5000"))
    assert body == b"\0" * 5000


# --- the deadline --------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/drip?every=0.1", "/drip-headers"])
def test_a_trickling_server_is_abandoned_at_the_deadline(server: Server, path: str) -> None:
    started = time.monotonic()
    message = refused(server.url(path), rules(deadline=1.0, idle_timeout=5.0))
    elapsed = time.monotonic() - started
    assert "deadline of 1 s" in message
    assert 0.9 <= elapsed < 2.5, elapsed  # each byte arrives well within the idle timeout


def test_a_silent_server_is_abandoned_after_the_idle_timeout(server: Server) -> None:
    started = time.monotonic()
    message = refused(server.url("/stall"), rules(deadline=10.0, idle_timeout=0.3))
    assert "sent nothing for 0.3 s" in message
    assert time.monotonic() - started < 2.5


def test_redirect_hops_share_one_deadline(server: Server) -> None:
    url = server.url("/ok")
    for _ in range(3):  # three hops of 0.4 s each, every one well within the idle timeout
        url = server.url(f"/redirect?delay=0.4&to={quote(url, safe='')}")
    _, body = fetch(url, rules(deadline=5.0))
    assert body == b"RESULT" and len(server.hits) == 4
    started = time.monotonic()
    message = refused(url, rules(deadline=1.0))
    assert "deadline of 1 s" in message
    assert 0.9 <= time.monotonic() - started < 2.0


def test_the_deadline_covers_time_spent_between_chunks(server: Server) -> None:
    with open_download(server.url("/chunked?chunks=50"), rules(deadline=0.3)) as download:
        chunks = iter(download.chunks)
        next(chunks)
        time.sleep(0.4)  # the caller is slow: its time counts
        with pytest.raises(DownloadError, match="deadline"):
            list(chunks)


# --- size ----------------------------------------------------------------------------------


def test_a_declared_length_over_the_limit_is_refused_before_reading(server: Server) -> None:
    message = refused(server.url("/ok?n=100"), rules(limit=599))
    assert "600 bytes, over the limit of 599" in message


def test_an_undeclared_body_over_the_limit_is_cut_off(server: Server) -> None:
    assert "larger than the limit" in refused(server.url("/chunked?chunks=20"), rules(limit=10_000))
    _, body = fetch(server.url("/chunked?chunks=20"), rules(limit=20 * 1024))
    assert len(body) == 20 * 1024


def test_a_compressed_body_is_limited_by_its_decoded_size(server: Server) -> None:
    assert "larger than the limit" in refused(
        server.url("/gzip?size=5000000"), rules(limit=1 << 20)
    )


# --- what is refused, and that nothing is sent --------------------------------------------


def test_a_redirect_from_a_public_address_into_loopback_is_refused(
    server: Server, net: Net
) -> None:
    net.dns["cdn.test"] = [PUBLIC_IP]
    message = refused(server.url(f"/redirect?to={server.url('/ok')}", host="cdn.test"))
    assert "redirect from a public address may not lead to loopback space" in message
    assert net.connects == [PUBLIC_IP] and len(server.hits) == 1


@pytest.mark.parametrize(
    ("target", "kind"),
    [
        ("http://metadata.test/latest/meta-data/iam", "cloud-metadata"),
        ("http://2852039166/latest/meta-data/", "cloud-metadata"),
        ("http://0xa9.0xfe.0xa9.0xfe/", "cloud-metadata"),
        ("http://[::ffff:169.254.169.254]/", "cloud-metadata"),
        ("http://[fd00:ec2::254]/", "cloud-metadata"),
        ("http://lan.test/", "private"),
        ("http://2130706433/", "loopback"),
        ("http://0x7f.1/", "loopback"),
        ("http://[::1]/", "loopback"),
        ("http://0.0.0.0/", "unspecified"),
    ],
)
def test_redirects_out_of_public_space_are_refused_without_connecting(
    server: Server, net: Net, target: str, kind: str
) -> None:
    net.dns.update({"cdn.test": [PUBLIC_IP], "metadata.test": ["169.254.169.254"]})
    net.dns["lan.test"] = ["10.0.0.8"]
    message = refused(server.url(f"/redirect?status=307&to={target}", host="cdn.test"))
    assert f"{kind}" in message
    assert net.connects == [PUBLIC_IP]


@pytest.mark.parametrize(
    "url",
    [
        "http://metadata.test/latest/meta-data/",
        "http://169.254.169.254/latest/meta-data/",
        "http://2852039166/",
        "http://[::ffff:a9fe:a9fe]/",
        "http://[fe80::1%25eth0]/",
        "http://100.100.100.200/",
        "http://mixed.test/",
    ],
)
def test_metadata_and_link_local_urls_are_refused_even_given_directly(net: Net, url: str) -> None:
    net.dns.update({"metadata.test": ["169.254.169.254"], "mixed.test": [PUBLIC_IP, "fe80::1"]})
    assert "unless in url_allowlist" in refused(url)
    assert net.connects == []


def test_deny_refuses_private_urls_given_directly(server: Server, net: Net) -> None:
    deny = rules(policy=NetPolicy(private_urls="deny"))
    assert "private_urls='deny'" in refused(server.url("/ok"), deny)
    assert net.connects == [] and server.hits == []


def test_the_allowlist_opens_a_denied_or_redirected_target(server: Server, net: Net) -> None:
    net.dns["cdn.test"] = [PUBLIC_IP]
    policy = NetPolicy.from_options("deny", ["127.0.0.0/8"], {})
    _, body = fetch(
        server.url(f"/redirect?to={server.url('/ok')}", host="cdn.test"), rules(policy=policy)
    )
    assert body == b"RESULT"


def test_private_to_private_redirects_follow_private_urls_allow(server: Server) -> None:
    _, body = fetch(server.url(f"/redirect?to={server.url('/ok')}"))
    assert body == b"RESULT"
    assert len(server.hits) == 2


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("ftp://files.test/a.png", "not http or https"),
        ("file:///etc/passwd", "not http or https"),
        ("data:image/png;base64,AAAA", "not http or https"),
        (f"http://user:{SECRET}@files.test/a.png", "credentials"),
        ("http://0177.0.0.1/", "not a valid URL"),
        ("http://1.2.3.4.5/", "not a valid address or host name"),
        ("http:///nohost", "no host"),
        ("http://" + "a." * 127 + "test/", "not a valid host name"),
    ],
)
def test_bad_urls_are_refused_without_connecting(net: Net, url: str, expected: str) -> None:
    message = refused(url)
    assert expected in message and SECRET not in message
    assert net.connects == [] and net.lookups == []


@pytest.mark.parametrize(
    "location",
    ["ftp://files.test/x", "file:///etc/passwd", f"http://u:{SECRET}@127.0.0.1/"],
)
def test_every_hop_is_checked_for_scheme_and_credentials(
    server: Server, net: Net, location: str
) -> None:
    message = refused(server.url(f"/redirect?to={location}"))
    assert SECRET not in message
    assert len(net.connects) == 1


def test_redirects_are_bounded(server: Server) -> None:
    assert "more than 3 redirects" in refused(server.url("/loop"), rules(max_redirects=3))
    assert len(server.hits) == 4


def test_errors_name_the_host_never_the_path_or_query(server: Server, net: Net) -> None:
    net.dns["files.test"] = [PUBLIC_IP]
    message = refused(server.url(f"/status?code=403&token={SECRET}", host="files.test"))
    assert message == "files.test answered HTTP 403"
    net.dns["meta.test"] = ["169.254.169.254"]
    assert SECRET not in refused(f"http://meta.test/x?X-Amz-Signature={SECRET}")


def test_a_refused_connection_is_a_download_error(net: Net) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert "could not connect to 127.0.0.1" in refused(f"http://127.0.0.1:{port}/x")


# --- https: SNI and certificate checks use the URL's name -------------------------------------


def _certificates(tmp: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for files.test signed by it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "genstore test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "files.test")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("files.test")]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = (tmp / "ca.pem", tmp / "cert.pem", tmp / "key.pem")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[Server, ssl.SSLContext]]:
    ca, cert, key = _certificates(tmp_path)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    s = Server(tls=server_context)
    yield s, ssl.create_default_context(cafile=str(ca))
    s.close()


def test_https_verifies_the_certificate_against_the_url_name(
    tls_server: tuple[Server, ssl.SSLContext], net: Net
) -> None:
    server, trust = tls_server
    net.dns["files.test"] = [PUBLIC_IP]
    _, body = fetch(server.url("/host", "files.test", "https"), rules(ssl_context=trust))
    assert body == f"files.test:{server.port}".encode()
    assert server.sni == ["files.test"]
    assert net.connects == [PUBLIC_IP]


def test_https_refuses_a_certificate_for_another_name(
    tls_server: tuple[Server, ssl.SSLContext], net: Net
) -> None:
    server, trust = tls_server
    net.dns["other.test"] = [PUBLIC_IP]
    message = refused(server.url("/ok", "other.test", "https"), rules(ssl_context=trust))
    assert "could not connect to other.test" in message and "certificate" in message.lower()


# --- configuration -------------------------------------------------------------------------


def test_rules_come_from_the_store_options() -> None:
    options = StoreOptions(
        max_result_bytes=123,
        download_deadline=9.0,
        download_timeout=4.0,
        private_urls="deny",
        url_allowlist=("comfy.lan",),
    )
    made = DownloadRules.from_options(options, environ={})
    assert (made.limit, made.deadline, made.idle_timeout) == (123, 9.0, 4.0)
    assert made.policy == NetPolicy("deny", frozenset({"comfy.lan"}), ())
    from_env = DownloadRules.from_options(StoreOptions(), {"GENSTORE_PRIVATE_URLS": "deny"})
    assert from_env.policy.private_urls == "deny"


@pytest.mark.parametrize(
    "location", ["http://[::1", "http://exa mple.com/", "http://0177.0.0.1/", "http://a..b/"]
)
def test_an_invalid_redirect_target_is_refused(server: Server, net: Net, location: str) -> None:
    message = refused(server.url(f"/redirect?to={quote(location, safe='')}"))
    assert "invalid" in message or "not a valid" in message
    assert len(net.connects) == 1


def test_the_connection_guard_fails_loudly_rather_than_connecting(net: Net) -> None:
    # Allowlisting the metadata address lets the download try it: the guard must stop the test
    # with its own error, not be swallowed into a DownloadError.
    net.dns["meta.test"] = ["169.254.169.254"]
    policy = NetPolicy.from_options("allow", ["meta.test"], {})
    with pytest.raises(AssertionError, match=r"tried to connect to 169\.254\.169\.254"):
        fetch("http://meta.test/latest/meta-data/", rules(policy=policy))
