from django import forms

from payments.services.attribution import SIGNATURE_MAX_CHARS


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
    # The sender's signature of "Vendo: transaction <hash> pays job <uuid>" (EIP-191 from a
    # key, ERC-1271 from a contract wallet), which claims a transfer that is not the invoice's
    # exact amount.
    signature = forms.CharField(
        required=False, max_length=SIGNATURE_MAX_CHARS, strip=True, widget=forms.HiddenInput
    )
