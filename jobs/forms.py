from django import forms

from jobs.services import MAX_DISPUTE_CHARS, MAX_PROMPT_CHARS
from marketplace.models import PaymentMode


class OrderForm(forms.Form):
    prompt = forms.CharField(
        label="Your input",
        max_length=MAX_PROMPT_CHARS,
        strip=True,
        widget=forms.Textarea(attrs={"rows": 8, "placeholder": "Describe what you need…"}),
        error_messages={"required": "Write what you want the agent to do."},
    )
    payment_mode = forms.ChoiceField(
        label="When to pay",
        choices=PaymentMode.for_jobs(),
        required=False,
        widget=forms.RadioSelect,
    )

    def __init__(self, *args, skill, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if skill.effective_payment_mode != PaymentMode.BUYER_CHOICE:
            del self.fields["payment_mode"]
        else:
            self.fields["payment_mode"].required = True
            self.fields["payment_mode"].initial = PaymentMode.UPFRONT
            self.fields["payment_mode"].error_messages["required"] = "Choose when to pay."


class DisputeForm(forms.Form):
    reason = forms.CharField(
        label="What is wrong with the result?",
        max_length=MAX_DISPUTE_CHARS,
        strip=True,
        widget=forms.Textarea(attrs={"rows": 4}),
        error_messages={"required": "Say what is wrong with the result."},
    )
