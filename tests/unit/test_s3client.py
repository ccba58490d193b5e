"""opsbot's S3 clients: a lighter data loader that still knows every service the credential providers use."""

from __future__ import annotations

import socket
from pathlib import Path

import botocore.config
import botocore.exceptions
import botocore.loaders
import pytest

from adapters.stores.s3client import loader, s3_client

PATHS = botocore.loaders.Loader().search_paths


def test_the_loader_knows_s3_and_finds_other_services_without_listing_them() -> None:
    data = loader(PATHS)
    assert "ListObjectsV2" in data.load_service_model("s3", "service-2")["operations"]
    assert "AssumeRoleWithWebIdentity" in data.load_service_model("sts", "service-2")["operations"]
    for wrong in ("no-such-service", "..", "s3/../sts", ""):
        with pytest.raises(botocore.exceptions.UnknownServiceError):
            data.load_service_model(wrong, "service-2")


def test_web_identity_credentials_reach_sts(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """EKS (IRSA) credentials: the provider makes an STS client on the S3 client's session. It must get as
    far as asking STS (here a closed port), not stop at "unknown service"."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    token = tmp_path / "token"
    token.write_text("a-web-identity-token")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/opsbot")
    monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(token))
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{closed}")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    client = s3_client(botocore.config.Config(connect_timeout=2, retries={"max_attempts": 1}))
    with pytest.raises(botocore.exceptions.BotoCoreError) as raised:
        client.list_objects_v2(Bucket="backups")
    assert not isinstance(raised.value, botocore.exceptions.UnknownServiceError), raised.value
    assert isinstance(raised.value, botocore.exceptions.EndpointConnectionError), repr(raised.value)
    assert "sts" in str(raised.value).lower() or str(closed) in str(raised.value)
