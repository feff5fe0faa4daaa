"""The app's storages, opened once from configuration."""
from __future__ import annotations

from urllib.parse import quote

from flask import Flask, Response, current_app, stream_with_context

from portal.storage import Storage, open_storage


def get_storage(app: Flask | None = None) -> Storage:
    """Uploaded files and generated reports (``PORTAL_STORAGE_URL``)."""
    app = app or current_app
    storage = app.extensions.get("portal.storage")
    if storage is None:
        storage = open_storage(app.config["STORAGE_URL"], endpoint_url=app.config["S3_ENDPOINT_URL"])
        app.extensions["portal.storage"] = storage
    return storage


def send_stored(key: str, filename: str, mimetype: str) -> Response:
    """Stream a stored file to the browser as a download, a megabyte at a time."""
    stream = get_storage().open(key)

    def chunks():
        with stream:
            while chunk := stream.read(1024 * 1024):
                yield chunk

    disposition = f"attachment; filename*=UTF-8''{quote(filename)}"
    if filename.isascii():
        disposition = f'attachment; filename="{filename}"'
    return Response(stream_with_context(chunks()), mimetype=mimetype, headers={"Content-Disposition": disposition})
