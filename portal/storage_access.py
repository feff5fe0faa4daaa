"""The app's storages, opened once from configuration."""
from __future__ import annotations

from flask import Flask, current_app

from portal.storage import Storage, open_storage


def get_storage(app: Flask | None = None) -> Storage:
    """Uploaded files and generated reports (``PORTAL_STORAGE_URL``)."""
    app = app or current_app
    storage = app.extensions.get("portal.storage")
    if storage is None:
        storage = open_storage(app.config["STORAGE_URL"], endpoint_url=app.config["S3_ENDPOINT_URL"])
        app.extensions["portal.storage"] = storage
    return storage
