"""Accounts: merchants, users, sign-in with lockout, invitations and API tokens."""
from __future__ import annotations

import functools
import hashlib
import re
import secrets
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app
from flask_babel import gettext
from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from portal import audit
from portal.accounts.exceptions import AccountError, AccountLocked, InvalidToken, LoginFailed, NotAllowed
from portal.accounts.models import MERCHANT_ROLES, STAFF_ROLES, ApiToken, Merchant, User
from portal.db import get_session, utcnow
from portal.tenancy import Principal

ROLES = MERCHANT_ROLES + STAFF_ROLES
MIN_PASSWORD_LENGTH = 8
INVITE_VALID_DAYS = 7
TOKEN_PREFIX = "mp_"
SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

# Argon2id with the library's defaults (RFC 9106 low-memory profile).
_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verifying against this keeps a sign-in with an unknown e-mail as slow as a real one.

    Made on first use, not at import: every CLI call and worker start would pay for it otherwise.
    """
    return _hasher.hash("not-a-real-password")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def hash_secret(secret: str) -> str:
    """Tokens are long random strings, so one SHA-256 suffices and keeps look-ups indexable."""
    return hashlib.sha256(secret.encode()).hexdigest()


def principal_of(user: User) -> Principal:
    return Principal(role=user.role, merchant_id=user.merchant_id, user_id=user.id)


def load_user(user_id: str) -> User | None:
    try:
        return get_session().get(User, int(user_id))
    except ValueError:
        return None


# -- merchants ---------------------------------------------------------------------------------


def create_merchant(db: Session, *, slug: str, name: str, actor: Principal | None = None) -> Merchant:
    slug = slug.strip().lower()
    if not SLUG_RE.match(slug):
        raise AccountError(
            gettext("The slug %(slug)s is not valid: use 2-63 lowercase letters, digits and hyphens.", slug=slug)
        )
    if not name.strip():
        raise AccountError(gettext("The merchant needs a name."))
    if db.scalar(select(Merchant.id).where(Merchant.slug == slug)) is not None:
        raise AccountError(gettext("A merchant with the slug %(slug)s already exists.", slug=slug))
    merchant = Merchant(slug=slug, name=name.strip())
    db.add(merchant)
    db.flush()
    audit.record(db, "merchant.created", actor=actor, merchant_id=merchant.id, target=merchant)
    db.commit()
    return merchant


def merchant_by_slug(db: Session, slug: str) -> Merchant:
    merchant = db.scalar(select(Merchant).where(Merchant.slug == slug.strip().lower()))
    if merchant is None:
        raise AccountError(gettext("There is no merchant with the slug %(slug)s.", slug=slug))
    return merchant


# -- users -------------------------------------------------------------------------------------


def _check_new_user(db: Session, email: str, role: str, merchant: Merchant | None) -> str:
    email = email.strip().lower()
    if not EMAIL_RE.match(email):
        raise AccountError(gettext("%(email)s is not an e-mail address.", email=email))
    if role not in ROLES:
        raise AccountError(gettext("Unknown role %(role)s; use one of: %(roles)s.", role=role, roles=", ".join(ROLES)))
    if role in MERCHANT_ROLES and merchant is None:
        raise AccountError(gettext("The role %(role)s needs a merchant.", role=role))
    if role in STAFF_ROLES and merchant is not None:
        raise AccountError(gettext("The role %(role)s is marketplace staff and cannot belong to a merchant.", role=role))
    if db.scalar(select(User.id).where(User.email == email)) is not None:
        raise AccountError(gettext("A user with the e-mail %(email)s already exists.", email=email))
    return email


def check_password_policy(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(
            gettext("The password must have at least %(n)d characters.", n=MIN_PASSWORD_LENGTH)
        )


def create_user(
    db: Session,
    *,
    email: str,
    password: str,
    role: str,
    merchant: Merchant | None = None,
    full_name: str = "",
    actor: Principal | None = None,
) -> User:
    email = _check_new_user(db, email, role, merchant)
    check_password_policy(password)
    user = User(
        email=email,
        full_name=full_name.strip(),
        password_hash=hash_password(password),
        role=role,
        merchant_id=merchant.id if merchant else None,
    )
    db.add(user)
    db.flush()
    audit.record(db, "user.created", actor=actor, merchant_id=user.merchant_id, target=user,
                 details={"email": email, "role": role})
    db.commit()
    return user


def invite_user(db: Session, *, actor: Principal, email: str, role: str, full_name: str = "") -> tuple[User, str]:
    """A merchant admin invites a colleague; the returned secret goes into the invitation link."""
    if actor.role != "merchant_admin" or actor.merchant_id is None:
        raise NotAllowed(gettext("Only a merchant admin can invite users."))
    if role not in MERCHANT_ROLES:
        raise AccountError(gettext("A merchant can invite only merchant admins and merchant staff."))
    merchant = db.get(Merchant, actor.merchant_id)
    email = _check_new_user(db, email, role, merchant)
    secret = secrets.token_urlsafe(32)
    user = User(
        email=email,
        full_name=full_name.strip(),
        role=role,
        merchant_id=actor.merchant_id,
        invite_token_hash=hash_secret(secret),
        invite_expires_at=utcnow() + timedelta(days=INVITE_VALID_DAYS),
        invited_by_id=actor.user_id,
    )
    db.add(user)
    db.flush()
    audit.record(db, "user.invited", actor=actor, target=user, details={"email": email, "role": role})
    db.commit()
    return user, secret


def user_by_invite(db: Session, secret: str) -> User:
    user = db.scalar(select(User).where(User.invite_token_hash == hash_secret(secret)))
    if user is None or user.invite_expires_at is None or user.invite_expires_at < utcnow():
        raise AccountError(gettext("This invitation link is not valid or has expired; ask your admin for a new one."))
    return user


def accept_invite(db: Session, secret: str, password: str) -> User:
    user = user_by_invite(db, secret)
    check_password_policy(password)
    user.password_hash = hash_password(password)
    user.invite_token_hash = None
    user.invite_expires_at = None
    audit.record(db, "user.invite_accepted", actor=principal_of(user), target=user)
    db.commit()
    return user


def set_user_active(db: Session, user: User, active: bool, *, actor: Principal) -> User:
    """Deactivate or reactivate a user; the caller has already scoped ``user`` to the actor's merchant."""
    if user.id == actor.user_id:
        raise AccountError(gettext("You cannot deactivate your own account."))
    if actor.merchant_id is not None and (actor.role != "merchant_admin" or user.merchant_id != actor.merchant_id):
        raise NotAllowed(gettext("Only a merchant admin can manage this merchant's users."))
    user.is_active_user = active
    audit.record(db, "user.reactivated" if active else "user.deactivated", actor=actor,
                 merchant_id=user.merchant_id, target=user, details={"email": user.email})
    db.commit()
    return user


