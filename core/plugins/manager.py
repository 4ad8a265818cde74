"""Finding, ordering, registering and enabling plugins.

The manager wraps a ``pluggy.PluginManager`` (project ``guanxi``). At start it:

1. discovers plugin modules: the built-ins under ``plugins/``, the entry-point group
   ``guanxi.plugins`` and any dotted paths in the ``PLUGINS`` setting;
2. checks each manifest, refuses duplicate names, missing dependencies and dependency cycles
   with a :class:`PluginError` naming the plugin, and leaves out plugins whose ``core``
   specifier excludes this core version (listed in :attr:`PluginManager.incompatible`);
3. registers the plugins in dependency order and calls ``check_pending()`` so a hook
   implementation with a misspelt name or a bad signature stops the start;
4. collects every plugin's declarations into a :class:`Registry`.

Per company, :meth:`PluginManager.enabled` reads which plugins are on (the core is always on)
and :meth:`PluginManager.hooks` gives a hook relay that calls only those plugins, cached per set
of enabled plugins.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from functools import cached_property
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pluggy
from sqlalchemy import select

from core import __version__
from core.db import db
from core.plugins import hookspecs
from core.plugins.manifest import Manifest, PluginError

log = logging.getLogger("guanxi.plugins")
#: ``GUANXI_TRACE_HOOKS=1`` logs one line per hook implementation called, here.
trace_log = logging.getLogger("guanxi.hooks")

CORE = "core"


@dataclass
class Registry:
    """Everything the installed plugins declared, each item tagged with its plugin."""

    fields: list[Any] = field(default_factory=list)
    choices: list[Any] = field(default_factory=list)
    workflows: dict[str, Any] = field(default_factory=dict)
    obligation_kinds: dict[str, Any] = field(default_factory=dict)
    jobs: dict[str, Any] = field(default_factory=dict)
    blueprints: list[tuple[str, Any]] = field(default_factory=list)
    blueprint_owner: dict[str, str] = field(default_factory=dict)
    api_resources: dict[str, Any] = field(default_factory=dict)
    reports: dict[str, Any] = field(default_factory=dict)
    permissions: dict[str, Any] = field(default_factory=dict)
    consent_purposes: dict[str, Any] = field(default_factory=dict)

    def fields_for(self, model: str, enabled: Iterable[str]) -> list[Any]:
        """Extension fields on ``model`` of the ``enabled`` plugins, in declaration order."""
        on = set(enabled)
        return [f for f in self.fields if f.model == model and f.plugin in on]

    def choices_for(self, list_name: str, enabled: Iterable[str]) -> list[Any]:
        on = set(enabled) | {CORE}
        return [c for c in self.choices if c.list == list_name and c.plugin in on]


class PluginManager:
    """The installed plugins of one application."""

    def __init__(self, trace: bool = False) -> None:
        self.pm = pluggy.PluginManager("guanxi")
        self.pm.add_hookspecs(hookspecs)
        self.manifests: dict[str, Manifest] = {}
        self.modules: dict[str, ModuleType] = {}
        self.order: list[str] = []
        self.incompatible: dict[str, str] = {}
        self.registry = Registry()
        self._relays: dict[frozenset[str], SimpleNamespace] = {}
        self.trace = trace
        if trace:
            trace_log.setLevel(logging.INFO)
            if not trace_log.handlers and not logging.getLogger().handlers:
                handler = logging.StreamHandler(sys.stderr)
                handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
                trace_log.addHandler(handler)

    # -- loading --------------------------------------------------------------------------

    def load(
        self,
        *,
        builtin: bool = True,
        entry_point_plugins: bool = True,
        extra: Iterable[str | ModuleType] = (),
    ) -> None:
        """Discover, check, order and register plugins, then collect their declarations."""
        from core import defaults

        found: list[ModuleType] = []
        if builtin:
            found += self._builtin_modules()
        if entry_point_plugins:
            found += [ep.load() for ep in entry_points(group="guanxi.plugins")]
        for item in extra:
            found.append(importlib.import_module(item) if isinstance(item, str) else item)
        self.install(found, core=defaults)
        self._add_translations()

    def translation_dirs(self) -> list[str]:
        """The ``translations`` folders of installed plugin packages that have one."""
        dirs = []
        for name in self.order:
            file = self.modules[name].__file__
            if file and file.endswith("__init__.py"):
                path = Path(file).parent / "translations"
                if path.is_dir():
                    dirs.append(str(path))
        return dirs

    def _add_translations(self) -> None:
        """Let Flask-Babel read each plugin's own catalogues (same domain). They are merged
        before the core's, so for a msgid both translate the core's Chinese wins and a plugin
        cannot change the wording of the core's pages."""
        from flask import current_app, has_app_context

        if not has_app_context() or "babel" not in current_app.extensions:
            return
        directories = current_app.extensions["babel"].translation_directories
        added = [p for p in self.translation_dirs() if p not in directories]
        directories[0:0] = added

    def install(self, modules: list[ModuleType], core: ModuleType | None = None) -> None:
        """Check and register ``modules`` (plugin modules carrying a ``manifest``)."""
        by_name: dict[str, ModuleType] = {}
        for module in modules:
            manifest = getattr(module, "manifest", None)
            if not isinstance(manifest, Manifest):
                raise PluginError(f"module {module.__name__} has no `manifest = Manifest(...)`")
            manifest.check()
            if manifest.name in by_name and by_name[manifest.name] is not module:
                raise PluginError(
                    f"plugin name {manifest.name!r} is used by both "
                    f"{by_name[manifest.name].__name__} and {module.__name__}"
                )
            by_name[manifest.name] = module
        compatible = {}
        for name, module in by_name.items():
            if module.manifest.supports(__version__):
                compatible[name] = module
            else:
                self.incompatible[name] = (
                    f"plugin {name!r} needs core {module.manifest.core}, this is {__version__}"
                )
                log.warning(self.incompatible[name])
        order = _topological_order(
            {n: m.manifest for n, m in compatible.items()}, self.incompatible
        )
        if core is not None and not self.pm.is_registered(core):
            self.pm.register(core, name=CORE)
            if self.trace:
                self._trace(core)
        for name in order:
            module = compatible[name]
            try:
                self.pm.register(module, name=name)
            except pluggy.PluginValidationError as exc:
                raise PluginError(f"plugin {name!r}: {exc}") from exc
            self.manifests[name] = module.manifest
            self.modules[name] = module
            if self.trace:
                self._trace(module)
        self.order = [n for n in self.order if n in self.manifests] + [
            n for n in order if n not in self.order
        ]
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            raise PluginError(f"plugin {self.pm.get_name(exc.plugin)!r}: {exc}") from exc
        self.collect()

    def _trace(self, plugin: object) -> None:
        """Wrap each hook implementation of ``plugin`` to log its name, plugin and duration."""
        for caller in self.pm.get_hookcallers(plugin) or []:
            for impl in caller.get_hookimpls():
                if impl.plugin is plugin and not getattr(impl.function, "_guanxi_traced", False):
                    impl.function = _traced(caller.name, impl.plugin_name, impl.function)  # type: ignore[misc]

    def uninstall(self, name: str) -> None:
        """Remove an installed plugin (used by tests that register a plugin for a while)."""
        self.pm.unregister(name=name)
        self.manifests.pop(name, None)
        self.modules.pop(name, None)
        self.order = [n for n in self.order if n != name]
        self.collect()

    @staticmethod
    def _builtin_modules() -> list[ModuleType]:
        import plugins

        return [
            importlib.import_module(f"plugins.{info.name}")
            for info in pkgutil.iter_modules(plugins.__path__)
            if info.ispkg
        ]

    def collect(self) -> None:
        """Gather every plugin's declarations into :attr:`registry`, tagged by plugin."""
        from core import fields

        reg = Registry()
        for plugin, item in self._declared("guanxi_extension_fields"):
            reg.fields.append(fields.attach(item, plugin))
        keys = [f.key for f in reg.fields]
        if len(keys) != len(set(keys)):
            dupes = sorted({k for k in keys if keys.count(k) > 1})
            raise PluginError(f"extension field declared twice: {', '.join(dupes)}")
        reg.choices = [replace(item, plugin=p) for p, item in self._declared("guanxi_choices")]
        for attr, hook in (
            ("workflows", "guanxi_workflows"),
            ("obligation_kinds", "guanxi_obligation_kinds"),
            ("jobs", "guanxi_jobs"),
            ("reports", "guanxi_reports"),
            ("permissions", "guanxi_permissions"),
            ("consent_purposes", "guanxi_consent_purposes"),
        ):
            target = getattr(reg, attr)
            for plugin, item in self._declared(hook):
                if item.name in target:
                    raise PluginError(
                        f"plugin {plugin!r} declares {attr[:-1]} {item.name!r}, "
                        f"already declared by {target[item.name].plugin!r}"
                    )
                target[item.name] = replace(item, plugin=plugin)
        for plugin, bp in self._declared("guanxi_blueprints"):
            reg.blueprints.append((plugin, bp))
            reg.blueprint_owner[bp.name] = plugin
        from core.api.resources import Resource

        for plugin, resource in self._declared("guanxi_api_resources"):
            if resource.name in reg.api_resources:
                raise PluginError(
                    f"plugin {plugin!r} declares API resource {resource.name!r}, "
                    f"already declared by {reg.api_resources[resource.name].plugin!r}"
                )
            if resource.searchable and type(resource).search is Resource.search:
                raise PluginError(
                    f"plugin {plugin!r}: API resource {resource.name!r} is searchable "
                    "but does not define search(q)"
                )
            resource.plugin = plugin
            reg.api_resources[resource.name] = resource
        self.registry = reg
        self._relays.clear()

    def _declared(self, hook_name: str) -> list[tuple[str, Any]]:
        """Call a declaration hook on every plugin, keeping who returned what."""
        out: list[tuple[str, Any]] = []
        hook = getattr(self.pm.hook, hook_name)
        for impl in hook.get_hookimpls():
            name = self.pm.get_name(impl.plugin)
            try:
                items = impl.function() or []
            except Exception as exc:
                raise PluginError(f"plugin {name!r}: {hook_name}() failed: {exc}") from exc
            out.extend((name, item) for item in items)
        order = {n: i for i, n in enumerate([CORE, *self.order])}
        out.sort(key=lambda pair: order.get(pair[0], len(order)))
        return out

    # -- per company -----------------------------------------------------------------------

    def enabled(self, company_id: int) -> frozenset[str]:
        """Names of the plugins ``company_id`` has enabled (installed ones only), plus ``core``."""
        from core.models import CompanyPlugin
        from core.tenancy import unscoped

        # No autoflush: rows pending in the caller's company must not be flushed unscoped.
        with unscoped(), db.session.no_autoflush:
            names = db.session.scalars(
                select(CompanyPlugin.plugin).where(
                    CompanyPlugin.company_id == company_id, CompanyPlugin.enabled.is_(True)
                )
            ).all()
        return frozenset(n for n in names if n in self.manifests) | {CORE}

    def hooks(self, enabled: frozenset[str]) -> SimpleNamespace:
        """A relay whose attributes call each hook on the ``enabled`` plugins only."""
        relay = self._relays.get(enabled)
        if relay is None:
            off = [self.pm.get_plugin(n) for n in self.manifests if n not in enabled]
            relay = SimpleNamespace(
                **{
                    name: self.pm.subset_hook_caller(name, remove_plugins=off)
                    for name in self._hook_names
                }
            )
            self._relays[enabled] = relay
        return relay

    @cached_property
    def _hook_names(self) -> list[str]:
        return [n for n in dir(hookspecs) if n.startswith("guanxi_")]

    def enable(self, company: Any, name: str, user_id: int | None = None) -> list[str]:
        """Enable ``name`` and what it depends on for ``company``; returns what was switched on.

        Runs ``guanxi_plugin_enabled`` on each plugin switched on and writes the audit log.
        The caller commits.
        """
        from core import audit
        from core.models import CompanyPlugin
        from core.tenancy import company_scope

        if name not in self.manifests:
            raise PluginError(self.incompatible.get(name) or f"no plugin named {name!r}")
        with company_scope(company.id):
            already = self.enabled(company.id)
            wanted = [n for n in [*self.requirements(name), name] if n not in already]
            rows = {
                r.plugin: r
                for r in db.session.scalars(
                    select(CompanyPlugin).where(CompanyPlugin.plugin.in_(wanted))
                )
            }
            for plugin in wanted:
                row = rows.get(plugin) or CompanyPlugin(plugin=plugin, company_id=company.id)
                row.enabled = True
                db.session.add(row)
                audit.record("enable", "plugin", None, {"plugin": plugin}, user_id=user_id)
            db.session.flush()
            for plugin in wanted:
                self._call_one(plugin, "guanxi_plugin_enabled", company=company)
        return wanted

    def disable(self, company: Any, name: str, user_id: int | None = None) -> None:
        """Disable ``name`` for ``company``; refused while an enabled plugin depends on it.

        Nothing is deleted: the plugin's rows wait, untouched, for a later enable.
        """
        from core import audit
        from core.models import CompanyPlugin
        from core.tenancy import company_scope

        with company_scope(company.id):
            enabled = self.enabled(company.id)
            if name not in enabled:
                raise PluginError(f"plugin {name!r} is not enabled for {company.code}")
            blocking = [d for d in self.dependents(name) if d in enabled]
            if blocking:
                raise PluginError(
                    f"plugin {name!r} cannot be disabled for {company.code}: "
                    f"{', '.join(blocking)} depend(s) on it; disable them first"
                )
            row = db.session.scalars(select(CompanyPlugin).filter_by(plugin=name)).one()
            row.enabled = False
            audit.record("disable", "plugin", None, {"plugin": name}, user_id=user_id)
            db.session.flush()
            self._call_one(name, "guanxi_plugin_disabled", company=company)

    def _call_one(self, plugin: str, hook_name: str, **kwargs: Any) -> None:
        others = [p for n, p in self.pm.list_name_plugin() if n != plugin]
        self.pm.subset_hook_caller(hook_name, remove_plugins=others)(**kwargs)

    def dependents(self, name: str) -> list[str]:
        """Installed plugins that depend on ``name`` directly or indirectly."""
        out: list[str] = []
        for other in self.order:
            if name in self.requirements(other) and other != name:
                out.append(other)
        return out

    def requirements(self, name: str) -> list[str]:
        """``name``'s dependencies, transitively, in enabling order (deepest first)."""
        seen: list[str] = []

        def walk(n: str) -> None:
            for dep in self.manifests[n].depends:
                if dep not in seen:
                    walk(dep)
                    seen.append(dep)

        walk(name)
        return seen

    def migration_dirs(self) -> list[str]:
        """The Alembic version folders of every installed plugin that has one."""
        dirs = []
        for name in self.order:
            manifest, module = self.manifests[name], self.modules[name]
            if manifest.migrations:
                path = Path(manifest.migrations)
            elif module.__file__ and module.__file__.endswith("__init__.py"):
                path = Path(module.__file__).parent / "migrations" / "versions"
            else:
                continue
            if path.is_dir():
                dirs.append(str(path))
        return dirs


