"""The media bucket's settings (issue 27): the standard AWS_* variables every S3 tool honours, the
BOOTHGATE_MEDIA_* ones winning over them, and the secret kept out of reprs, logs and /health."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from boothgate import redaction
from boothgate.settings import Settings, settings_table
from boothgate.storage.objects import BucketAddress


def test_aws_variables_are_honoured_and_ours_win(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BOOTHGATE_MEDIA_URL", "s3://photos/event")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:3900")
    monkeypatch.setenv("AWS_REGION", "garage")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "GKaws")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret-value")
    settings = Settings(data_dir=tmp_path)
    assert (settings.media_endpoint_url, settings.media_region, settings.media_access_key_id) == (
        "http://127.0.0.1:3900", "garage", "GKaws",
    )  # fmt: skip
    assert settings.media_secret_access_key is not None
    assert settings.media_secret_access_key.get_secret_value() == "aws-secret-value"
    assert "aws-secret-value" not in repr(settings)
    monkeypatch.setenv("BOOTHGATE_MEDIA_ENDPOINT_URL", "http://127.0.0.1:8333")
    monkeypatch.setenv("BOOTHGATE_MEDIA_SECRET_ACCESS_KEY", "ours")
    ours = Settings(data_dir=tmp_path)
    assert ours.media_endpoint_url == "http://127.0.0.1:8333"
    assert ours.media_secret_access_key is not None and ours.media_secret_access_key.get_secret_value() == "ours"


def test_the_bucket_secret_is_redacted_from_logs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret-in-a-log-line")
    redaction.protect_settings(Settings(data_dir=tmp_path))
    args = ("aws-secret-in-a-log-line",)
    record = logging.LogRecord("boothgate", logging.WARNING, __file__, 1, "bucket said %s", args, None)
    redaction.REDACTOR.filter(record)
    assert "aws-secret-in-a-log-line" not in record.getMessage() and "bucket said" in record.getMessage()


def test_media_url_shape() -> None:
    assert BucketAddress.parse("s3://bucket/some/prefix/") == BucketAddress("bucket", "some/prefix")
    assert BucketAddress.parse("s3://bucket") == BucketAddress("bucket", "")
    for wrong in ("http://bucket/x", "s3:///x", "bucket/x"):
        with pytest.raises(ValueError):
            BucketAddress.parse(wrong)
    table = settings_table()
    assert "BOOTHGATE_MEDIA_URL" in table and "AWS_SECRET_ACCESS_KEY" in table
