from functools import lru_cache

import qrcode
import qrcode.image.svg


@lru_cache(maxsize=2048)
def qr_svg(data: str) -> str:
    """Return an inline SVG QR code of `data` (an EIP-681 URI).

    Drawing one takes about 25 ms of pure Python, and the job page is polled and reloaded, so
    each process keeps the codes it drew: a URI's code never changes.
    """
    image = qrcode.make(data, image_factory=qrcode.image.svg.SvgPathImage, box_size=8, border=2)
    return image.to_string(encoding="unicode")
