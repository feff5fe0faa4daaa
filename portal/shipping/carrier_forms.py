"""Forms of the operators' carrier pages (CSRF-protected by Flask-WTF); the rules themselves are the service's."""
from __future__ import annotations

from typing import Any

from babel.dates import get_day_names
from flask_babel import get_locale
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, IntegerField, SelectChoice, SelectMultipleField, StringField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from portal.shipping.carrier_services import MAX_WEIGHT_GRAMS, WEEKDAYS, CarrierValues
from portal.shipping.models import Carrier


def weekday_names() -> dict[int, str]:
    """Monday (0) to Sunday (6), abbreviated in the page's language."""
    return dict(get_day_names("abbreviated", locale=get_locale() or "en"))


class CheckboxesField(SelectMultipleField):
    """A multiple choice shown as a row of checkboxes."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class CarrierForm(FlaskForm):
    """What an operator edits on a carrier."""

    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=100)])
    tracking_patterns = TextAreaField(
        _l("Tracking number formats"), validators=[Optional(), Length(max=5000)],
        description=_l("Regular expressions, one per line; a tracking number must match one of them in full. "
                       "None: any number is accepted."))
    tracking_url = StringField(
        _l("Tracking URL"), validators=[Optional(), Length(max=300)],
        description=_l("The carrier's tracking page with {tracking} where the number goes; empty: no link."))
    pickup_days = CheckboxesField(_l("Pickup days"), coerce=int)
    cutoff_time = StringField(_l("Cut-off time"), validators=[DataRequired(), Length(max=5)],
                              description=_l("HH:MM in the carrier's time zone: shipments must be ready by then."))
    timezone = StringField(_l("Time zone"), validators=[DataRequired(), Length(max=64)],
                           description=_l("A zone name such as Europe/Moscow or Asia/Yekaterinburg."))
    max_weight_grams = IntegerField(_l("Maximum package weight, g"),
                                    validators=[InputRequired(), NumberRange(min=1, max=MAX_WEIGHT_GRAMS)])
    is_active = BooleanField(_l("Active: merchants can ship with it"))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        names = weekday_names()
        self.pickup_days.choices = [SelectChoice(day, names[day]) for day in WEEKDAYS]

    @classmethod
    def of(cls, carrier: Carrier) -> CarrierForm:
        values = CarrierValues.of(carrier)
        return cls(data={**values.__dict__, "tracking_patterns": "\n".join(values.tracking_patterns)})

    def values(self) -> CarrierValues:
        return CarrierValues(
            name=self.name.data or "", tracking_patterns=(self.tracking_patterns.data or "").splitlines(),
            tracking_url=self.tracking_url.data or "", pickup_days=list(self.pickup_days.data or []),
            cutoff_time=self.cutoff_time.data or "", timezone=self.timezone.data or "",
            max_weight_grams=self.max_weight_grams.data, is_active=bool(self.is_active.data))  # type: ignore[arg-type]


class NewCarrierForm(CarrierForm):
    """A new carrier also gets its code, which orders refer to and which never changes."""

    code = StringField(
        _l("Code"), validators=[DataRequired(), Length(max=32)],
        description=_l("Lowercase letters, digits and underscores, e.g. cdek; it cannot be changed later."))
