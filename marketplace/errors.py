"""The errors a user can cause. Views show their message; the API returns it with its code."""


class ApplicationError(Exception):
    """An error with a message a person can read and a stable code for machines."""

    code = "invalid"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code


class SkillNotReady(ApplicationError):
    """A skill that cannot be published (yet): the message says what it needs."""

    code = "skill_not_ready"
