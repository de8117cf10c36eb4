"""The HTTP route's bearer token, shared by the route (``ScoreAPI``) and the bridge's HTTP client."""

from __future__ import annotations

import os


def bearer_token(token_env: str | None) -> str | None:
    """The token: the value of ``$token_env`` (None when ``token_env`` is unset: no token).

    A named variable that is empty or unset is an error at start, never a silently open route."""
    if not token_env:
        return None
    token = os.environ.get(token_env, "").strip()
    if not token:
        raise ValueError(f"http_token_env={token_env!r} but ${token_env} is empty or unset")
    return token
