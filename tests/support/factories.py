"""Test data through the same services the portal uses, each call in its own app context.

No app context stays pushed between calls: a request made while one is pushed would share its
``g`` (and so its session and signed-in user) instead of getting its own.
"""
from __future__ import annotations

import itertools
from typing import Any

from flask import Flask

from portal.accounts import services
from portal.accounts.models import ApiToken, Merchant, User
from portal.db import get_session

PASSWORD = "password123"
_seq = itertools.count(1)


class Factory:
    def __init__(self, app: Flask) -> None:
        self.app = app

    def merchant(self, slug: str | None = None, name: str | None = None) -> Merchant:
        n = next(_seq)
        with self.app.app_context():
            return services.create_merchant(get_session(), slug=slug or f"shop-{n}", name=name or f"Shop {n}")

    def user(self, role: str = "merchant_admin", merchant: Merchant | None = None, email: str | None = None,
             password: str = PASSWORD) -> User:
        if merchant is None and role in ("merchant_admin", "merchant_staff"):
            merchant = self.merchant()
        email = email or f"{role.replace('_', '-')}-{next(_seq)}@test.example"
        with self.app.app_context():
            return services.create_user(get_session(), email=email, password=password, role=role, merchant=merchant)

    def token(self, merchant: Merchant | None = None, **kwargs: Any) -> tuple[ApiToken, str]:
        with self.app.app_context():
            return services.create_token(get_session(), name="test token", merchant=merchant, **kwargs)
