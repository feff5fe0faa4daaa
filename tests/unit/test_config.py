"""Configuration from the environment."""
from __future__ import annotations

import pytest

from portal.config import ConfigError, load_config


def test_production_needs_a_secret_key(monkeypatch):
    monkeypatch.delenv("PORTAL_SECRET_KEY", raising=False)
    monkeypatch.setenv("PORTAL_ENV", "production")
    with pytest.raises(ConfigError, match="PORTAL_SECRET_KEY is not set"):
        load_config()


def test_production_uses_secure_cookies(monkeypatch):
    monkeypatch.setenv("PORTAL_ENV", "production")
    monkeypatch.setenv("PORTAL_SECRET_KEY", "s" * 40)
    config = load_config()
    assert config["SESSION_COOKIE_SECURE"] is True


def test_environment_variables_configure_the_portal(monkeypatch):
    monkeypatch.setenv("PORTAL_DATABASE_URL", "postgresql+psycopg://db/portal")
    monkeypatch.setenv("PORTAL_STORAGE_URL", "s3://bucket/files")
    monkeypatch.setenv("PORTAL_BROKER_URL", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("PORTAL_SECRET_KEY", "k")
    config = load_config()
    assert config["DATABASE_URL"] == "postgresql+psycopg://db/portal"
    assert config["STORAGE_URL"] == "s3://bucket/files"
    assert config["BROKER_URL"] == "redis://127.0.0.1:6379/0"
    assert config["RATELIMIT_STORAGE_URI"] == "redis://127.0.0.1:6379/0"


def test_unknown_environment_name_is_refused(monkeypatch):
    monkeypatch.setenv("PORTAL_ENV", "staging")
    with pytest.raises(ConfigError, match="PORTAL_ENV"):
        load_config()


def test_non_numeric_setting_is_refused_with_its_name(monkeypatch):
    monkeypatch.setenv("PORTAL_SECRET_KEY", "k")
    monkeypatch.setenv("PORTAL_JOB_THREADS", "many")
    with pytest.raises(ConfigError, match="PORTAL_JOB_THREADS"):
        load_config()
