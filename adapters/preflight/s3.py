"""S3 credentials: found by boto3 (the usual AWS variables), and accepted by a bucket."""

from __future__ import annotations

import asyncio
from typing import Any

import boto3
import botocore.config
import botocore.exceptions
from pydantic import BaseModel

from adapters.errors import AdapterError, AdapterTimeout, EngineUnavailable


class S3Access(BaseModel):
    """Credentials boto3 found (the access key shown by its last four characters) and the bucket's answer."""

    source: str
    key_hint: str
    bucket: str


def _check(bucket: str, timeout: float) -> S3Access:
    session = boto3.session.Session()
    credentials = session.get_credentials()
    if credentials is None:
        raise AdapterError("no S3 credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or a profile)")
    key = credentials.access_key or ""
    config = botocore.config.Config(connect_timeout=timeout, read_timeout=timeout, retries={"max_attempts": 1})
    client: Any = session.client("s3", config=config)
    try:
        client.head_bucket(Bucket=bucket)
    except botocore.exceptions.ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            raise AdapterError(f"bucket {bucket} refuses the credentials (…{key[-4:]}): {code}") from exc
        if code in ("404", "NoSuchBucket", "NotFound"):
            raise AdapterError(f"bucket {bucket} does not exist") from exc
        raise AdapterError(f"bucket {bucket}: {code}") from exc
    except (botocore.exceptions.ConnectTimeoutError, botocore.exceptions.ReadTimeoutError) as exc:
        raise AdapterTimeout(f"the S3 endpoint did not answer within {timeout:g}s") from exc
    except (botocore.exceptions.BotoCoreError, OSError) as exc:
        raise EngineUnavailable(f"the S3 endpoint does not answer ({exc})") from exc
    finally:
        client.close()
    return S3Access(source=str(getattr(credentials, "method", "") or "?"), key_hint=key[-4:], bucket=bucket)


async def s3_access(bucket: str, *, timeout: float) -> S3Access:
    """Whether boto3 finds credentials and ``bucket`` accepts them (``HeadBucket``), in a worker thread."""
    return await asyncio.to_thread(_check, bucket, timeout)
