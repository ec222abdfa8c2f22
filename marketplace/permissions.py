"""Who is a provider, and what the Providers group may do in the admin."""

from django.contrib.auth.models import Group, Permission

PROVIDERS_GROUP = "Providers"
# Providers manage their agents and skills, and read their jobs and the jobs' timelines.
PROVIDER_PERMISSIONS = [
    ("marketplace", "agent", ["add", "change", "delete", "view"]),
    ("marketplace", "skill", ["add", "change", "delete", "view"]),
    ("jobs", "job", ["view"]),
    ("jobs", "jobevent", ["view"]),
]


def is_provider(user) -> bool:
    """Return whether the admin must scope `user` to its own rows (operators are superusers)."""
    if not user.is_authenticated or user.is_superuser:
        return False
    return any(group.name == PROVIDERS_GROUP for group in user.groups.all())


def provider_group_sync(**kwargs) -> Group:
    """Create the Providers group and give it exactly its permissions (run after migrate)."""
    group, _ = Group.objects.get_or_create(name=PROVIDERS_GROUP)
    codenames = [
        (app, f"{action}_{model}")
        for app, model, actions in PROVIDER_PERMISSIONS
        for action in actions
    ]
    permissions = [
        Permission.objects.get(content_type__app_label=app, codename=codename)
        for app, codename in codenames
    ]
    group.permissions.set(permissions)
    return group
