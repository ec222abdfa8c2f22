"""Per-client limits on writes: who the client is, how often it may write, the 429 answer.

A client is its IP address (behind a proxy, the one the trusted header names) and, once it has
one, its session: either counter over its limit refuses the request, so dropping cookies does
not reset a script's count and hopping addresses with one session does not either. The counts
live in the default cache (Redis in production, shared by every web process) through
django-ratelimit. Only writes count: reads, and the job page's status polling, are never
limited. One decorator for views, one function for anything else (the API's throttles):

    @rate_limit("orders")
    def skill_detail(request, ...): ...

    retry_after = client_limited(request, "disputes")  # None, or seconds to wait

The admin's sign-in lockout (django-axes) answers with the same 429 page, lockout_response().
"""

import functools
import ipaddress
import logging
import math
from datetime import timedelta

from axes.helpers import get_cool_off
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django_ratelimit import UNSAFE
from django_ratelimit.core import get_usage

logger = logging.getLogger(__name__)


def client_ip(request: HttpRequest) -> str:
    """Return the client's IP address: REMOTE_ADDR, or the trusted proxy's header if set.

    A header such as X-Forwarded-For grows by one address per proxy, and everything left of
    what the trusted proxies wrote is the client's to forge; so the address taken is the one
    CLIENT_IP_PROXY_COUNT places from the right. A single-address header (X-Real-IP) is the
    same with a count of 1. Without a configured header no header is trusted at all.
    """
    remote = request.META.get("REMOTE_ADDR", "")
    if not settings.CLIENT_IP_HEADER:
        return remote
    meta_key = "HTTP_" + settings.CLIENT_IP_HEADER.upper().replace("-", "_")
    hops = [hop.strip() for hop in request.META.get(meta_key, "").split(",") if hop.strip()]
    if not hops:
        return remote
    candidate = hops[-min(settings.CLIENT_IP_PROXY_COUNT, len(hops))]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return remote


def _session_key(group: str, request: HttpRequest) -> str:
    return request.session.session_key


def client_limited(request: HttpRequest, scope: str) -> int | None:
    """Count this request against the client's limit for `scope`.

    Return None while the client is within its limit (and for reads, which never count), else
    the seconds until it may write again. The limit is settings.RATE_LIMITS[scope].
    """
    if request.method not in UNSAFE:
        return None
    rate = settings.RATE_LIMITS[scope]
    keys = ["ip"]
    if getattr(request, "session", None) is not None and request.session.session_key:
        keys.append(_session_key)
    waits = []
    for key in keys:
        try:
            usage = get_usage(request, group=scope, key=key, rate=rate, increment=True)
        except Exception:
            # A limit store that is down must not take ordering down with it.
            logger.warning("Rate limit store unavailable; %s not limited", scope, exc_info=True)
            return None
        if usage and usage["should_limit"]:
            waits.append(max(1, usage["time_left"]))
    return max(waits) if waits else None


def rate_limit(scope: str):
    """Refuse a view's writes with a 429 once the client passes settings.RATE_LIMITS[scope]."""

    def decorator(view):
        @functools.wraps(view)
        def limited_view(request, *args, **kwargs):
            retry_after = client_limited(request, scope)
            if retry_after is not None:
                return too_many_requests(request, retry_after)
            return view(request, *args, **kwargs)

        return limited_view

    return decorator


def wants_json(request: HttpRequest) -> bool:
    """Return whether the client prefers JSON to HTML (a browser's */* means HTML)."""
    return request.get_preferred_type(["text/html", "application/json"]) == "application/json"


def wait_text(seconds: int) -> str:
    """Return a wait in words: "40 seconds", "3 minutes", "2 hours" (rounded up)."""
    if seconds < 90:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    if seconds < 90 * 60:
        return f"{math.ceil(seconds / 60)} minutes"
    return f"{math.ceil(seconds / 3600)} hours"


def too_many_requests(
    request: HttpRequest,
    retry_after: int,
    *,
    code: str = "rate_limited",
    title: str = "Too many requests",
    message: str = "",
) -> HttpResponse:
    """Answer 429 with Retry-After: the site's page, or a JSON error for a JSON client."""
    message = message or (
        f"This browser or address sent too many requests. Try again in {wait_text(retry_after)}."
    )
    if wants_json(request):
        response = JsonResponse(
            {"error": {"code": code, "message": message, "retry_after": retry_after}},
            status=429,
        )
    else:
        context = {
            "code": code,
            "title": title,
            "message": message,
            "retry_after": retry_after,
            "retry_at": timezone.now() + timedelta(seconds=retry_after),
        }
        response = render(request, "429.html", context, status=429)
    response["Retry-After"] = str(retry_after)
    add_never_cache_headers(response)
    return response


def lockout_response(request: HttpRequest, original_response=None, credentials=None):
    """Answer a sign-in that django-axes locked out: the 429 page, for the cool-off."""
    retry_after = max(1, int(get_cool_off(request).total_seconds()))
    return too_many_requests(
        request,
        retry_after,
        code="locked_out",
        title="Sign-in locked",
        message=(
            "Too many failed sign-ins for this username from your address. "
            f"Try again in {wait_text(retry_after)}, or ask an operator to unlock it."
        ),
    )
