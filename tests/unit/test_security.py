"""Password hashing, token hashing, redirects and spreadsheet-safe cells."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from portal.accounts.models import User
from portal.accounts.services import hash_password, hash_secret, verify_password
from portal.auth import safe_next
from portal.reports import safe_cell
from portal.tenancy import Principal, scope


def test_passwords_are_hashed_with_argon2id():
    hashed = hash_password("correct horse")
    assert hashed.startswith("$argon2id$")
    assert verify_password(hashed, "correct horse")
    assert not verify_password(hashed, "wrong horse")
    assert not verify_password("not-a-hash", "correct horse")


def test_token_hash_is_deterministic_and_not_the_token():
    assert hash_secret("mp_abc") == hash_secret("mp_abc")
    assert "mp_abc" not in hash_secret("mp_abc")


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example", "javascript:alert(1)", "/\\evil", "users"])
def test_redirect_targets_outside_the_portal_are_replaced(target):
    assert safe_next(target, "/") == "/"


def test_redirect_target_inside_the_portal_is_kept():
    assert safe_next("/users?page=2", "/") == "/users?page=2"


@pytest.mark.parametrize("value", ["=1+1", "+cmd", "-2+3", "@SUM(A1)", "\tx", "\rx"])
def test_formula_like_cells_are_neutralised(value):
    assert safe_cell(value) == "'" + value


def test_plain_cells_are_kept():
    assert safe_cell("Hello") == "Hello"
    assert safe_cell(12) == 12


def test_merchant_principal_queries_are_confined_to_their_merchant():
    sql = str(scope(select(User), User, Principal(role="merchant_admin", merchant_id=7)).compile(
        compile_kwargs={"literal_binds": True}))
    assert "users.merchant_id = 7" in sql


def test_staff_principal_queries_see_every_merchant():
    sql = str(scope(select(User), User, Principal(role="operator_admin", merchant_id=None)).compile())
    assert "WHERE" not in sql


def test_scoping_a_model_without_a_merchant_is_a_programming_error():
    from portal.accounts.models import Merchant

    with pytest.raises(TypeError, match="cannot be tenant-scoped"):
        scope(select(Merchant), Merchant, Principal(role="merchant_admin", merchant_id=1))
