from functools import lru_cache

import qrcode
import qrcode.image.svg


@lru_cache(maxsize=2048)
def qr_svg(data: str) -> str:
    """Return an inline SVG QR code of `data` (an EIP-681 URI).

    Drawing one is pure Python and the job page is polled and reloaded, so each process keeps
    the codes it drew: a URI's code never changes. A fixed mask pattern (every mask is valid)
    skips scoring all eight, which halves the cost of a first drawing.
    """
    code = qrcode.QRCode(
        box_size=8, border=2, mask_pattern=0, image_factory=qrcode.image.svg.SvgPathImage
    )
    code.add_data(data)
    code.make(fit=True)
    return code.make_image().to_string(encoding="unicode")
