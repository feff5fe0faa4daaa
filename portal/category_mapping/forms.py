"""Forms of the category-mapping pages."""
from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import DateField, IntegerField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, NumberRange, Optional


class ConfirmForm(FlaskForm):
    category_id = IntegerField(_l("Marketplace category"), validators=[DataRequired()])


class BulkConfirmForm(FlaskForm):
    min_confidence = IntegerField(_l("Confirm every suggestion at or above (%)"), default=80,
                                  validators=[DataRequired(), NumberRange(min=1, max=100)])


class FillUploadForm(FlaskForm):
    file = FileField(_l("The filled-in file"), validators=[FileRequired()])


class ManualRequestForm(FlaskForm):
    merchant_id = SelectField(_l("Merchant"), coerce=int, validators=[DataRequired()])
    text = TextAreaField(_l("What to fill in"))
    attributes = StringField(_l("Attribute codes, separated by commas"))
    category_id = IntegerField(_l("Marketplace category id (optional)"), validators=[Optional()])
    sku = StringField(_l("One product's SKU (optional)"))
    due_date = DateField(_l("Due date"), validators=[Optional()])
