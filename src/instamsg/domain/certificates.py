"""Client certificate statuses and serial numbers (spec D11, S11), shared by the broker side and REST."""

from __future__ import annotations

from typing import Final

from cryptography import x509

ACTIVE: Final = "active"
PENDING: Final = "pending"  # issued by reset_certificate, active on its first successful use
REVOKED: Final = "revoked"


def certificate_serial(certificate_pem: str) -> str:
    """A certificate's serial number as lowercase hex without leading zeros (the stored form)."""
    return format(x509.load_pem_x509_certificate(certificate_pem.encode()).serial_number, "x")
