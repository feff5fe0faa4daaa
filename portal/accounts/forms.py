"""Forms of sign-in, invitations, users, merchants and tokens (all CSRF-protected by Flask-WTF)."""
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import EmailField, HiddenField, IntegerField, PasswordField, SelectChoice, SelectField, StringField
from wtforms.validators import DataRequired, EqualTo, Length, NumberRange, Optional

from portal.accounts.services import MIN_PASSWORD_LENGTH


class LoginForm(FlaskForm):
    email = EmailField(_l("E-mail"), validators=[DataRequired()])
    password = PasswordField(_l("Password"), validators=[DataRequired()])


class ActionForm(FlaskForm):
    """An empty form: a button that changes something still carries the CSRF token."""


class LanguageForm(FlaskForm):
    lang = HiddenField(validators=[DataRequired()])
    next = HiddenField()


class InviteForm(FlaskForm):
    email = EmailField(_l("E-mail"), validators=[DataRequired(), Length(max=254)])
    full_name = StringField(_l("Full name"), validators=[Optional(), Length(max=200)])
    role = SelectField(
        _l("Role"),
        choices=[SelectChoice("merchant_staff", _l("Merchant staff")), SelectChoice("merchant_admin", _l("Merchant admin"))],
    )


class AcceptInviteForm(FlaskForm):
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(min=MIN_PASSWORD_LENGTH)])
    confirm = PasswordField(
        _l("Repeat the password"), validators=[DataRequired(), EqualTo("password", message=_l("The passwords differ."))]
    )


class TokenForm(FlaskForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=100)])
    expires_in_days = IntegerField(
        _l("Expires in days (empty: never)"), validators=[Optional(), NumberRange(min=1, max=3650)]
    )


class MerchantForm(FlaskForm):
    slug = StringField(_l("Slug"), validators=[DataRequired(), Length(max=63)])
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=200)])


class UserForm(FlaskForm):
    email = EmailField(_l("E-mail"), validators=[DataRequired(), Length(max=254)])
    full_name = StringField(_l("Full name"), validators=[Optional(), Length(max=200)])
    role = SelectField(_l("Role"))
    merchant_id = SelectField(_l("Merchant"), coerce=int)
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(min=MIN_PASSWORD_LENGTH)])
