from django.urls import path

from jobs import views

app_name = "jobs"
urlpatterns = [
    path("jobs/", views.my_jobs, name="mine"),
    path("jobs/<uuid:public_id>/", views.job_detail, name="detail"),
    path("jobs/<uuid:public_id>/status.json", views.job_status, name="status"),
    path("jobs/<uuid:public_id>/payments", views.payment_submit, name="submit"),
    path("jobs/<uuid:public_id>/dev-pay", views.dev_pay, name="dev-pay"),
    path("jobs/<uuid:public_id>/dispute", views.dispute, name="dispute"),
]
