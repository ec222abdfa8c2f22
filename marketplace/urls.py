from django.urls import path

from marketplace import views

app_name = "marketplace"
urlpatterns = [
    path("", views.catalog, name="catalog"),
    path("agents/<slug:agent_slug>/", views.agent_detail, name="agent"),
    path("agents/<slug:agent_slug>/<slug:skill_slug>/", views.skill_detail, name="skill"),
]
