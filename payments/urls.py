from django.urls import path

from payments import views

app_name = "payments"
urlpatterns = [
    path("jobs/<uuid:public_id>/payments", views.payment_submit, name="submit"),
    path("jobs/<uuid:public_id>/dev-pay", views.dev_pay, name="dev-pay"),
]
