"""Keep the translations in step with the source: extract, update, compile, check.

    .venv/bin/python scripts/i18n.py           # extract, update zh_CN (no fuzzy guesses), compile
    .venv/bin/python scripts/i18n.py --check   # list untranslated messages; exit 1 if any

Messages come from ``babel.cfg`` (the core's and built-in plugins' Python and templates). New
messages arrive in ``core/translations/zh/LC_MESSAGES/messages.po`` untranslated; fill in their
``msgstr`` and run the script again to compile the ``.mo`` that ships with the package.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent
TRANSLATIONS = ROOT / "core" / "translations"
#: Catalog folders. Chinese is "zh": Babel names the zh_CN locale zh_Hans_CN, and gettext
#: falls back from that to the bare language, not to zh_CN.
LANGUAGES = ("zh",)
KEYWORDS = {
    "_": None,
    "_l": None,
    "gettext": None,
    "lazy_gettext": None,
    "ngettext": (1, 2),
    "lazy_ngettext": (1, 2),
}


def extract() -> Catalog:
    """Every message of the source, as a template catalog."""
    with open(ROOT / "babel.cfg", encoding="utf-8") as cfg:
        method_map, options_map = parse_mapping_cfg(cfg)
    template = Catalog(project="Guanxi", charset="utf-8")
    found = extract_from_dir(
        str(ROOT), method_map, options_map, keywords=KEYWORDS, comment_tags=("TRANSLATORS:",)
    )
    for filename, lineno, message, comments, context in found:
        template.add(message, None, [(filename, lineno)], auto_comments=comments, context=context)
    return template


def po_path(language: str) -> Path:
    return TRANSLATIONS / language / "LC_MESSAGES" / "messages.po"


def load(language: str) -> Catalog:
    path = po_path(language)
    if not path.exists():
        return Catalog(locale=language, project="Guanxi", charset="utf-8")
    with open(path, "rb") as handle:
        return read_po(handle, locale=language)


def untranslated(catalog: Catalog) -> list[str]:
    """Ids of messages with no translation (or a fuzzy one)."""
    missing = []
    for message in catalog:
        if not message.id:
            continue
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        if message.fuzzy or not all(strings):
            missing.append(message.id if isinstance(message.id, str) else message.id[0])
    return missing


def mo_bytes(catalog: Catalog) -> bytes:
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    return buffer.getvalue()


def update(language: str, template: Catalog) -> Catalog:
    """Bring ``language``'s catalog in step with ``template`` and write .po and .mo."""
    catalog = load(language)
    catalog.update(template, no_fuzzy_matching=True)
    catalog.obsolete.clear()
    path = po_path(language)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        write_po(handle, catalog, width=100, omit_header=False, sort_output=True)
    path.with_suffix(".mo").write_bytes(mo_bytes(catalog))
    return catalog


def main(argv: list[str]) -> int:
    template = extract()
    status = 0
    for language in LANGUAGES:
        if "--check" in argv:
            catalog = load(language)
            catalog.update(template, no_fuzzy_matching=True)
        else:
            catalog = update(language, template)
        missing = untranslated(catalog)
        for msgid in missing:
            print(f"{language}: untranslated: {msgid}")
        status = status or (1 if missing else 0)
        print(f"{language}: {len(template)} messages, {len(missing)} untranslated")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
