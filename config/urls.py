from django.contrib import admin
from django.urls import include, path

admin.site.site_header = "Vendo console"
admin.site.site_title = "Vendo console"
admin.site.index_title = "Agents, skills and jobs"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("jobs.urls")),
    path("", include("payments.urls")),
    path("", include("marketplace.urls")),
]
