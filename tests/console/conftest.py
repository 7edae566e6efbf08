"""Console fixtures: users of each role on a real server, and signed-in HTTP clients."""

from __future__ import annotations

import re
from typing import Any

import httpx

from tests.conftest import RunningServer

PASSWORD = "console test passphrase"
_CSRF = re.compile(r'name="_csrf" value="([^"]+)"')


class SignedIn:
    """An HTTP client holding a console session, like a browser (cookies, no redirects followed)."""

    def __init__(self, server: RunningServer, email: str, password: str = PASSWORD) -> None:
        self.client = httpx.Client(base_url=server.url, timeout=30)
        response = self.client.post("/console/sign-in", data={"email": email, "password": password, "next": ""})
        assert response.status_code == 303, response.text
        page = self.client.get("/console")
        assert page.status_code == 200, page.text
        found = _CSRF.search(page.text)
        assert found is not None
        self.csrf = found.group(1)

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.client.get(path, params=params)

    def form(self, path: str, data: dict[str, str]) -> httpx.Response:
        return self.client.post(path, data={"_csrf": self.csrf, **data})

    def api(self, method: str, path: str, body: Any = None, *, csrf: bool = True) -> httpx.Response:
        headers = {"X-CSRF-Token": self.csrf} if csrf else {}
        return self.client.request(method, path, json=body, headers=headers)

    def close(self) -> None:
        self.client.close()


def add_user(server: RunningServer, email: str, role: str, pii: bool = False) -> None:
    server.runtime.users.create(email, PASSWORD, role, pii_grant=pii)