def _traced(hook: str, plugin: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` logging ``hook plugin duration`` to ``guanxi.hooks`` on each call."""

    def call(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        outcome = "ok"
        try:
            return function(*args, **kwargs)
        except BaseException as exc:
            outcome = f"raised {type(exc).__name__}"
            raise
        finally:
            ms = (time.perf_counter() - started) * 1000
            trace_log.info("hook %s plugin=%s %.2f ms %s", hook, plugin, ms, outcome)

    call._guanxi_traced = True  # type: ignore[attr-defined]
    call.__wrapped__ = function  # type: ignore[attr-defined]
    return call


def _topological_order(manifests: dict[str, Manifest], incompatible: dict[str, str]) -> list[str]:
    """Order plugins so each comes after what it depends on; refuse gaps and cycles."""
    for name, manifest in manifests.items():
        for dep in manifest.depends:
            if dep in incompatible:
                raise PluginError(f"plugin {name!r} depends on {dep!r}, which is incompatible")
            if dep not in manifests:
                raise PluginError(f"plugin {name!r} depends on {dep!r}, which is not installed")
    order: list[str] = []
    state: dict[str, str] = {}

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            cycle = path[path.index(name) :] + [name]
            raise PluginError(f"plugin dependency cycle: {' -> '.join(cycle)}")
        state[name] = "visiting"
        for dep in manifests[name].depends:
            visit(dep, [*path, name])
        state[name] = "done"
        order.append(name)

    for name in sorted(manifests):
        visit(name, [])
    return order
