from django.apps import AppConfig
from django.db.models.signals import post_migrate


class MarketplaceConfig(AppConfig):
    name = "marketplace"

    def ready(self) -> None:
        post_migrate.connect(_sync_provider_group, dispatch_uid="provider_group_sync")


def _sync_provider_group(sender, **kwargs) -> None:
    # payments migrates last, so by its turn every permission the group names exists.
    if sender.name == "payments":
        from marketplace.permissions import provider_group_sync

        provider_group_sync()
