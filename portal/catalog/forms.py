"""Forms of the catalog pages."""
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired


class UploadForm(FlaskForm):
    file = FileField(_l("Catalog file (CSV, XLSX or YML)"), validators=[FileRequired(_l("Choose a file to upload."))])


class MappingForm(FlaskForm):
    """The CSRF token; the per-column choices are read by name (map-0, map-1, …) in the view."""
