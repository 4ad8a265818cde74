"""The manifest every plugin module carries as ``manifest = Manifest(...)``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from packaging.specifiers import InvalidSpecifier, SpecifierSet

from core.plugins.settings import Setting

NAME_RE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")


class PluginError(RuntimeError):
    """A plugin cannot be loaded, enabled or disabled; the message names the plugin."""


@dataclass(frozen=True)
class Manifest:
    """Who a plugin is and what it needs.

    ``name`` is the plugin's identifier and the prefix of its tables (``pharma_visit``) and field
    keys (``pharma__beds``): lowercase letters, digits and single underscores. ``core`` is a
    PEP 440 specifier of the Guanxi core versions the plugin works with; an incompatible plugin is
    reported and left unloaded. ``migrations`` is the folder of the plugin's Alembic versions
    (default: ``migrations/versions`` inside the plugin package, when present). ``settings`` is
    the typed schema of the plugin's per-company settings, a tuple of
    :class:`core.plugins.settings.Setting` (the plugins admin page draws its form from it).
    ``description_zh`` is the Chinese of ``description`` (the admin page shows the user's).
    """

    name: str
    label: str
    label_zh: str
    version: str
    depends: tuple[str, ...] = ()
    description: str = ""
    core: str = ">=0.1"
    description_zh: str = ""
    migrations: str | None = None
    settings: tuple[Setting, ...] = ()

    @property
    def description_text(self) -> str:
        """The description in the current user's language (English when there is no Chinese)."""
        from core.i18n import pick

        return pick(self.description, self.description_zh or self.description)

    def check(self) -> None:
        """Raise :class:`PluginError` if the manifest itself is malformed."""
        if not NAME_RE.match(self.name) or "__" in self.name:
            raise PluginError(
                f"plugin name {self.name!r}: use lowercase letters, digits and single underscores"
            )
        if self.name == "core":
            raise PluginError("plugin name 'core' is reserved")
        try:
            SpecifierSet(self.core)
        except InvalidSpecifier as exc:
            raise PluginError(f"plugin {self.name!r}: bad core specifier {self.core!r}") from exc
        names = [s.name for s in self.settings if isinstance(s, Setting)]
        if len(names) != len(self.settings) or len(set(names)) != len(names):
            raise PluginError(
                f"plugin {self.name!r}: settings must be Setting(...) items with distinct names"
            )

    def supports(self, core_version: str) -> bool:
        return SpecifierSet(self.core).contains(core_version, prereleases=True)
