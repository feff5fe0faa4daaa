"""The form that asks for a KPI report (CSRF-protected by Flask-WTF)."""
from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import DateField, HiddenField, IntegerField
from wtforms.validators import AnyOf, InputRequired, Optional

from portal.kpi.reports import DAY_CHOICES, FORMATS, KINDS


class ReportForm(FlaskForm):
    # The page's buttons send these; a merchant user's ``merchant`` is ignored (they get their own).
    kind = HiddenField(_l("Report"), validators=[InputRequired(_l("choose the orders, KPI or catalog report.")),
                                                 AnyOf(KINDS, message=_l("choose the orders, KPI or catalog report."))])
    format = HiddenField(_l("Format"), validators=[InputRequired(_l("choose CSV or XLSX.")),
                                                   AnyOf(FORMATS, message=_l("choose CSV or XLSX."))])
    days = IntegerField(_l("Period"),
                        validators=[Optional(), AnyOf(DAY_CHOICES, message=_l("choose 7, 30 or 90 days."))])
    date_from = DateField(_l("First day"), validators=[Optional()])
    date_to = DateField(_l("Last day"), validators=[Optional()])
    merchant = IntegerField(_l("Merchant"), validators=[Optional()])
