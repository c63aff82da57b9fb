"""The praw client the Reddit connector and its re-check share, and what prawcore's errors mean."""

from __future__ import annotations

import praw
import prawcore

from overheard.errors import ConfigError, TransientError
from overheard.settings import RedditSettings

from .live import CredentialsRejected, redact_secrets


def reddit_client(settings: RedditSettings) -> praw.Reddit:
    """An application-only client; the id and secret masked in praw's own debug log."""
    if settings.client_id is None or settings.client_secret is None:
        raise ConfigError(
            "the Reddit connector needs OVERHEARD_REDDIT__CLIENT_ID and "
            "OVERHEARD_REDDIT__CLIENT_SECRET"
        )
    client_id = settings.client_id.get_secret_value()
    secret = settings.client_secret.get_secret_value()
    redact_secrets(["prawcore", "praw"], [client_id, secret])
    return praw.Reddit(
        client_id=client_id,
        client_secret=secret,
        user_agent=settings.user_agent,
        check_for_updates=False,
        check_for_async=False,
    )


def failure(exc: prawcore.PrawcoreException, target: str) -> Exception:
    """What a prawcore error means here: refused credentials, a wrong subreddit, or a pause."""
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if isinstance(exc, prawcore.OAuthException) or status == 401:
        return CredentialsRejected(
            "Reddit refused the app's credentials (401): check OVERHEARD_REDDIT__CLIENT_ID "
            "and OVERHEARD_REDDIT__CLIENT_SECRET; the Reddit connector stopped without retrying."
        )
    if status in (403, 404) or isinstance(exc, prawcore.Redirect):
        return ConfigError(f"{target} is private, banned or does not exist ({status})")
    return TransientError(f"Reddit request failed: {type(exc).__name__} {status or ''}".strip())
