"""Merchants, users, sign-in and API tokens."""
