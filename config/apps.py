from django.contrib.admin.apps import AdminConfig


class VendoAdminConfig(AdminConfig):
    default_site = "config.admin_site.VendoAdminSite"
