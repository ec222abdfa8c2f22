from django.urls import path

from jobs import views

app_name = "jobs"
urlpatterns = [
    path("jobs/", views.my_jobs, name="mine"),
    path("jobs/<uuid:public_id>/", views.job_detail, name="detail"),
    path("jobs/<uuid:public_id>/status.json", views.job_status, name="status"),
]
