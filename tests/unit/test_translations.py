"""Every text a user reads is in the Russian catalog, translated, with the same placeholders."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[2]
PLACEHOLDER = re.compile(r"%\(\w+\)[sd]")


def _catalog(path: Path):
    with path.open("rb") as handle:
        return read_po(handle)


def test_every_message_in_the_code_is_translated_into_russian(tmp_path):
    pot = tmp_path / "messages.pot"
    subprocess.run(
        [sys.executable, "-m", "babel.messages.frontend", "extract", "-F", "babel.cfg", "-k", "_l", "-k", "lazy_gettext",
         "-o", str(pot), "--no-location", "."],
        cwd=ROOT, check=True, capture_output=True,
    )
    extracted = {m.id for m in _catalog(pot) if m.id}
    russian = _catalog(ROOT / "portal/translations/ru/LC_MESSAGES/messages.po")
    translated = {m.id for m in russian if m.id and m.string and not m.fuzzy}
    missing = sorted(str(i) for i in extracted - translated)
    assert not missing, "untranslated (run `make extract-messages` and translate):\n" + "\n".join(missing)


def test_russian_translations_keep_the_placeholders():
    russian = _catalog(ROOT / "portal/translations/ru/LC_MESSAGES/messages.po")
    wrong = [m.id for m in russian if m.id and m.string and
             set(PLACEHOLDER.findall(str(m.id))) != set(PLACEHOLDER.findall(str(m.string)))]
    assert not wrong
