"""The tenant-isolation check every route with an object id must pass."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from flask.testing import FlaskClient

from tests.support.auth import csrf_from


@dataclass(frozen=True)
class Probe:
    """One request for another merchant's object: ``endpoint`` names the route it exercises."""

    endpoint: str
    method: str
    path: str
    data: dict = field(default_factory=dict)


def assert_other_merchant_gets_404(
    client: FlaskClient, probes: Iterable[Probe], *, bearer: str | None = None, csrf_page: str = "/"
) -> None:
    """Each probe, sent by a signed-in user (or with ``bearer``) of another merchant, must answer 404.

    Form posts carry a valid CSRF token, so a 404 comes from the tenant check, not a refused form.
    """
    failures = []
    for probe in probes:
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
        data = dict(probe.data)
        if probe.method == "POST" and not bearer:
            data["csrf_token"] = csrf_from(client.get(csrf_page).get_data(as_text=True))
        response = client.open(probe.path, method=probe.method, data=data, headers=headers)
        if response.status_code != 404:
            failures.append(f"{probe.method} {probe.path} ({probe.endpoint}) answered {response.status_code}")
    assert not failures, "another merchant's objects were reachable:\n" + "\n".join(failures)
