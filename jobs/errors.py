from marketplace.errors import ApplicationError


class InvalidTransition(ApplicationError):
    code = "invalid_transition"


class OrderError(ApplicationError):
    code = "invalid_order"
