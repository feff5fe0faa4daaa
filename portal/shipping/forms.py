"""Forms of the shipment pages (CSRF-protected by Flask-WTF); the services check every value again."""
from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import DateField, HiddenField, IntegerField, SelectField, StringField
from wtforms.validators import Length, Optional

# The package fields by the name the services give in ``details.field``, as the page labels them.
PACKAGE_FIELDS = {
    "weight_grams": _l("Weight, g"),
    "length_mm": _l("Length, mm"),
    "width_mm": _l("Width, mm"),
    "height_mm": _l("Height, mm"),
    "tracking_number": _l("Tracking number"),
}


class CreateShipmentForm(FlaskForm):
    """The desk's "Create shipment": the ticked ``order_id``s come with it, read from the request by the view."""

    # The active carriers' codes; any code goes through to the service, which names the active ones.
    carrier = SelectField(_l("Carrier"), choices=[], validate_choice=False, validators=[Optional(), Length(max=32)])
    # Empty: the carrier's next pickup day.
    pickup_date = DateField(_l("Pickup date"), validators=[Optional()])


class ActionForm(FlaskForm):
    """A button of the shipment page that carries nothing but its CSRF token (and, for some, ticked ids)."""


class PackageForm(FlaskForm):
    """A package's weight (grams), sides (millimetres) and tracking number; an empty number field keeps the value."""

    weight_grams = IntegerField(PACKAGE_FIELDS["weight_grams"], validators=[Optional()])
    length_mm = IntegerField(PACKAGE_FIELDS["length_mm"], validators=[Optional()])
    width_mm = IntegerField(PACKAGE_FIELDS["width_mm"], validators=[Optional()])
    height_mm = IntegerField(PACKAGE_FIELDS["height_mm"], validators=[Optional()])
    # An empty box clears the tracking number.
    tracking_number = StringField(PACKAGE_FIELDS["tracking_number"], validators=[Optional(), Length(max=64)])


class SplitForm(FlaskForm):
    """Units to move into a new package: one ``move-<order line id>`` box per line, read by the view.

    ``contents`` is the package's contents as the page showed them: a second click of the same button finds
    them changed and moves nothing.
    """

    contents = HiddenField(validators=[Optional(), Length(max=2000)])
