"""The Redis store behind a password and behind TLS, on a redis-server of the test's own: the right
credentials publish and read, the wrong ones are a StoreUnavailableError (the service degrades on
it), never a crash or a silent success."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from feature_store.base import StoreUnavailableError
from feature_store.publish import publish_version
from feature_store.redis_store import RedisStore
from feature_store.settings import StoreSettings
from tests.app.live_server import free_port
from tests.builders import train_versions
from tests.private_redis import PrivateRedis, private_redis

PASSWORD = "correct-horse-battery"


@pytest.fixture(scope="module")
def version(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_versions(tmp_path_factory.mktemp("auth"), users=200)[0]


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made with the openssl command line."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (needed to make a test certificate)")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture(scope="module")
def tls_redis(certificate: tuple[Path, Path]) -> Iterator[PrivateRedis]:
    cert, key = certificate
    port = free_port()
    args = ["--port", "0", "--tls-port", str(port), "--tls-cert-file", str(cert), "--tls-key-file", str(key)]
    args += ["--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no", "--requirepass", PASSWORD]
    url = f"rediss://:{PASSWORD}@127.0.0.1:{port}/0"
    try:
        with private_redis(args, port=port, url=url, ssl_ca_certs=str(cert)) as server:
            yield server
    except RuntimeError as exc:  # a redis-server built without TLS refuses --tls-port
        pytest.skip(f"this redis-server does not support TLS: {exc}")


async def _publish_and_read(settings: StoreSettings, version: Path) -> tuple[str | None, int]:
    store = RedisStore.from_settings(settings, bulk=True)
    try:
        await publish_version(version, store)
        active = await store.active_version()
        assert active is not None
        profile = await store.get_profile(active, "u000001")
        return active, profile.count
    finally:
        await store.close()


async def _ping(settings: StoreSettings) -> None:
    store = RedisStore.from_settings(settings)
    try:
        await store.ping()
    finally:
        await store.close()


async def test_a_password_protected_redis_publishes_and_serves_with_the_password_in_the_url(
    version: Path,
) -> None:
    with private_redis(["--requirepass", PASSWORD], url=None, password=PASSWORD) as server:
        url = f"redis://:{PASSWORD}@127.0.0.1:{server.port}/0"
        active, count = await _publish_and_read(StoreSettings(redis_url=url), version)
        assert active == version.name and count > 0

        wrong = StoreSettings(redis_url=f"redis://:nope@127.0.0.1:{server.port}/0")
        with pytest.raises(StoreUnavailableError, match="ping"):
            await _ping(wrong)
        with pytest.raises(StoreUnavailableError):
            await _ping(StoreSettings(redis_url=f"redis://127.0.0.1:{server.port}/0"))


async def test_tls_with_the_ca_file_publishes_and_serves(
    tls_redis: PrivateRedis, certificate: tuple[Path, Path], version: Path
) -> None:
    settings = StoreSettings(redis_url=tls_redis.url, redis_tls_ca_file=certificate[0])
    active, count = await _publish_and_read(settings, version)
    assert active == version.name and count > 0


async def test_tls_without_trusting_the_server_certificate_is_unavailable_not_a_crash(
    tls_redis: PrivateRedis,
) -> None:
    with pytest.raises(StoreUnavailableError):
        await _ping(StoreSettings(redis_url=tls_redis.url))


def test_certificate_files_with_a_plain_redis_url_are_refused_with_the_fix() -> None:
    settings = StoreSettings(redis_url="redis://127.0.0.1:6379/0", redis_tls_ca_file=Path("ca.pem"))
    with pytest.raises(ValueError, match="rediss://"):
        RedisStore.from_settings(settings)
