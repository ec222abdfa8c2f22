"""Vendo's admin site: Django's, with "view on site" scoped like every other admin path."""

from django.contrib import admin
from django.contrib.contenttypes.models import ContentType
from django.contrib.contenttypes.views import shortcut
from django.http import Http404
from django.urls import path


class VendoAdminSite(admin.AdminSite):
    site_header = "Vendo console"
    site_title = "Vendo console"
    index_title = "Agents, skills and jobs"

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
