"""The hooks a Guanxi plugin can implement.

Two families, combined by explicit rules and never by pluggy's call order:

* **Declarations** (``guanxi_extension_fields``, ``guanxi_choices``, ``guanxi_workflows``,
  ``guanxi_obligation_kinds``, ``guanxi_jobs``, ``guanxi_blueprints``,
  ``guanxi_api_resources``, ``guanxi_reports``, ``guanxi_permissions``): called once at start for
  every installed plugin; each returns a list, the lists are concatenated and every item is
  tagged with the plugin that declared it. What a company sees is then narrowed to the plugins it
  enabled, so a disabled plugin's fields, choices, workflows, clocks, jobs and pages vanish for
  that company while its tables and rows stay.
* **Events** (``guanxi_after_transition``, ``guanxi_interaction_saved``, ``guanxi_demo_data``,
  ``guanxi_plugin_enabled``, ``guanxi_plugin_disabled``, ``guanxi_menu_items``,
  ``guanxi_dashboard_widgets``, ``guanxi_record_panels``, ``guanxi_timeline``): called with
  the current company's enabled plugins only. Results, where there are any, are collected into
  a list.

Every hook here is listed with its exact signature in ``docs/plugins.md``; a test keeps the two
in step. Hooks evolve by adding arguments only, so an implementation may accept fewer arguments
than the spec names (pluggy passes just the ones it asks for).
"""

from __future__ import annotations

from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("guanxi")


@hookspec
def guanxi_extension_fields() -> list[Any]:
    """Declare extension fields on core models.

    Return a list of :class:`core.fields.Field`. Each field is stored in the plugin's side table
    ``<plugin>_<model>_ext`` and appears, for companies that enabled the plugin, in forms, record
    JSON, list filters and CSV import/export under the key ``<plugin>__<name>``.
    Combination: lists are concatenated; two fields with one key stop the start-up.
    """


@hookspec
def guanxi_choices() -> list[Any]:
    """Add values to core choice lists.

    Return a list of :class:`core.choices.Choice`, e.g. a ``customer_kind`` "hospital" or a
    ``channel_type`` "broker". Lists: ``customer_kind``, ``channel_type``, ``ticket_type``,
    ``ticket_priority``, ``intake_channel``, ``contact_channel`` (the channels consent is
    recorded for), ``interaction_kind``, ``decision_role``.
    Combination: concatenated after the core's own values, in plugin load order.
    """


@hookspec
def guanxi_workflows() -> list[Any]:
    """Declare workflows (states, transitions, roles, guards, required inputs).

    Return a list of :class:`core.workflow.Workflow`. The engine in :mod:`core.workflow` runs
    them all. Combination: concatenated; a duplicate workflow name stops the start-up.
    """


@hookspec
def guanxi_obligation_kinds() -> list[Any]:
    """Declare kinds of obligations with deadlines (SLAs, quotas, expiry warnings).

    Return a list of :class:`core.clocks.ObligationKind`. Combination: concatenated; a
    duplicate kind name stops the start-up.
    """


@hookspec
def guanxi_jobs() -> list[Any]:
    """Declare scheduled jobs.

    Return a list of :class:`core.jobs.Job`. ``guanxi jobs run-due`` runs each due job once per
    period and company (for companies that enabled the plugin). Combination: concatenated; a
    duplicate job name stops the start-up.
    """


@hookspec
def guanxi_blueprints() -> list[Any]:
    """Contribute Flask blueprints (pages and API endpoints).

    Return a list of :class:`flask.Blueprint`. They are registered for every installed plugin;
    a request to a blueprint of a plugin the current company has not enabled answers 404.
    Combination: concatenated.
    """


@hookspec
def guanxi_api_resources() -> list[Any]:
    """Serve the plugin's records in the JSON API under ``/api/v1/<name>``.

    Return a list of :class:`core.api.Resource` instances (subclasses declaring ``name``,
    ``model`` and what the list filters and sorts by). Each gets list, read, create, update,
    bulk upsert and workflow transitions, and its place in the OpenAPI document, for the
    companies that enabled the plugin (404 for the others).
    Combination: concatenated; a duplicate resource name stops the start-up.
    """


@hookspec
def guanxi_reports() -> list[Any]:
    """Declare reports: an aggregate query drawn as a chart and a table, with drill-down.

    Return a list of :class:`core.reports.Report`. Each appears under ``/reports/<name>`` for
    the companies that enabled the plugin (404 for the others), to the roles it names (every
    member when it names none), with CSV/XLSX download for roles holding ``export``.
    Combination: concatenated; a duplicate report name stops the start-up.
    """


@hookspec
def guanxi_permissions() -> list[Any]:
    """Declare permissions: named rights that roles bundle per company.

    Return a list of :class:`core.permissions.Permission` (name, label, label_zh, description,
    the ``roles`` holding it by default). Check one with ``has_permission(name)`` (in templates
    too) or refuse with ``abort_without(name)``, whose 403 names the permission. A company
    changes who holds it with its setting ``permissions``; the admin page
    ``/settings/permissions`` lists it with each member's grant. Start a plugin's names with
    the plugin's name (``insurance.commission_approve``).
    Combination: concatenated; a duplicate permission name stops the start-up.
    """


