from django.urls import path

from marketplace import views

# Included by config/urls.py under the "marketplace" namespace, with the skill page (whose
# order form belongs to jobs) added there.
urlpatterns = [
    path("", views.catalog, name="catalog"),
    path("agents/<slug:agent_slug>/", views.agent_detail, name="agent"),
]
