"""Razorpay signatures (HMAC-SHA256, hex), as documented by Razorpay.

- Checkout callback: HMAC(key_secret, "<order_id>|<payment_id>") = `razorpay_signature`.
- Webhook: HMAC(webhook_secret, raw request body) = `X-Razorpay-Signature`.
Comparison is constant time.
"""

from __future__ import annotations

import hashlib
import hmac


def sign(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def payment_signature(key_secret: str, order_id: str, payment_id: str) -> str:
    return sign(key_secret, f"{order_id}|{payment_id}".encode())


def verify_payment(key_secret: str, order_id: str, payment_id: str, signature: str) -> bool:
    if not key_secret or not signature:
        return False
    expected = payment_signature(key_secret, order_id, payment_id)
    return hmac.compare_digest(expected, signature)


def verify_webhook(webhook_secret: str, body: bytes, signature: str) -> bool:
    if not webhook_secret or not signature:
        return False
    return hmac.compare_digest(sign(webhook_secret, body), signature)
