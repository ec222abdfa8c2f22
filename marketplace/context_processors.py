from django.conf import settings


def site(request) -> dict:
    """Give every template the session's job count for the "My jobs" link."""
    return {
        "my_job_count": len(request.session.get("job_ids", []))
        if hasattr(request, "session")
        else 0,
        "dev_wallet_enabled": settings.DEV_WALLET_ENABLED,
    }
