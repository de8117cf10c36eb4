"""Where a rater's browser fetches each video: Label Studio's local-files route or a presigned URL.

- A local path (or ``file://``) becomes ``/data/local-files/?d=<path under the document root>``,
  served by Label Studio itself (``LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED``) for folders the
  project has registered as local storage (:mod:`ultravqa_ray.labels.studio` registers them).
- ``s3://bucket/key`` becomes an AWS Signature V4 presigned GET URL (query-string authentication),
  signed here with the usual environment credentials, so the object store never has to be public and
  Label Studio needs no access to it. ``s3_endpoint_override`` (moto, MinIO) gives path-style URLs.
- ``http(s)://`` URLs are passed through.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
from pathlib import Path
from urllib.parse import quote, urlencode

LOCAL_FILES_ROUTE = "/data/local-files/?"


def local_files_url(path: str | Path, root: str | Path) -> str:
    """The Label Studio local-files URL of ``path``, which must lie under ``root``."""
    path, root = Path(path).resolve(), Path(root).resolve()
    try:
        rel = path.relative_to(root)
    except ValueError:
        raise ValueError(f"{path} is not under the local-files root {root}") from None
    return LOCAL_FILES_ROUTE + urlencode({"d": rel.as_posix()})


def presign_s3(
    uri: str,
    *,
    expires_s: int,
    endpoint_override: str | None = None,
    region: str | None = None,
    access_key: str | None = None,
    secret_key: str | None = None,
    session_token: str | None = None,
    now: dt.datetime | None = None,
) -> str:
    """A presigned GET URL for ``s3://bucket/key`` (credentials default to ``AWS_*`` variables)."""
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        raise ValueError(f"{uri!r} is not an s3://bucket/key URI")
    bucket, key = uri[5:].split("/", 1)
    access_key = access_key or os.environ.get("AWS_ACCESS_KEY_ID")
    secret_key = secret_key or os.environ.get("AWS_SECRET_ACCESS_KEY")
    session_token = session_token or os.environ.get("AWS_SESSION_TOKEN")
    region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    if not access_key or not secret_key:
        raise ValueError(f"cannot presign {uri}: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set")
    if endpoint_override:
        base = endpoint_override if "://" in endpoint_override else f"http://{endpoint_override}"
        scheme, host = base.split("://", 1)
        host, path = host.rstrip("/"), f"/{bucket}/{key}"
    else:
        scheme, host, path = "https", f"{bucket}.s3.{region}.amazonaws.com", f"/{key}"
    now = now or dt.datetime.now(dt.UTC)
    stamp, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    scope = f"{day}/{region}/s3/aws4_request"
    params = {
        "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
        "X-Amz-Credential": f"{access_key}/{scope}",
        "X-Amz-Date": stamp,
        "X-Amz-Expires": str(expires_s),
        "X-Amz-SignedHeaders": "host",
    }
    if session_token:
        params["X-Amz-Security-Token"] = session_token
    query = "&".join(f"{quote(k, safe='~')}={quote(v, safe='~')}" for k, v in sorted(params.items()))
    canonical_path = quote(path, safe="/~")
    request = f"GET\n{canonical_path}\n{query}\nhost:{host}\n\nhost\nUNSIGNED-PAYLOAD"
    to_sign = f"AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{hashlib.sha256(request.encode()).hexdigest()}"
    signing = f"AWS4{secret_key}".encode()
    for part in (day, region, "s3", "aws4_request"):
        signing = hmac.new(signing, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(signing, to_sign.encode(), hashlib.sha256).hexdigest()
    return f"{scheme}://{host}{canonical_path}?{query}&X-Amz-Signature={signature}"
