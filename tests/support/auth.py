"""Signing in through the real form, with the CSRF token the page hands out."""
from __future__ import annotations

import re

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def csrf_from(html: str) -> str:
    match = CSRF_RE.search(html)
    assert match, "the page has no CSRF token"
    return match.group(1)


class AuthActions:
    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def csrf(self, url: str = "/login") -> str:
        return csrf_from(self.client.get(url).get_data(as_text=True))

    def login(self, email: str, password: str = "password123", follow: bool = False) -> TestResponse:
        token = self.csrf("/login")
        return self.client.post(
            "/login", data={"email": email, "password": password, "csrf_token": token}, follow_redirects=follow
        )

    def logout(self) -> TestResponse:
        return self.client.post("/logout", data={"csrf_token": self.csrf("/")})

    def post(self, url: str, data: dict | None = None, csrf_page: str = "/", **kwargs) -> TestResponse:
        """POST a form the way a browser does: with the CSRF token of a page of the session."""
        payload = dict(data or {})
        payload["csrf_token"] = self.csrf(csrf_page)
        return self.client.post(url, data=payload, **kwargs)