@hookspec
def guanxi_consent_purposes() -> list[Any]:
    """Declare what the plugin contacts customers for, so consent can be recorded for it.

    Return a list of :class:`core.consent.Purpose` (name, label, label_zh, ``needs_consent``).
    A purpose that ``needs_consent`` reaches only customers who agreed (marketing: PIPL asks for
    consent first); one that does not reaches every customer except those who refused
    (surveys after a service). Check with :func:`core.consent.allowed`, a SQL clause for the
    plugin's ``INSERT … SELECT``. The customer page shows and records the answers for the
    purposes of the company's enabled plugins, per ``contact_channel``.
    Combination: concatenated; a duplicate purpose name stops the start-up.
    """


@hookspec
def guanxi_menu_items(company: Any) -> list[Any]:
    """Entries for the main navigation of ``company``.

    Return a list of :class:`core.web.helpers.MenuItem`. Called for enabled plugins only.
    Combination: concatenated, then sorted by each item's ``order``.
    """


@hookspec
def guanxi_dashboard_widgets(company: Any, user: Any) -> list[Any]:
    """Boxes for ``user``'s dashboard in ``company``.

    Return a list of :class:`core.web.panels.Panel`; each ``render()`` is called only when the
    dashboard is drawn. Called for enabled plugins only.
    Combination: concatenated with the core's widgets, then sorted by ``order``.
    """


@hookspec
def guanxi_record_panels(subject_type: str, subject: Any) -> list[Any]:
    """Boxes for the detail page of ``subject`` (``subject_type`` is its table name, e.g.
    ``"customer"`` or ``"service_ticket"``).

    Return a list of :class:`core.web.panels.Panel` (or an empty list for records the plugin has
    nothing to say about). Called for enabled plugins only.
    Combination: concatenated, then sorted by ``order``.
    """


@hookspec
def guanxi_timeline(customer: Any) -> list[Any]:
    """The plugin's records about ``customer``, for the customer's timeline.

    Return a list of :class:`core.web.panels.TimelineEntry` (one query per plugin, not one per
    record). Called for enabled plugins only.
    Combination: merged with the core's interactions, tickets and transitions, newest first.
    """


@hookspec
def guanxi_after_transition(
    subject: Any,
    workflow: Any,
    transition: Any,
    from_state: str,
    to_state: str,
    user: Any,
    at: Any,
    inputs: Any,
) -> None:
    """React after ``subject`` moved from ``from_state`` to ``to_state`` by ``transition``.

    ``at`` is the aware UTC moment of the transition (now, unless an import or the demo replays
    a past one); stamp times from it rather than from the clock. ``inputs`` is the mapping of
    inputs the transition was given (a comment, a lost reason…), to keep on the record.

    Called inside the transaction of the transition, after the new state and the history row
    were flushed; raising aborts the transition. Called for enabled plugins only.
    """


@hookspec
def guanxi_interaction_saved(interaction: Any, created: bool) -> None:
    """React after an interaction was logged (``created``) or changed through the core's path.

    Called by :func:`core.interactions.log`, :func:`core.interactions.update` and
    :func:`core.followup.record_followup` (after a bad score reopened the ticket) -- so by the
    interaction form, the JSON API and every plugin that logs through them -- inside the
    transaction, after the row was flushed (it has its id); extension fields the caller saves
    afterwards are not there yet. Raising aborts the save. Rows written in bulk (imports, the
    demo) do not pass here: a plugin that keeps totals should also reconcile them in a job.
    Called for enabled plugins only.
    """


@hookspec
def guanxi_demo_data(company: Any, fake: Any) -> None:
    """Add demo records to ``company`` (a new demo company; the plugin is enabled there).

    ``fake`` is a ``faker.Faker("zh_CN")`` seeded for repeatable data. Runs inside
    ``company_scope(company.id)``, in plugin dependency order.
    """


@hookspec
def guanxi_plugin_enabled(company: Any) -> None:
    """Called on the plugin just enabled for ``company`` (and only on it).

    Seed per-company defaults here (stages, tier schemes…). Must be idempotent: a plugin can be
    disabled and enabled again, and its earlier rows are still there.
    """


@hookspec
def guanxi_plugin_disabled(company: Any) -> None:
    """Called on the plugin just disabled for ``company`` (and only on it). Delete nothing."""


@hookspec
def guanxi_personal_data(customer: Any) -> list[Any]:
    """What the plugin holds about the person ``customer`` is, for their copy of their data
    (PIPL; :func:`core.privacy.export_person`): ``(section_name, rows)`` pairs, each row a
    ``dict`` of plain values (``{"insurance_policies": [...]}`` → ``[("insurance_policies",
    [{"number": …}, …])]``). Called for enabled plugins only.
    Combination: every plugin's sections are added to the core's (customer, contacts,
    interactions, tickets, comments); rows of a section two plugins name are concatenated.
    """


@hookspec
def guanxi_erase_personal_data(customer: Any) -> None:
    """Anonymise what the plugin holds that identifies the person ``customer`` is (names,
    phones, addresses, free texts, photos), keeping the rows that figures are computed from
    (:func:`core.privacy.erase_person`, inside its transaction, after the core's rows were
    anonymised; raising aborts the erasure). Called for enabled plugins only.
    """
