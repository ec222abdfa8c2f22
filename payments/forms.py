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
    # The sender's EIP-191 signature of "Vendo: transaction <hash> pays job <uuid>", which
    # claims a transfer that is not the invoice's exact amount.
    signature = forms.CharField(
        required=False, max_length=200, strip=True, widget=forms.HiddenInput
    )
