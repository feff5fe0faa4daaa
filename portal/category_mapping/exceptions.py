"""Errors of the category-mapping block."""
from __future__ import annotations

from flask_babel import gettext

from portal.errors import PortalError


class MappingError(PortalError):
    status = 422
    code = "mapping_error"


class FileProblems(MappingError):
    """A taxonomy or requirements file with problems: each names its line; nothing was loaded."""

    code = "invalid_file"

    def __init__(self, what: str, problems: list[str]):
        super().__init__(gettext("%(what)s was not loaded: %(count)s problem(s). Nothing was changed.",
                                 what=what, count=len(problems)), details=problems)
        self.problems = problems


class MappingLocked(MappingError):
    status = 409
    code = "mapping_locked"
