from django import forms


class SearchForm(forms.Form):
    q = forms.CharField(required=False, max_length=200, label="Search")
    category = forms.CharField(required=False, max_length=20)
