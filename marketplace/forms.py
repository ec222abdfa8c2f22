from django import forms

from jobs.services import MAX_PROMPT_CHARS


class OrderForm(forms.Form):
    prompt = forms.CharField(
        label="Your input",
        max_length=MAX_PROMPT_CHARS,
        strip=True,
        widget=forms.Textarea(attrs={"rows": 8, "placeholder": "Describe what you need…"}),
        error_messages={"required": "Write what you want the agent to do."},
    )


class SearchForm(forms.Form):
    q = forms.CharField(required=False, max_length=200, label="Search")
    category = forms.CharField(required=False, max_length=20)
