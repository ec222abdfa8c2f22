from marketplace.errors import ApplicationError


class PaymentError(ApplicationError):
    code = "payment_rejected"
