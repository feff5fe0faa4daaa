"""Errors of the catalog block."""
from portal.errors import PortalError


class CatalogError(PortalError):
    status = 422
    code = "catalog_error"


class UploadBusy(CatalogError):
    status = 409
    code = "upload_busy"
