"""Forms of the order desk (CSRF-protected by Flask-WTF)."""
from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import HiddenField, SelectChoice, SelectField, StringField, TextAreaField
from wtforms.validators import AnyOf, DataRequired, Length, Optional


class TransitionForm(FlaskForm):
    """One button of the order page; the key rendered with it makes a double click apply once."""

    idempotency_key = HiddenField(validators=[Optional(), Length(max=128)])
    reason = TextAreaField(_l("Reason"), validators=[Optional(), Length(max=1000)])
    # The active carriers' codes, filled in by the view; any code is let through to the service, which names
    # the valid ones when it is not one of them.
    carrier = SelectField(_l("Carrier"), choices=[], validate_choice=False, validators=[Optional(), Length(max=64)])
    tracking_number = StringField(_l("Tracking number"), validators=[Optional(), Length(max=64)])


class BulkForm(FlaskForm):
    action = SelectField(choices=[SelectChoice("accept", _l("Accept")), SelectChoice("refuse", _l("Refuse"))],
                         validators=[DataRequired()])
    reason = StringField(_l("Reason"), validators=[Optional(), Length(max=1000)])


class ExportForm(FlaskForm):
    format = HiddenField(validators=[DataRequired(), AnyOf(["csv", "xlsx"])])
