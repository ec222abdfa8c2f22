from django.contrib import admin
from django.shortcuts import redirect
from django.templatetags.static import static
from django.urls import include, path

from jobs import views as job_views
from marketplace import urls as marketplace_urls


def favicon(request):
    # Browsers ask for /favicon.ico on pages that link none (the admin's).
    return redirect(static("favicon.svg"))


# A skill's page is the catalog's, but ordering from it is the jobs app's: the route is wired
# here so that marketplace, at the bottom of the layers, never imports jobs.
catalog = marketplace_urls.urlpatterns + [
    path("agents/<slug:agent_slug>/<slug:skill_slug>/", job_views.skill_detail, name="skill"),
]

urlpatterns = [
    path("favicon.ico", favicon),
    path("admin/", admin.site.urls),
    path("", include("jobs.urls")),
    path("", include((catalog, "marketplace"))),
]
