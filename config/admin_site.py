"""Vendo's admin site, the console: Django's, with homes that answer a provider's and an
operator's first questions, and "view on site" scoped like every other admin path."""

from datetime import timedelta
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import admin
from django.contrib.contenttypes.models import ContentType
from django.contrib.contenttypes.views import shortcut
from django.http import Http404
from django.urls import path
from django.utils import timezone


def _since(start, end) -> str:
    """The query string of the payment list's "paid at" filter for [start, end), confirmed."""
    return urlencode(
        {"block_time__gte": str(start), "block_time__lt": str(end), "status__exact": "confirmed"}
    )


class VendoAdminSite(admin.AdminSite):
    site_header = "Vendo console"
    site_title = "Vendo console"
    index_title = "Home"
    index_template = "admin/vendo_index.html"

    def index(self, request, extra_context=None):
        """The home: a provider's agents at a glance, or the operator's overview of the
        money and the jobs; the list of models follows."""
        from jobs.selectors import jobs_overview, provider_home
        from jobs.services import start_of_day
        from marketplace.permissions import is_provider
        from marketplace.selectors import alerts_open
        from payments.selectors import money_overview

        context = dict(extra_context or {})
        if is_provider(request.user):
            context["provider_home"] = provider_home(user=request.user)
        elif request.user.is_superuser:
            now = timezone.now()
            today = start_of_day(now)
            week, tomorrow = today - timedelta(days=7), today + timedelta(days=1)
            context["jobs_overview"] = jobs_overview(now=now)
            context["money"] = money_overview(today=today, week=week)
            context["alerts"] = alerts_open()
            context["ledger_check_interval"] = settings.LEDGER_CHECK_INTERVAL
            # The payment list's own "paid at" filter (Today, Past 7 days), confirmed only.
            context["links"] = {
                "payments_today": _since(today, tomorrow),
                "payments_week": _since(week, tomorrow),
            }
        return super().index(request, extra_context=context)

    def get_urls(self):
        # Django's own /admin/r/<ct>/<id>/ redirects any staff user to any object's page,
        # bypassing each ModelAdmin's queryset; this one asks the ModelAdmin first.
        own = [
            path(
                "r/<int:content_type_id>/<path:object_id>/",
                self.admin_view(self.view_on_site),
                name="view_on_site",
            )
        ]
        return own + [
            url for url in super().get_urls() if getattr(url, "name", None) != "view_on_site"
        ]

    def view_on_site(self, request, content_type_id, object_id):
        try:
            model = ContentType.objects.get_for_id(content_type_id).model_class()
        except ContentType.DoesNotExist:
            raise Http404("No such object.") from None
        model_admin = self._registry.get(model)
        if model_admin is None:
            raise Http404("No such object.")
        obj = model_admin.get_queryset(request).filter(pk=object_id).first()
        if obj is None or not model_admin.has_view_permission(request, obj):
            raise Http404("No such object.")
        return shortcut(request, content_type_id, object_id)