def set_locale(db: Session, user: User, locale: str) -> None:
    user.locale = locale
    db.commit()


def authenticate(db: Session, email: str, password: str) -> User:
    """Check a sign-in; repeated failures lock the account for a while, whatever the address."""
    email = email.strip().lower()
    user = db.scalar(select(User).where(User.email == email))
    now = utcnow()
    if user is None:
        verify_password(_dummy_hash(), password)
        audit.record(db, "login.failed", details={"email": email, "reason": "unknown_email"})
        db.commit()
        raise LoginFailed(gettext("Wrong e-mail or password."))
    actor = principal_of(user)
    if user.locked_until is not None and user.locked_until > now:
        minutes = max(1, int((user.locked_until - now).total_seconds() // 60) + 1)
        audit.record(db, "login.refused_locked", actor=actor, target=user)
        db.commit()
        raise AccountLocked(
            gettext("This account is locked after repeated failed sign-ins. Try again in %(n)d minutes.", n=minutes)
        )
    if not user.password_hash or not verify_password(user.password_hash, password):
        user.failed_logins += 1
        audit.record(db, "login.failed", actor=actor, target=user, details={"email": email, "reason": "password"})
        if user.failed_logins >= current_app.config["LOGIN_MAX_FAILURES"]:
            user.locked_until = now + timedelta(minutes=current_app.config["LOGIN_LOCK_MINUTES"])
            user.failed_logins = 0
            audit.record(db, "login.locked", actor=actor, target=user)
        db.commit()
        raise LoginFailed(gettext("Wrong e-mail or password."))
    if not user.is_active_user or (user.merchant is not None and not user.merchant.is_active):
        audit.record(db, "login.refused_inactive", actor=actor, target=user)
        db.commit()
        raise LoginFailed(gettext("This account is deactivated. Ask your admin to reactivate it."))
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now
    audit.record(db, "login.succeeded", actor=actor, target=user)
    db.commit()
    return user


def record_logout(db: Session, user: User) -> None:
    audit.record(db, "logout", actor=principal_of(user), target=user)
    db.commit()


# -- API tokens --------------------------------------------------------------------------------


def create_token(
    db: Session,
    *,
    name: str,
    merchant: Merchant | None,
    actor: Principal | None = None,
    expires_at: datetime | None = None,
) -> tuple[ApiToken, str]:
    """Create a token; the plain text is returned once and never stored."""
    if actor is not None and actor.merchant_id is not None:
        if actor.role != "merchant_admin" or merchant is None or merchant.id != actor.merchant_id:
            raise NotAllowed(gettext("Only a merchant admin can create this merchant's API tokens."))
    name = name.strip() or gettext("API token")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        name=name[:100],
        token_hash=hash_secret(secret),
        prefix=secret[:10],
        merchant_id=merchant.id if merchant else None,
        created_by_id=actor.user_id if actor else None,
        expires_at=expires_at,
    )
    db.add(token)
    db.flush()
    audit.record(db, "token.created", actor=actor, merchant_id=token.merchant_id, target=token,
                 details={"name": token.name, "operator": token.is_operator})
    db.commit()
    return token, secret


def revoke_token(db: Session, token: ApiToken, *, actor: Principal) -> ApiToken:
    if actor.merchant_id is not None and (actor.role != "merchant_admin" or token.merchant_id != actor.merchant_id):
        raise NotAllowed(gettext("Only a merchant admin can revoke this merchant's API tokens."))
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        audit.record(db, "token.revoked", actor=actor, merchant_id=token.merchant_id, target=token,
                     details={"name": token.name})
        db.commit()
    return token


# Every API call starts here: one row of columns (no objects), from a statement built once.
_TOKEN_LOOKUP = (
    select(ApiToken.id, ApiToken.merchant_id, ApiToken.expires_at, ApiToken.revoked_at, ApiToken.last_used_at,
           Merchant.is_active.label("merchant_active"))
    .outerjoin(Merchant, Merchant.id == ApiToken.merchant_id)
    .where(ApiToken.token_hash == bindparam("token_hash"))
)


def authenticate_token(db: Session, secret: str) -> Principal:
    """The principal of a bearer token: an operator token is staff, a merchant's is its merchant's admin."""
    token = db.connection().execute(_TOKEN_LOOKUP, {"token_hash": hash_secret(secret)}).first()
    now = utcnow()
    if token is None:
        raise InvalidToken(gettext("The API token is not valid."))
    if token.revoked_at is not None:
        raise InvalidToken(gettext("The API token has been revoked."))
    if token.expires_at is not None and token.expires_at <= now:
        raise InvalidToken(gettext("The API token has expired."))
    if token.merchant_id is not None and not token.merchant_active:
        raise InvalidToken(gettext("The merchant of this API token is deactivated."))
    # Written at most once a minute, so that busy clients do not turn every read into a write.
    if token.last_used_at is None or now - token.last_used_at > timedelta(minutes=1):
        db.execute(update(ApiToken).where(ApiToken.id == token.id).values(last_used_at=now))
        db.commit()
    role = "merchant_admin" if token.merchant_id is not None else "operator_admin"
    return Principal(role=role, merchant_id=token.merchant_id, token_id=token.id)
