"""Settings read from the environment (``PORTAL_*``), with safe defaults for local runs."""
from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
INSTANCE_DIR = Path(os.environ.get("PORTAL_INSTANCE_DIR", PROJECT_ROOT / "instance"))

LANGUAGES = ("en", "ru")


class ConfigError(RuntimeError):
    """The environment cannot produce a working configuration; the message says what to set."""


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def _int_env(name: str, default: int) -> int:
    raw = _env(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from exc


def _dev_secret_key() -> str:
    """A random key kept in instance/ so that demo sessions survive a restart."""
    path = INSTANCE_DIR / "secret_key"
    if path.exists():
        return path.read_text().strip()
    INSTANCE_DIR.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    path.write_text(key)
    path.chmod(0o600)
    return key


def load_config(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Build the Flask config; ``overrides`` (tests) win over the environment."""
    overrides = dict(overrides or {})
    env = overrides.get("ENV_NAME") or _env("PORTAL_ENV", "development")
    if env not in ("development", "production", "testing"):
        raise ConfigError(f"PORTAL_ENV must be development, production or testing, got {env!r}")
    production = env == "production"

    secret_key = overrides.get("SECRET_KEY") or _env("PORTAL_SECRET_KEY")
    if not secret_key:
        if production:
            raise ConfigError(
                "PORTAL_SECRET_KEY is not set. In production the portal refuses to start without it: "
                "set PORTAL_SECRET_KEY to a long random string (for example the output of "
                "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`)."
            )
        secret_key = _dev_secret_key()

    broker_url = _env("PORTAL_BROKER_URL")
    config: dict[str, Any] = {
        "ENV_NAME": env,
        "SECRET_KEY": secret_key,
        "DATABASE_URL": _env("PORTAL_DATABASE_URL", f"sqlite:///{INSTANCE_DIR / 'portal.sqlite3'}"),
        "STORAGE_URL": _env("PORTAL_STORAGE_URL", (INSTANCE_DIR / "storage").as_uri()),
        "PIM_EXPORT_URL": _env("PORTAL_PIM_EXPORT_URL", (INSTANCE_DIR / "pim-export").as_uri()),
        "S3_ENDPOINT_URL": _env("PORTAL_S3_ENDPOINT_URL"),
        # Processes that build a large PIM export's records beside the exporting process's own thread
        # (0: that thread alone). One per core but one, 1 to 3.
        "PIM_EXPORT_WORKERS": _int_env("PORTAL_PIM_EXPORT_WORKERS", max(1, min(3, (os.cpu_count() or 2) - 1))),
        "BROKER_URL": broker_url,
        # Orders posted without their own times: hours from creation to the acceptance deadline and to ship-by.
        "ORDER_ACCEPTANCE_HOURS": _int_env("PORTAL_ORDER_ACCEPTANCE_HOURS", 24),
        "ORDER_SHIP_HOURS": _int_env("PORTAL_ORDER_SHIP_HOURS", 48),
        # An open order whose ship-by is this near (or past) is "at risk of late shipment".
        "AT_RISK_HOURS": _int_env("PORTAL_AT_RISK_HOURS", 24),
        "JOB_THREADS": _int_env("PORTAL_JOB_THREADS", 2),
        "RATELIMIT_STORAGE_URI": _env("PORTAL_RATELIMIT_STORAGE_URL", broker_url or "memory://"),
        "LOGIN_RATE_LIMIT": _env("PORTAL_LOGIN_RATE_LIMIT", "20 per minute"),
        "LOGIN_MAX_FAILURES": _int_env("PORTAL_LOGIN_MAX_FAILURES", 5),
        "LOGIN_LOCK_MINUTES": _int_env("PORTAL_LOGIN_LOCK_MINUTES", 15),
        "SESSION_COOKIE_SECURE": production,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "REMEMBER_COOKIE_SECURE": production,
        "WTF_CSRF_TIME_LIMIT": None,
        "BABEL_DEFAULT_LOCALE": "en",
        "LANGUAGES": LANGUAGES,
        "CHECK_SCHEMA": True,
        # flask-smorest: the OpenAPI document is generated from the API views.
        "API_TITLE": "Merchant portal API",
        "API_VERSION": "v1",
        "OPENAPI_VERSION": "3.0.3",
        "OPENAPI_URL_PREFIX": "/api/v1",
        "OPENAPI_JSON_PATH": "openapi.json",
        "MAX_CONTENT_LENGTH": _int_env("PORTAL_MAX_UPLOAD_MB", 200) * 1024 * 1024,
    }
    config.update(overrides)
    return config
