import qrcode
import qrcode.image.svg


def qr_svg(data: str) -> str:
    """Return an inline SVG QR code of `data` (an EIP-681 URI)."""
    image = qrcode.make(data, image_factory=qrcode.image.svg.SvgPathImage, box_size=8, border=2)
    return image.to_string(encoding="unicode")
