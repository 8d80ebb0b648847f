"""Bearer tokens: Clerk session tokens (networkless key, Backend API JWKS), any issuer by JWKS or
key, claim checks, and a JWKS fetched off the event loop, bounded whatever ``kid``s are sent."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import genstore
import jwt
import pytest
from genstore.exceptions import ConfigurationError
from genstore_asgi.service import (
    Authenticator,
    AuthFailed,
    JwksKeys,
    JWTAuthenticator,
    Verifier,
    create_app,
)
from genstore_asgi.service._clerk import clerk_frontend_api
from genstore_asgi.service._keys import KeysUnavailable, pem_key
from helpers import free_port
from hypothesis import given
from hypothesis import strategies as st

from .jwks_server import AZP, CLERK_HOST, CLERK_ISSUER, JwksServer, SigningKey
from .service_harness import serve

SECRET = "auth-secret-" + "x" * 32
SK = "sk_test_" + "k" * 40
PK = "pk_test_" + base64.b64encode(f"{CLERK_HOST}$".encode()).decode().rstrip("=")


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return SigningKey()


@pytest.fixture
def jwks(key: SigningKey) -> Iterator[JwksServer]:
    server = JwksServer(key, require=f"Bearer {SK}")
    yield server
    server.close()


def bearer(token: str) -> str:
    return f"Bearer {token}"


def user(auth: Authenticator, token: str) -> str:
    return asyncio.run(auth.user_id(bearer(token)))


def reason(auth: Authenticator, token: str) -> str:
    with pytest.raises(AuthFailed) as info:
        user(auth, token)
    return str(info.value)


def clerk_env(jwks: JwksServer, **extra: str) -> dict[str, str]:
    return {"CLERK_SECRET_KEY": SK, "CLERK_API_URL": jwks.url, "CLERK_PUBLISHABLE_KEY": PK, **extra}


def test_clerk_jwt_key_verifies_without_network(key: SigningKey) -> None:
    auth = Authenticator.from_env({"CLERK_JWT_KEY": key.public_pem()})
    assert user(auth, key.token("user_a")) == "user_a"
    assert "invalid" in reason(auth, SigningKey(key.kid).token())  # same kid, another key


def test_clerk_jwt_key_on_one_line_as_dashboards_copy_it(key: SigningKey) -> None:
    one_line = key.public_pem().replace("\n", "")
    auth = Authenticator.from_env({"CLERK_JWT_KEY": one_line})
    assert user(auth, key.token("user_a")) == "user_a"


def test_clerk_secret_key_fetches_the_backend_api_jwks(key: SigningKey, jwks: JwksServer) -> None:
    auth = Authenticator.from_env(clerk_env(jwks))
    assert user(auth, key.token("user_b")) == "user_b"
    assert jwks.fetches == 1
    assert user(auth, key.token("user_c")) == "user_c"
    assert jwks.fetches == 1  # cached


def test_the_publishable_key_names_the_issuer_every_token_must_carry(
    key: SigningKey, jwks: JwksServer
) -> None:
    auth = Authenticator.from_env(clerk_env(jwks))
    assert "invalid" in reason(auth, key.token(iss="https://clerk.other.test"))
    assert "invalid" in reason(auth, key.token(iss=None))


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        (lambda now: {"exp": now - 60}, "expired"),
        (lambda now: {"exp": None}, "exp"),
        (lambda now: {"nbf": now + 600}, "not yet valid"),
        (lambda now: {"sub": None}, "sub"),
        (lambda now: {"azp": "https://evil.test"}, "azp"),
        (lambda now: {"sts": "pending"}, "pending"),
    ],
)
def test_claims_are_checked(
    key: SigningKey, claims: Callable[[int], dict[str, Any]], expected: str
) -> None:
    # Times are taken when the test runs, not when it is collected: a long suite must not
    # reach a "not yet valid" token's start.
    env = {"CLERK_JWT_KEY": key.public_pem(), "CLERK_AUTHORIZED_PARTIES": f"{AZP}, https://x"}
    assert expected in reason(Authenticator.from_env(env), key.token(**claims(int(time.time()))))


def test_azp_is_accepted_when_listed_or_absent(key: SigningKey) -> None:
    env = {"CLERK_JWT_KEY": key.public_pem(), "CLERK_AUTHORIZED_PARTIES": f"https://x,{AZP}"}
    auth = Authenticator.from_env(env)
    assert user(auth, key.token("u1")) == "u1"
    assert user(auth, key.token("u2", azp=None)) == "u2"


def test_any_issuer_by_jwks_url_with_audience(key: SigningKey) -> None:
    server = JwksServer(key)
    try:
        auth = JWTAuthenticator(jwks_url=server.url, issuer=CLERK_ISSUER, audience="genstore")
        assert user(auth, key.token("u1", aud="genstore")) == "u1"
        assert "invalid" in reason(auth, key.token("u1", aud="other"))
        assert "invalid" in reason(auth, key.token("u1"))  # no aud at all
    finally:
        server.close()


def test_an_hs256_token_is_refused_by_an_rs256_only_configuration(key: SigningKey) -> None:
    auth = Authenticator.from_env({"CLERK_JWT_KEY": key.public_pem()})
    forged = jwt.encode({"sub": "u", "exp": int(time.time()) + 60}, SECRET, algorithm="HS256")
    assert "algorithm" in reason(auth, forged)


def test_no_configuration_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="CLERK_JWT_KEY"):
        Authenticator.from_env({})


def test_junk_kids_cannot_force_refetches(key: SigningKey, jwks: JwksServer) -> None:
    auth = Authenticator.from_env(clerk_env(jwks))

    async def flood() -> list[str]:
        tokens = [SigningKey(f"ins_junk{i}").token() for i in range(3)] * 10
        results = await asyncio.gather(
            *(auth.user_id(bearer(t)) for t in tokens), return_exceptions=True
        )
        return [str(r) for r in results]

    results = asyncio.run(flood())
    assert all("no signing key" in r for r in results)
    assert jwks.fetches == 1  # 30 unknown kids, one fetch in the interval


def test_a_new_kid_is_fetched_once_the_interval_has_passed(key: SigningKey) -> None:
    now = [0.0]
    rotated = SigningKey()
    server = JwksServer(key)
    try:
        keys = JwksKeys(server.url, refetch_interval=60.0, clock=lambda: now[0])
        auth = Authenticator([Verifier(keys)])
        assert user(auth, key.token("u1")) == "u1"
        server.keys.append(rotated)
        assert "no signing key" in reason(auth, rotated.token("u2"))  # within the interval
        now[0] = 61.0
        assert user(auth, rotated.token("u2")) == "u2"
        assert server.fetches == 2
    finally:
        server.close()


def test_a_jwks_server_down_answers_503_with_retry_after(tmp_path: Path, key: SigningKey) -> None:
    jwks_url = f"http://127.0.0.1:{free_port()}/jwks"  # nothing listens there
    with genstore.open_store(tmp_path) as store:
        app = create_app(store, auth=JWTAuthenticator(jwks_url=jwks_url))
        with serve(app, free_port()) as http:
            r = http.get("/api/images", headers={"Authorization": bearer(key.token())})
    assert r.status_code == 503 and r.headers["retry-after"]
    assert "127.0.0.1" not in r.text


def test_keys_unavailable_is_raised_to_the_caller(key: SigningKey) -> None:
    keys = JwksKeys(f"http://127.0.0.1:{free_port()}/jwks")
    with pytest.raises(KeysUnavailable):
        user(Authenticator([Verifier(keys)]), key.token())


def test_a_slow_jwks_does_not_stall_other_requests(tmp_path: Path, key: SigningKey) -> None:
    server = JwksServer(key)
    server.hold()
    hs_token = jwt.encode({"sub": "u_hs", "exp": int(time.time()) + 60}, SECRET, algorithm="HS256")
    try:
        with genstore.open_store(tmp_path) as store:
            auth = JWTAuthenticator(jwks_url=server.url, secret=SECRET)
            with (
                serve(create_app(store, auth=auth), free_port()) as http,
                ThreadPoolExecutor(1) as pool,
            ):
                slow = pool.submit(
                    http.get, "/api/images", headers={"Authorization": bearer(key.token())}
                )
                assert server.fetching.wait(10), "the JWKS was never fetched"
                started = time.monotonic()
                assert http.get("/api/health").status_code == 200
                fast = http.get("/api/images", headers={"Authorization": bearer(hs_token)})
                assert fast.status_code == 200
                assert time.monotonic() - started < 2.0
                assert not slow.done()  # still waiting for its key, and nothing else was
                server.release()
                assert slow.result(timeout=10).status_code == 200
    finally:
        server.close()


@given(st.binary(min_size=1, max_size=300))
def test_pem_key_rewraps_any_body_into_64_column_pem(body: bytes) -> None:
    b64 = base64.b64encode(body).decode()
    single = f"-----BEGIN PUBLIC KEY-----{b64}-----END PUBLIC KEY-----"
    lines = pem_key(single).splitlines()
    assert lines[0] == "-----BEGIN PUBLIC KEY-----" and lines[-1] == "-----END PUBLIC KEY-----"
    assert "".join(lines[1:-1]) == b64 and all(len(x) <= 64 for x in lines[1:-1])
    assert pem_key(pem_key(single)) == pem_key(single)


@given(st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?(\.[a-z0-9]{1,10}){1,3}", fullmatch=True))
def test_publishable_keys_decode_to_their_frontend_api(host: str) -> None:
    encoded = base64.b64encode(f"{host}$".encode()).decode()
    assert clerk_frontend_api(f"pk_live_{encoded}") == host
    assert clerk_frontend_api(f"pk_test_{encoded.rstrip('=')}") == host


@pytest.mark.parametrize("bad", ["", "sk_test_abc", "pk_test_!!!", "pk_test_" + "aGVsbG8="])
def test_malformed_publishable_keys_are_refused(bad: str) -> None:
    with pytest.raises(ConfigurationError):
        clerk_frontend_api(bad)


def test_dev_secret_is_accepted_alongside_clerk(key: SigningKey) -> None:
    env = {"CLERK_JWT_KEY": key.public_pem(), "GENSTORE_DEV_SECRET": SECRET}
    auth = Authenticator.from_env(env)
    dev = jwt.encode({"sub": "user_dev", "exp": int(time.time()) + 60}, SECRET, algorithm="HS256")
    assert user(auth, dev) == "user_dev" and user(auth, key.token("u1")) == "u1"


def test_concurrent_requests_for_an_unknown_key_share_one_fetch(key: SigningKey) -> None:
    server = JwksServer(key)
    try:
        auth = JWTAuthenticator(jwks_url=server.url)

        async def many() -> list[str]:
            return await asyncio.gather(
                *(auth.user_id(bearer(key.token(f"u{i}"))) for i in range(20))
            )

        assert asyncio.run(many()) == [f"u{i}" for i in range(20)]
        assert server.fetches == 1
    finally:
        server.close()
