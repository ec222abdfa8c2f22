from django import forms


class TxHashForm(forms.Form):
    tx_hash = forms.CharField(
        label="Transaction hash",
        max_length=100,
        strip=True,
        widget=forms.TextInput(
            attrs={"placeholder": "0x…", "autocomplete": "off", "spellcheck": "false"}
        ),
        error_messages={"required": "Paste the hash of your USDC transfer."},
    )
