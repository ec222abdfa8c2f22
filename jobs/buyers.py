"""How a job remembers the browser that ordered it, without the browser's session key.

Each browser gets a random token of its own, kept in its session. A job stores only a keyed
hash of that token: nothing stored on the job, shown in the admin or logged can be replayed as
a cookie, and the hash alone leads to no session.
"""

import secrets

from django.utils.crypto import salted_hmac

SESSION_TOKEN = "buyer_token"
_SALT = "vendo.jobs.buyer_browser"
_ADDRESS_SALT = "vendo.jobs.buyer_address"


def browser_token(session, *, create: bool = False) -> str:
    """Return this browser's token ("" if it has none), making one when `create` is set."""
    token = session.get(SESSION_TOKEN, "")
    if not token and create:
        token = secrets.token_urlsafe(32)
        session[SESSION_TOKEN] = token
    return token


def browser_hash(token: str) -> str:
    """Return what a job stores for the browser holding `token` ("" for no token)."""
    if not token:
        return ""
    return salted_hmac(_SALT, token, algorithm="sha256").hexdigest()


def address_hash(address: str) -> str:
    """Return what a job stores for the client's network address (a keyed hash, never the
    address itself), so one client's open orders can be counted."""
    if not address:
        return ""
    return salted_hmac(_ADDRESS_SALT, address, algorithm="sha256").hexdigest()
