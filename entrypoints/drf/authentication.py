"""Token sign-in: tokens expire, and an address that keeps failing to sign in is throttled.

The admin's login form is throttled by django-axes (settings, AXES_*); this is
the API's side. While an address is throttled, every token it sends is refused
without being looked up, the right one too: a guesser learns nothing, and the
wait (Retry-After) is bounded by TECHBANK_FAILED_SIGN_IN_RATE's period.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from rest_framework.authentication import TokenAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed, Throttled
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle

logger = logging.getLogger(__name__)


def client_address(request) -> str:
    """The client's address: REMOTE_ADDR, or the proxy's X-Forwarded-For entry if we sit behind
    one we trust (DRF's NUM_PROXIES); a forwarded address a client made up is never believed."""
    return BaseThrottle().get_ident(request)


class FailedSignInThrottle(SimpleRateThrottle):
    """Failed token sign-ins per client address, at most TECHBANK_FAILED_SIGN_IN_RATE (e.g. "10/min")."""

    scope = "failed_sign_in"

    def get_rate(self) -> str:
        return settings.TECHBANK_FAILED_SIGN_IN_RATE  # read each time: DRF's own rates table is fixed at import

    def get_cache_key(self, request, view=None) -> str:
        return self.cache_format % {"scope": self.scope, "ident": client_address(request)}

    def is_throttled(self, request) -> bool:
        self.key = self.get_cache_key(request)
        self.now = self.timer()
        try:
            history = self.cache.get(self.key, [])
        except Exception as error:  # noqa: BLE001 - the cache (Redis) is down: sign-ins go on, unthrottled, rather than all fail
            logger.warning("failed sign-ins cannot be counted: %r", error)
            history = []
        self.history = [moment for moment in history if moment > self.now - self.duration]
        return len(self.history) >= self.num_requests

    def record_failure(self) -> None:
        self.history.insert(0, self.now)
        try:
            self.cache.set(self.key, self.history, self.duration)
        except Exception as error:  # noqa: BLE001 - the cache is down: as above
            logger.warning("a failed sign-in cannot be counted: %r", error)


def token_has_expired(token) -> bool:
    return token.created < timezone.now() - timedelta(hours=settings.TECHBANK_TOKEN_TTL_HOURS)


class ExpiringTokenAuthentication(TokenAuthentication):
    """DRF token authentication whose tokens last TECHBANK_TOKEN_TTL_HOURS, and whose failures are throttled."""

    def authenticate(self, request):
        offered = get_authorization_header(request).split()
        if not offered or offered[0].lower() != self.keyword.lower().encode():
            return None  # no token offered: nothing to count
        throttle = FailedSignInThrottle()
        if throttle.is_throttled(request):
            raise Throttled(
                wait=throttle.wait(),
                detail="Too many failed sign-ins from your address; wait before trying again.",
            )
        try:
            return super().authenticate(request)
        except AuthenticationFailed:
            throttle.record_failure()
            raise

    def authenticate_credentials(self, key):
        user, token = super().authenticate_credentials(key)
        if token_has_expired(token):
            raise AuthenticationFailed(
                f"This token has expired (tokens last {settings.TECHBANK_TOKEN_TTL_HOURS:g} hours); "
                "ask an administrator for a new one."
            )
        return user, token
