from marketplace.errors import ApplicationError


class InvalidTransition(ApplicationError):
    code = "invalid_transition"


class OrderError(ApplicationError):
    code = "invalid_order"


class SkillTestRefused(ApplicationError):
    """A test run that cannot start: the daily limit, or a skill whose settings are refused."""

    code = "test_run_refused"
