"""Vendo's URLs plus the one-query baseline view; used by bench.settings only."""

from django.http import HttpResponse
from django.urls import include, path

from marketplace.models import Agent


def baseline(request):
    """A minimal Django view: one small ORM query, a short text response."""
    first = Agent.objects.order_by("pk").values_list("pk", flat=True).first()
    return HttpResponse(f"ok {first}", content_type="text/plain")


urlpatterns = [
    path("bench/baseline/", baseline, name="bench-baseline"),
    path("", include("config.urls")),
]
