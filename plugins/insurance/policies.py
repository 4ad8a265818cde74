"""Insurance part: products, policies on the workflow engine, the sales order each issued
premium becomes, renewals and their notices (DOMAIN §6). See docs/insurance-policies.md.

Products (险种)
    A :class:`~plugins.insurance.models.Product` has a code unique in the company, a name, a
    class (choice ``insurance_product_class``: the licence classes of agents), the length of
    one term in months, and whether it is renewable and still sold (``active``). Managers keep
    them (:func:`save_product`).
Policies (保单)
    A :class:`~plugins.insurance.models.Policy` is one term of cover: the policyholder
    (投保人, a customer), the insured (被保险人) and the beneficiaries (受益人, with shares that
    add up to 100 when given) among the customer's contacts, the product, the writing agent and
    the channel of the sale (by default the agent's), the premium due ``frequency`` times a
    year and the annual premium it makes (:func:`annual_premium`), the start date and the end
    date the product's term gives (:func:`end_of_term`), the sum insured and the member of
    staff who looks after it. It is numbered per company and year of its application date
    (``P-2026-000001``) and can be changed only while it is an application or in underwriting.
The workflow ``insurance_policy``
    application → underwriting (``submit``) → issued (``issue``) or declined (``decline``, with
    a reason); issued → in force (``activate``; the daily job activates issued policies whose
    start date has come); in force → lapsed (``lapse``; the daily job lapses in-force policies
    30 days after their end date when no renewal was issued); issued or in force → cancelled
    (``cancel``, with a reason); in force (or lapsed) → renewed (``renew``, taken when the
    renewal policy is issued). Issuing, declining, activating, lapsing and cancelling are for
    administrators and managers (the underwriters). ``issue`` is refused when the writing
    agent's licence does not allow the sale (:func:`plugins.insurance.agents.licence_problem`),
    with the message at the ``agent_id`` field.
Orders from issued premiums
    Entering ``issued`` stamps ``issued_on`` and creates a sales order
    (:func:`plugins.sales.orders.create_order`): dated the issue day, for the policyholder,
    through the policy's channel, owned by its owner, one line "<product> 保费 <number>" of
    the annual premium at no cost, due on the start date (or after the company's payment terms
    when the start is not within a year after the issue). ``order_id`` keeps it, so customer
    value, revenue and channel reports include the premium. Cancelling a policy cancels its
    order when nothing was paid on it; a paid order stays as it is (refunds are outside
    Guanxi) and the cancellation's history says so.
Renewals (续保)
    :func:`prepare_renewal` makes the next term of an in-force policy of a renewable product:
    a new application with ``renewal_of_id``, ``policy_year`` one higher, the same product,
    parties, agent, channel, owner and premium, starting the day after the old one ends. When
    it is issued the old policy moves to ``renewed``. Issuing a policy of a renewable product
    starts the date-bound clock ``insurance.renewal`` (deadline its end date; notices 90, 60
    and 30 days before, to its owner; met when it is renewed); cancelling it removes the clock.

Pages, the API resources, reports, the customer panel and timeline are in
:mod:`plugins.insurance.web_policies`.
"""

from __future__ import annotations

import calendar
import random
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import exists, func, select
from sqlalchemy.orm import aliased

from core import audit, clocks, workflow
from core.choices import options
from core.extend import (
    Choice,
    Job,
    MenuItem,
    ObligationKind,
    State,
    Transition,
    Workflow,
    daily,
    db,
    utcnow,
)
from core.models import Channel, Contact, Customer, Membership, User, WorkflowHistory
from core.reports import today as company_today
from core.reports import zone
from plugins.insurance import agents
from plugins.insurance.blueprint import MANAGERS
from plugins.insurance.models import Agent, Policy, PolicyParty, Product
from plugins.sales import orders
from plugins.sales.models import Order

WORKFLOW = "insurance_policy"
CLOCK = "insurance.renewal"
SUBJECT = Policy.__tablename__
PRODUCT_CLASS_LIST = "insurance_product_class"
FREQUENCY_LIST = "insurance_frequency"

#: ``(value, label, label_zh, payments a year)``.
FREQUENCIES: tuple[tuple[str, str, str, int], ...] = (
    ("annual", "Annual", "年缴", 1),
    ("semiannual", "Semiannual", "半年缴", 2),
    ("quarterly", "Quarterly", "季缴", 4),
    ("monthly", "Monthly", "月缴", 12),
    ("single", "Single premium", "趸缴", 1),
)
PAYMENTS = {value: n for value, _l, _z, n in FREQUENCIES}

#: States in which a policy's data may still be changed.
EDITABLE = ("application", "underwriting")
#: States of a policy that was issued and not cancelled: it counts as business written.
WRITTEN = ("issued", "in_force", "renewed", "lapsed")
#: States from which the old policy moves to ``renewed`` when its renewal is issued.
RENEWABLE_FROM = ("in_force", "lapsed")
#: Days after the end date before an unrenewed in-force policy lapses.
GRACE_DAYS = 30
#: Days before the end date at which the renewal notices go out.
NOTICES = (90, 60, 30)

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
MAX_MONEY = Decimal("999999999999.99")
MAX_SUM_INSURED = Decimal("99999999999999.99")
MAX_TERM_MONTHS = 1200
MAX_PARTIES = 20
EARLIEST = date(2000, 1, 1)
#: How far ahead of its application a policy may start.
MAX_LEAD = timedelta(days=366)


def money(value: Any) -> Decimal:
    """A number (or a SUM, which SQLite may give as a float) as a 2-place Decimal."""
    if value is None:
        return ZERO
    return Decimal(str(value)).quantize(CENT, ROUND_HALF_UP)


def today() -> date:
    """Today in the company's time zone."""
    return company_today()


def local_day(moment: datetime) -> date:
    """The company-local date of an aware moment."""
    return moment.astimezone(zone()).date()


def local_noon(day: date) -> datetime:
    """Noon of ``day`` in the company's time zone, as aware UTC."""
    return datetime.combine(day, time(12), zone()).astimezone(UTC)


# -- declarations ---------------------------------------------------------------------------------


def choices() -> list[Choice]:
    """The payment frequencies (list ``insurance_frequency``)."""
    return [Choice(FREQUENCY_LIST, value, label, zh) for value, label, zh, _n in FREQUENCIES]


def frequency_label(value: str | None) -> str:
    from core.i18n import pick

    for key, label, zh, _n in FREQUENCIES:
        if key == value:
            return pick(label, zh)
    return value or ""


def class_label(value: str | None) -> str:
    """The label of a product class."""
    from core.choices import label

    return label(PRODUCT_CLASS_LIST, value) if value else ""


def _licence_guard(policy: Policy, inputs: Mapping[str, Any]) -> tuple[str, str] | None:
    """``issue``: the writing agent's licence must allow selling the product's class on the
    issue day (today, or ``inputs["on"]`` when a caller replays a past issue)."""
    day = inputs.get("on")
    if not isinstance(day, date):
        day = today()
    product = db.session.get(Product, policy.product_id)
    agent = db.session.get(Agent, policy.agent_id) if policy.agent_id else None
    problem = agents.licence_problem(agent, product.product_class if product else "", day)
    return ("agent_id", problem) if problem else None


def _started_guard(policy: Policy, inputs: Mapping[str, Any]) -> str | None:
    """``activate``: not before the start date."""
    day = inputs.get("on")
    if not isinstance(day, date):
        day = today()
    if policy.start_on > day:
        return _(
            "The policy starts on %(day)s; it comes into force on that day.",
            day=policy.start_on.isoformat(),
        )
    return None


def issued_renewal_of(policy_id: int) -> Policy | None:
    """The issued renewal of policy ``policy_id`` (issued and not cancelled), if any."""
    return db.session.scalar(
        select(Policy)
        .where(Policy.renewal_of_id == policy_id, Policy.state.in_(WRITTEN))
        .order_by(Policy.id)
        .limit(1)
    )


def _renewed_guard(policy: Policy, inputs: Mapping[str, Any]) -> str | None:
    """``renew``: only once a renewal of the policy has been issued."""
    if issued_renewal_of(policy.id) is None:
        return _("No renewal of this policy has been issued yet.")
    return None


POLICY_WORKFLOW = Workflow(
    name=WORKFLOW,
    model=Policy,
    label="Insurance policy",
    label_zh="保单",
    initial="application",
    states=(
        State("application", "Application", "投保申请"),
        State("underwriting", "Underwriting", "核保中"),
        State("issued", "Issued", "已承保"),
        State("declined", "Declined", "已拒保", "cancelled"),
        State("in_force", "In force", "有效"),
        State("lapsed", "Lapsed", "已失效", "cancelled"),
        State("renewed", "Renewed", "已续保", "done"),
        State("cancelled", "Cancelled", "已退保", "cancelled"),
    ),
    transitions=(
        Transition(
            "submit", ("application",), "underwriting", "Submit for underwriting", "提交核保"
        ),
        Transition(
            "issue",
            ("underwriting",),
            "issued",
            "Issue",
            "承保出单",
            roles=MANAGERS,
            guard=_licence_guard,
        ),
        Transition(
            "decline",
            ("underwriting",),
            "declined",
            "Decline",
            "拒保",
            roles=MANAGERS,
            inputs=("comment",),
        ),
        Transition(
            "activate",
            ("issued",),
            "in_force",
            "Put in force",
            "生效",
            roles=MANAGERS,
            guard=_started_guard,
        ),
        Transition("lapse", ("in_force",), "lapsed", "Lapse", "失效", roles=MANAGERS),
        Transition(
            "cancel",
            ("issued", "in_force"),
            "cancelled",
            "Cancel policy",
            "退保",
            roles=MANAGERS,
            inputs=("comment",),
        ),
        Transition(
            "renew",
            RENEWABLE_FROM,
            "renewed",
            "Mark renewed",
            "已续保",
            roles=MANAGERS,
            guard=_renewed_guard,
        ),
    ),
)
#: Transitions the policy page offers as buttons (``renew`` is taken by issuing the renewal).
MANUAL = ("submit", "issue", "decline", "activate", "lapse", "cancel")
STATE_NAMES = tuple(s.name for s in POLICY_WORKFLOW.states)


def workflows() -> list[Workflow]:
    return [POLICY_WORKFLOW]


def state_label(state: str | None) -> str:
    """The policy state's label in the user's language."""
    return POLICY_WORKFLOW.state(state).text if state in STATE_NAMES else (state or "")


def _renewal_deadline(policy: Policy) -> date | None:
    """The renewal clock's deadline: the end date, while the policy stands (not declined or
    cancelled)."""
    if policy.state in ("declined", "cancelled", "application", "underwriting"):
        return None
    return policy.end_on


RENEWAL_CLOCK = ObligationKind(
    CLOCK,
    Policy,
    None,
    "Renewal due",
    "续保到期",
    deadline=_renewal_deadline,
    notices=NOTICES,
    met_states=("renewed",),
    assignee="owner_id",
    link="/insurance/policies/{id}",
    auto_start=False,
)


def obligation_kinds() -> list[ObligationKind]:
    return [RENEWAL_CLOCK]


def menu_items(company: Any) -> list[MenuItem]:
    return [
        MenuItem("insurance.policies", "Policies", "保单", 26, group="Insurance", group_zh="保险")
    ]


# -- dates and amounts ----------------------------------------------------------------------------


def add_months(day: date, months: int) -> date:
    """``day`` moved by ``months`` calendar months (the 31st becomes the month's last day)."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def end_of_term(start_on: date, term_months: int) -> date:
    """The last day of cover of a term of ``term_months`` from ``start_on``: start plus the
    months, less one day (2026-03-01 for 12 months: 2027-02-28)."""
    return add_months(start_on, term_months) - timedelta(days=1)


def annual_premium(premium: Decimal, frequency: str) -> Decimal:
    """The premium of a year: the premium times the payments a year (a single premium: the
    premium)."""
    return money(Decimal(premium) * PAYMENTS.get(frequency, 1))


def next_number(applied_on: date) -> str:
    """The company's next free policy number for the year of ``applied_on``:
    ``P-2026-000001``."""
    prefix = f"P-{applied_on.year}-"
    last = db.session.scalar(
        select(Policy.number)
        .where(Policy.number.like(prefix + "%"))
        .order_by(func.length(Policy.number).desc(), Policy.number.desc())
        .limit(1)
    )
    tail = (last or "")[len(prefix) :]
    n = int(tail) + 1 if tail.isascii() and tail.isdigit() else 1
    return f"{prefix}{n:06d}"


def _places_ok(value: Decimal) -> bool:
    return value.is_finite() and value.as_tuple().exponent >= -2  # type: ignore[operator]


# -- products -------------------------------------------------------------------------------------


@dataclass
class ProductInput:
    """What a form or an API request gives for a product."""

    code: str
    name: str
    product_class: str
    term_months: int = 12
    renewable: bool = True
    active: bool = True


def product_problems(data: ProductInput, product: Product | None = None) -> dict[str, str]:
    """What is wrong with saving ``data`` (as a new product or over ``product``), by field."""
    out: dict[str, str] = {}
    code = (data.code or "").strip()
    if not code or len(code) > 40:
        out["code"] = _("Enter a code of at most 40 characters.")
    else:
        taken = select(Product.id).where(Product.code == code)
        if product is not None and product.id is not None:
            taken = taken.where(Product.id != product.id)
        if db.session.scalar(taken) is not None:
            out["code"] = _("Another product already has the code %(code)s.", code=code)
    if not (data.name or "").strip() or len(data.name) > 200:
        out["name"] = _("Enter a name of at most 200 characters.")
    if data.product_class not in {v for v, _l in options(PRODUCT_CLASS_LIST)}:
        out["product_class"] = _("Choose a product class from the list.")
    if not isinstance(data.term_months, int) or not 1 <= data.term_months <= MAX_TERM_MONTHS:
        out["term_months"] = _("A term of 1 to %(n)s months.", n=MAX_TERM_MONTHS)
    return out


def save_product(
    data: ProductInput, user: Any, product: Product | None = None, via: str = "web"
) -> Product:
    """Create or update a product from checked ``data``; audited. The caller commits."""
    created = product is None
    if product is None:
        product = Product()
        db.session.add(product)
    product.code = data.code.strip()
    product.name = data.name.strip()
    product.product_class = data.product_class
    product.term_months = data.term_months
    product.renewable = bool(data.renewable)
    product.active = bool(data.active)
    db.session.flush()
    audit.record(
        "create" if created else "update",
        Product.__tablename__,
        product.id,
        {"code": product.code, "via": via},
        user_id=getattr(user, "id", None),
    )
    return product


def product_options(include: int | None = None) -> list[tuple[int, str]]:
    """``(id, "code name")`` of the company's active products (and ``include`` even when it is
    no longer active), by code."""
    cond = Product.active.is_(True)
    if include is not None:
        cond = cond | (Product.id == include)
    rows = db.session.execute(
        select(Product.id, Product.code, Product.name).where(cond).order_by(Product.code)
    )
    return [(r.id, f"{r.code} {r.name}") for r in rows]


def product_options_all() -> list[tuple[int, str]]:
    """``(id, "code name")`` of every product of the company, sold or not, by code."""
    rows = db.session.execute(select(Product.id, Product.code, Product.name).order_by(Product.code))
    return [(r.id, f"{r.code} {r.name}") for r in rows]


# -- saving policies ------------------------------------------------------------------------------


@dataclass
class PolicyInput:
    """What a form or an API request gives for a policy. ``insured`` are contact ids;
    ``beneficiaries`` ``(contact id, share % or None)``. ``channel_id`` ``None`` means the
    agent's channel (else the customer's); ``owner_id`` ``None`` the agent's login, else the
    customer's owner, else the user saving; ``applied_on`` ``None`` today."""

    customer_id: int
    product_id: int
    premium: Decimal
    start_on: date
    frequency: str = "annual"
    agent_id: int | None = None
    channel_id: int | None = None
    owner_id: int | None = None
    sum_insured: Decimal | None = None
    applied_on: date | None = None
    insured: list[int] = field(default_factory=list)
    beneficiaries: list[tuple[int, Decimal | None]] = field(default_factory=list)
    notes: str | None = None


def _exists(model: type, row_id: int) -> bool:
    return db.session.scalar(select(model.id).where(model.id == row_id)) is not None


def _is_member(user_id: int) -> bool:
    return (
        db.session.scalar(select(Membership.user_id).where(Membership.user_id == user_id))
        is not None
    )


def party_problems(data: PolicyInput) -> dict[str, str]:
    """The insured and beneficiaries: contacts of the policyholder, each once per role; shares
    all given or none, each above 0, adding up to exactly 100."""
    out: dict[str, str] = {}
    wanted = set(data.insured) | {c for c, _s in data.beneficiaries}
    if len(data.insured) + len(data.beneficiaries) > MAX_PARTIES:
        out["insured"] = _("At most %(n)s insured and beneficiaries.", n=MAX_PARTIES)
        return out
    if wanted:
        theirs = set(
            db.session.scalars(
                select(Contact.id).where(
                    Contact.id.in_([c for c in wanted if 0 < c <= 2**31 - 1]),
                    Contact.customer_id == data.customer_id,
                )
            )
        )
        if set(data.insured) - theirs:
            out["insured"] = _("Choose the insured among the policyholder's contacts.")
        if {c for c, _s in data.beneficiaries} - theirs:
            out["beneficiaries"] = _("Choose the beneficiaries among the policyholder's contacts.")
    if len(set(data.insured)) != len(data.insured):
        out.setdefault("insured", _("Each insured person once."))
    ids = [c for c, _s in data.beneficiaries]
    if len(set(ids)) != len(ids):
        out.setdefault("beneficiaries", _("Each beneficiary once."))
    shares = [s for _c, s in data.beneficiaries]
    given = [s for s in shares if s is not None]
    if given and "beneficiaries" not in out:
        if len(given) != len(shares):
            out["beneficiaries"] = _("Give every beneficiary a share, or none of them.")
        elif any(not _places_ok(s) or not ZERO < s <= 100 for s in given):
            out["beneficiaries"] = _("Shares are per cent above 0, with at most 2 decimals.")
        elif sum(given, ZERO) != 100:
            out["beneficiaries"] = _(
                "The beneficiaries' shares add up to %(total)s%%, not 100%%.",
                total=f"{sum(given, ZERO).normalize():f}",
            )
    return out


def problems(data: PolicyInput, policy: Policy | None = None) -> dict[str, str]:
    """What is wrong with saving ``data`` (as a new policy, or over ``policy``), by field."""
    out: dict[str, str] = {}
    if policy is not None and policy.state not in EDITABLE:
        out["state"] = _(
            "Only applications and policies in underwriting can be changed; this one is %(state)s.",
            state=state_label(policy.state),
        )
    if policy is not None and data.customer_id != policy.customer_id:
        out["customer_id"] = _("The policyholder is set when the policy is created.")
    product = db.session.get(Product, data.product_id) if 0 < data.product_id <= 2**31 - 1 else None
    if product is None:
        out["product_id"] = _("Choose a product of this company.")
    elif not product.active and (policy is None or policy.product_id != product.id):
        out["product_id"] = _("The product %(code)s is no longer sold.", code=product.code)
    if data.frequency not in PAYMENTS:
        out["frequency"] = _("Choose a payment frequency from the list.")
    premium = data.premium
    if premium is None or not (_places_ok(premium) and ZERO < premium <= MAX_MONEY):
        out["premium"] = _("Enter a premium above zero with at most 2 decimals.")
    elif data.frequency in PAYMENTS and annual_premium(premium, data.frequency) > MAX_MONEY:
        out["premium"] = _("The annual premium is too large.")
    if data.sum_insured is not None and not (
        _places_ok(data.sum_insured) and ZERO <= data.sum_insured <= MAX_SUM_INSURED
    ):
        out["sum_insured"] = _("Enter the sum insured as an amount from 0 with 2 decimals.")
    applied = data.applied_on or (policy.applied_on if policy is not None else today())
    if applied > today():
        out["applied_on"] = _("The application date cannot be in the future.")
    elif applied < EARLIEST:
        out["applied_on"] = _("Enter a date from 2000 on.")
    if data.start_on is None:
        out["start_on"] = _("Enter the start date.")
    elif data.start_on < applied and (policy is None or policy.renewal_of_id is None):
        out["start_on"] = _("The start date cannot be before the application date.")
    elif data.start_on > applied + MAX_LEAD:
        out["start_on"] = _("The policy must start within a year of its application.")
    elif product is not None and end_of_term(data.start_on, product.term_months) > date(2199, 1, 1):
        out["start_on"] = _("The policy would end too far in the future.")
    if data.agent_id is not None and not _exists(Agent, data.agent_id):
        out["agent_id"] = _("Choose an agent of this company.")
    if data.channel_id is not None and not _exists(Channel, data.channel_id):
        out["channel_id"] = _("Choose a channel of this company.")
    if data.owner_id is not None and not _is_member(data.owner_id):
        out["owner_id"] = _("Choose a member of this company.")
    if data.notes is not None and len(data.notes) > 2000:
        out["notes"] = _("At most 2000 characters.")
    for key, message in party_problems(data).items():
        out.setdefault(key, message)
    return out


def _agent_defaults(agent_id: int | None) -> tuple[int | None, int | None]:
    """``(channel id, login user id)`` of an agent."""
    if agent_id is None:
        return None, None
    row = db.session.execute(
        select(Agent.channel_id, Agent.user_id).where(Agent.id == agent_id)
    ).first()
    return (row.channel_id, row.user_id) if row else (None, None)


def _apply(policy: Policy, data: PolicyInput, customer: Customer, user: Any) -> None:
    product = db.session.get(Product, data.product_id)
    agent_channel, agent_user = _agent_defaults(data.agent_id)
    policy.product_id = product.id
    policy.agent_id = data.agent_id
    policy.channel_id = data.channel_id or agent_channel or customer.channel_id
    owner = data.owner_id
    if owner is None:
        owner = next(
            (u for u in (agent_user, customer.owner_id) if u is not None and _is_member(u)),
            getattr(user, "id", None),
        )
    policy.owner_id = owner
    policy.premium = money(data.premium)
    policy.frequency = data.frequency
    policy.annual_premium = annual_premium(data.premium, data.frequency)
    policy.sum_insured = money(data.sum_insured) if data.sum_insured is not None else None
    policy.start_on = data.start_on
    policy.end_on = end_of_term(data.start_on, product.term_months)
    if data.applied_on is not None or policy.applied_on is None:
        policy.applied_on = data.applied_on or today()
    policy.notes = (data.notes or "").strip() or None
    parties = [PolicyParty(contact_id=c, role="insured") for c in data.insured]
    parties += [
        PolicyParty(contact_id=c, role="beneficiary", share=money(s) if s is not None else None)
        for c, s in data.beneficiaries
    ]
    current = {(p.contact_id, p.role): p for p in policy.parties}
    keep = []
    for party in parties:
        found = current.get((party.contact_id, party.role))
        if found is not None:
            found.share = party.share
            keep.append(found)
        else:
            keep.append(party)
    policy.parties = keep


def create_policy(
    data: PolicyInput,
    user: Any,
    *,
    at: datetime | None = None,
    number: str | None = None,
    renewal_of: Policy | None = None,
    via: str = "web",
) -> Policy:
    """Create a policy in ``application`` from checked ``data`` (see :func:`problems`); the
    caller commits."""
    customer = db.session.get(Customer, data.customer_id)
    policy = Policy(
        customer_id=customer.id,
        state="application",
        created_at=at or utcnow(),
        policy_year=renewal_of.policy_year + 1 if renewal_of is not None else 1,
        renewal_of_id=renewal_of.id if renewal_of is not None else None,
    )
    _apply(policy, data, customer, user)
    policy.number = number or next_number(policy.applied_on)
    db.session.add(policy)
    db.session.flush()
    details: dict[str, Any] = {
        "number": policy.number,
        "annual_premium": str(policy.annual_premium),
        "via": via,
    }
    if renewal_of is not None:
        details["renewal_of"] = renewal_of.number
    audit.record("create", SUBJECT, policy.id, details, user_id=getattr(user, "id", None))
    return policy


def update_policy(policy: Policy, data: PolicyInput, user: Any, *, via: str = "web") -> None:
    """Apply checked ``data`` to an application or a policy in underwriting; the caller
    commits."""
    customer = db.session.get(Customer, policy.customer_id)
    _apply(policy, data, customer, user)
    db.session.flush()
    audit.record(
        "update",
        SUBJECT,
        policy.id,
        {"annual_premium": str(policy.annual_premium), "via": via},
        user_id=getattr(user, "id", None),
    )


def input_of(policy: Policy) -> PolicyInput:
    """The policy as an input (to change a few fields of it)."""
    return PolicyInput(
        customer_id=policy.customer_id,
        product_id=policy.product_id,
        premium=policy.premium,
        start_on=policy.start_on,
        frequency=policy.frequency,
        agent_id=policy.agent_id,
        channel_id=policy.channel_id,
        owner_id=policy.owner_id,
        sum_insured=policy.sum_insured,
        applied_on=policy.applied_on,
        insured=[p.contact_id for p in policy.parties if p.role == "insured"],
        beneficiaries=[(p.contact_id, p.share) for p in policy.parties if p.role == "beneficiary"],
        notes=policy.notes,
    )


# -- renewals -------------------------------------------------------------------------------------


class RenewalRefused(ValueError):
    """A renewal that cannot be prepared."""


def renewal_problem(policy: Policy) -> str | None:
    """Why no renewal of ``policy`` can be prepared now, or ``None``."""
    if policy.state != "in_force":
        return _(
            "Only a policy in force can be renewed; this one is %(state)s.",
            state=state_label(policy.state),
        )
    product = db.session.get(Product, policy.product_id)
    if product is None or not product.renewable:
        return _("The product of this policy is not renewable.")
    open_one = db.session.scalar(
        select(Policy.number).where(
            Policy.renewal_of_id == policy.id,
            Policy.state.not_in(("declined", "cancelled")),
        )
    )
    if open_one:
        return _("A renewal of this policy already exists: %(number)s.", number=open_one)
    return None


def prepare_renewal(
    policy: Policy, user: Any, *, at: datetime | None = None, via: str = "web"
) -> Policy:
    """The next term of ``policy`` as a new application (see the module docstring); raises
    :class:`RenewalRefused`. The caller commits."""
    problem = renewal_problem(policy)
    if problem:
        raise RenewalRefused(problem)
    data = input_of(policy)
    data.start_on = policy.end_on + timedelta(days=1)
    moment = at or utcnow()
    data.applied_on = min(local_day(moment), data.start_on)
    data.notes = None
    return create_policy(data, user, at=moment, renewal_of=policy, via=via)


def renewal_chain(policy: Policy) -> list[tuple[int, str, int, str, date, date]]:
    """Every term of the policy's renewal chain, first year first: ``(id, number,
    policy_year, state, start_on, end_on)`` (two recursive queries)."""
    cols = (
        Policy.id,
        Policy.number,
        Policy.policy_year,
        Policy.state,
        Policy.start_on,
        Policy.end_on,
        Policy.renewal_of_id,
    )
    up = select(*cols).where(Policy.id == policy.id).cte("up", recursive=True)
    older = aliased(Policy)
    up = up.union_all(
        select(*(getattr(older, c.key) for c in cols)).join(up, older.id == up.c.renewal_of_id)
    )
    down = select(*cols).where(Policy.renewal_of_id == policy.id).cte("down", recursive=True)
    newer = aliased(Policy)
    down = down.union_all(
        select(*(getattr(newer, c.key) for c in cols)).join(down, newer.renewal_of_id == down.c.id)
    )
    rows = {r.id: r for r in db.session.execute(select(up)).all()}
    rows.update({r.id: r for r in db.session.execute(select(down)).all()})
    ordered = sorted(rows.values(), key=lambda r: (r.policy_year, r.start_on, r.id))
    return [(r.id, r.number, r.policy_year, r.state, r.start_on, r.end_on) for r in ordered]


# -- what the workflow does -----------------------------------------------------------------------

#: While set (the demo), customers whose value to refresh once at the end, not per order.
_deferred_values: ContextVar[set[int] | None] = ContextVar("insurance_deferred", default=None)


@contextmanager
def deferred_values() -> Iterator[set[int]]:
    """Collect the customers whose value the orders made inside the block change, and
    recompute them once at its end (for batches such as the demo)."""
    found: set[int] = set()
    token = _deferred_values.set(found)
    try:
        yield found
    finally:
        _deferred_values.reset(token)
    if found:
        orders.refresh_value(sorted(found))


def _actor(policy: Policy) -> User | None:
    """Who took the transition being handled (its history row is already flushed)."""
    user_id = db.session.scalar(
        select(WorkflowHistory.user_id)
        .where(WorkflowHistory.subject_type == SUBJECT, WorkflowHistory.subject_id == policy.id)
        .order_by(WorkflowHistory.id.desc())
        .limit(1)
    )
    return db.session.get(User, user_id) if user_id is not None else None


def premium_line(product: Product, policy: Policy) -> str:
    """The text of the order line of a policy's premium."""
    return f"{product.name} 保费 {policy.number}"[:200]


def create_premium_order(policy: Policy, user: Any, at: datetime) -> Order:
    """The sales order of an issued policy's annual premium (see the module docstring)."""
    product = db.session.get(Product, policy.product_id)
    issued = policy.issued_on or local_day(at)
    start = policy.start_on
    due = start if issued <= start <= issued + timedelta(days=orders.MAX_TERMS) else None
    data = orders.OrderInput(
        customer_id=policy.customer_id,
        ordered_on=min(issued, orders.today()),
        lines=[orders.LineInput(premium_line(product, policy), Decimal(1), policy.annual_premium)],
        due_on=due,
        channel_id=policy.channel_id,
        owner_id=policy.owner_id,
        notes=_("Premium of policy %(number)s", number=policy.number),
    )
    found = orders.problems(data)
    if "owner_id" in found:
        data.owner_id = None
    if "channel_id" in found:
        data.channel_id = None
    if "due_on" in found:
        data.due_on = None
    deferred = _deferred_values.get()
    order = orders.create_order(data, user, at=at, via="insurance", keep_revenue=deferred is None)
    if deferred is not None:
        deferred.add(policy.customer_id)
    return order


def _cancel_order(policy: Policy, user: Any, at: datetime, reason: str) -> str | None:
    """Cancel the premium order of a cancelled policy when nothing was paid on it; a note of
    what happened to the order for the history."""
    order = db.session.get(Order, policy.order_id) if policy.order_id else None
    if order is None or order.state == "cancelled":
        return None
    if order.state == "open" and not money(order.paid):
        workflow.transition(
            order,
            "cancel",
            user=user,
            inputs={
                "comment": _(
                    "Policy %(number)s cancelled: %(reason)s", number=policy.number, reason=reason
                )
            },
            at=at,
        )
        return None
    return _(
        "Order %(number)s keeps the ¥%(paid)s paid on it; a refund is outside Guanxi.",
        number=order.number,
        paid=f"{money(order.paid):,.2f}",
    )


def after_transition(
    subject: Any, from_state: str, to_state: str, at: datetime, inputs: Mapping[str, Any]
) -> None:
    """Issue: stamp ``issued_on``, make the premium's order, start the renewal clock, move
    the renewed policy; cancel: stamp ``cancelled_on``, cancel the unpaid order, drop the
    renewal clock."""
    if not isinstance(subject, Policy):
        return
    policy = subject
    if to_state == "issued":
        user = _actor(policy)
        policy.issued_on = local_day(at)
        if policy.order_id is None and user is not None:
            order = create_premium_order(policy, user, at)
            policy.order_id = order.id
        product = db.session.get(Product, policy.product_id)
        if product is not None and product.renewable:
            clocks.restart(RENEWAL_CLOCK, policy, at=at)
            db.session.flush()  # before anything reads the enabled plugins (unscoped)
        if policy.renewal_of_id is not None and user is not None:
            old = db.session.get(Policy, policy.renewal_of_id)
            if old is not None and old.state in RENEWABLE_FROM:
                workflow.transition(
                    old,
                    "renew",
                    user=user,
                    inputs={"comment": _("Renewal %(number)s issued.", number=policy.number)},
                    at=at,
                )
    elif to_state == "cancelled":
        user = _actor(policy)
        policy.cancelled_on = local_day(at)
        clocks.restart(RENEWAL_CLOCK, policy, at=at)
        db.session.flush()
        if user is not None:
            note = _cancel_order(policy, user, at, str(inputs.get("comment") or ""))
            if note:
                history = db.session.scalar(
                    select(WorkflowHistory)
                    .where(
                        WorkflowHistory.subject_type == SUBJECT,
                        WorkflowHistory.subject_id == policy.id,
                    )
                    .order_by(WorkflowHistory.id.desc())
                    .limit(1)
                )
                if history is not None:
                    history.comment = f"{history.comment or ''}\n{note}".strip()


# -- the daily job --------------------------------------------------------------------------------


def system_actor() -> User | None:
    """Whom the daily job's transitions are recorded under: the company's first administrator
    (by id), else its first manager."""
    for role in MANAGERS:
        user_id = db.session.scalar(
            select(Membership.user_id)
            .where(Membership.role == role)
            .order_by(Membership.user_id)
            .limit(1)
        )
        if user_id is not None:
            return db.session.get(User, user_id)
    return None


def due_to_activate(day: date) -> list[Policy]:
    """Issued policies whose start date is ``day`` or earlier."""
    return list(
        db.session.scalars(
            select(Policy)
            .where(Policy.state == "issued", Policy.start_on <= day)
            .order_by(Policy.id)
        )
    )


def due_to_lapse(day: date) -> list[Policy]:
    """In-force policies whose grace period after the end date is over on ``day`` (end +
    30 days is before ``day``) and that have no issued renewal."""
    renewal = aliased(Policy)
    has_renewal = exists(
        select(renewal.id).where(renewal.renewal_of_id == Policy.id, renewal.state.in_(WRITTEN))
    )
    return list(
        db.session.scalars(
            select(Policy)
            .where(
                Policy.state == "in_force",
                Policy.end_on < day - timedelta(days=GRACE_DAYS),
                ~has_renewal,
            )
            .order_by(Policy.id)
        )
    )


def run_daily(company: Any, day: date | None = None, at: datetime | None = None) -> str:
    """Job ``insurance.policies``: put issued policies in force on their start date, lapse
    in-force policies whose grace period is over. Transitions go through the engine (history,
    hooks) under :func:`system_actor`."""
    day = day or today()
    actor = system_actor()
    if actor is None:
        return "no administrator or manager to act as"
    activated = lapsed = 0
    for policy in due_to_activate(day):
        workflow.transition(
            policy,
            "activate",
            user=actor,
            inputs={"comment": _("Start date reached."), "on": day},
            at=at,
        )
        activated += 1
    for policy in due_to_lapse(day):
        workflow.transition(
            policy,
            "lapse",
            user=actor,
            inputs={"comment": _("Not renewed within %(n)s days of its end.", n=GRACE_DAYS)},
            at=at,
        )
        lapsed += 1
    db.session.commit()
    return f"{activated} put in force, {lapsed} lapsed"


def jobs() -> list[Job]:
    return [
        Job(
            "insurance.policies",
            run_daily,
            daily("00:30"),
            label="Insurance: put policies in force, lapse unrenewed ones",
            label_zh="保险：保单生效与失效处理",
        )
    ]


# -- reading --------------------------------------------------------------------------------------


def visible_policy(policy_id: int) -> Policy | None:
    """The policy if it is the company's and its policyholder is one the reader sees."""
    if not 0 < policy_id <= 2**31 - 1:
        return None
    return db.session.scalar(
        select(Policy)
        .join(Customer, Customer.id == Policy.customer_id)
        .where(Policy.id == policy_id)
    )


def hidden_policy(policy_id: int) -> bool:
    """Whether ``policy_id`` is a policy of the company whose customer the record rule hides."""
    from core import access

    if not 0 < policy_id <= 2**31 - 1:
        return False
    with access.all_customers():
        return db.session.scalar(select(Policy.id).where(Policy.id == policy_id)) is not None


def agent_options() -> list[tuple[int, str]]:
    """``(agent id, name)`` of the company's agents (their channel's name), by name."""
    rows = db.session.execute(
        select(Agent.id, Channel.name, Agent.licence_number)
        .join(Channel, Channel.id == Agent.channel_id)
        .order_by(Channel.name, Agent.id)
    )
    return [(r.id, r.name) for r in rows]


def names(policy: Policy) -> dict[str, Any]:
    """Names around a policy: customer, product, agent, channel, owner, order (one query)."""
    agent_channel = aliased(Channel)
    row = db.session.execute(
        select(
            Customer.name,
            Product.code,
            Product.name,
            Product.product_class,
            agent_channel.name,
            Channel.name,
            Channel.type,
            User.name,
            Order.number,
            Order.state,
            Order.paid,
        )
        .select_from(Policy)
        .join(Customer, Customer.id == Policy.customer_id)
        .join(Product, Product.id == Policy.product_id)
        .outerjoin(Agent, Agent.id == Policy.agent_id)
        .outerjoin(agent_channel, agent_channel.id == Agent.channel_id)
        .outerjoin(Channel, Channel.id == Policy.channel_id)
        .outerjoin(User, User.id == Policy.owner_id)
        .outerjoin(Order, Order.id == Policy.order_id)
        .where(Policy.id == policy.id)
    ).one()
    keys = (
        "customer",
        "product_code",
        "product",
        "product_class",
        "agent",
        "channel",
        "channel_type",
        "owner",
        "order",
        "order_state",
        "order_paid",
    )
    return dict(zip(keys, row, strict=True))


def parties_of(policy_ids: Sequence[int]) -> dict[int, list[tuple[PolicyParty, str]]]:
    """The parties of the policies with their contacts' names (one query)."""
    out: dict[int, list[tuple[PolicyParty, str]]] = {}
    if not policy_ids:
        return out
    for party, name in db.session.execute(
        select(PolicyParty, Contact.name)
        .join(Contact, Contact.id == PolicyParty.contact_id)
        .where(PolicyParty.policy_id.in_(list(policy_ids)))
        .order_by(PolicyParty.policy_id, PolicyParty.role.desc(), PolicyParty.id)
    ):
        out.setdefault(party.policy_id, []).append((party, name))
    return out


def panels(subject_type: str, subject: Any) -> list[Any]:
    return web_policies.panels(subject_type, subject)


def timeline(customer: Any) -> list[Any]:
    return web_policies.timeline(customer)


def resources() -> list[Any]:
    return web_policies.resources()


def reports() -> list[Any]:
    return web_policies.reports()


# -- demo -----------------------------------------------------------------------------------------

#: ``(code, name, class, term months, renewable, typical annual premium)``.
DEMO_PRODUCTS: tuple[tuple[str, str, str, int, bool, int], ...] = (
    ("HX-L01", "鸿信定期寿险（20年）", "life", 240, False, 3600),
    ("HX-L02", "鸿信终身寿险", "life", 12, True, 8800),
    ("HX-H01", "鸿信百万医疗险", "health", 12, True, 680),
    ("HX-H02", "鸿信重大疾病保险", "health", 12, True, 5200),
    ("HX-A01", "鸿信综合意外险", "accident", 12, True, 260),
    ("HX-N01", "鸿信养老年金", "annuity", 12, True, 20000),
    ("HX-P01", "鸿信家庭财产险", "property", 12, True, 450),
    ("HX-M01", "鸿信机动车商业险", "auto", 12, True, 4200),
)
DEMO_DECLINE = ("既往病史不符合核保要求", "职业类别超出承保范围", "健康告知存在异常")
DEMO_CANCEL = ("客户资金周转困难，申请退保", "客户在犹豫期内撤回投保", "重复投保，客户申请退保")


def _demo_frequency(rng: random.Random) -> str:
    return rng.choice(["annual"] * 6 + ["semiannual", "quarterly", "monthly", "monthly"])


@dataclass
class _DemoSeller:
    agent_id: int | None
    channel_id: int
    channel_type: str
    classes: tuple[str, ...]
    user_id: int | None


def _demo_sellers(day: date) -> list[_DemoSeller]:
    """Agents whose licence is valid today, and internet/mobile channels (no agent)."""
    sellers = []
    for agent, channel in db.session.execute(
        select(Agent, Channel).join(Channel, Channel.id == Agent.channel_id).order_by(Agent.id)
    ):
        if agent.status != "active":
            continue
        if agent.licence_expires_on is not None and agent.licence_expires_on < day:
            continue
        classes = tuple(agent.licence_classes or ())
        sellers.append(_DemoSeller(agent.id, channel.id, channel.type, classes, agent.user_id))
    for channel in db.session.scalars(
        select(Channel).where(Channel.type.in_(("internet", "mobile"))).order_by(Channel.id)
    ):
        sellers.append(_DemoSeller(None, channel.id, channel.type, (), None))
    return sellers


def _demo_moment(day: date, rng: random.Random) -> datetime:
    local = datetime.combine(day, time(rng.randint(9, 17), rng.randint(0, 59)), zone())
    return min(local.astimezone(UTC), utcnow() - timedelta(minutes=5))


def demo(company: Any, fake: Any) -> None:
    """鸿信人寿's products and 60 policies over the last 23 months through its agents, broker,
    bank branches and internet channel (see docs/insurance-policies.md); every step through
    the workflow engine at its past moment, so history, orders and clocks are real."""
    rng = random.Random(f"insurance-policies-{company.code}")
    day = today()
    members = dict(db.session.execute(select(Membership.user_id, Membership.role)).all())
    manager = next(
        (db.session.get(User, u) for u, r in sorted(members.items()) if r in MANAGERS), None
    )
    if manager is None:
        return
    products = []
    for code, name, klass, term, renewable, _premium in DEMO_PRODUCTS:
        existing = db.session.scalar(select(Product).where(Product.code == code))
        products.append(
            existing
            or save_product(ProductInput(code, name, klass, term, renewable), manager, via="demo")
        )
    typical = {p.code: prem for p, (*_r, prem) in zip(products, DEMO_PRODUCTS, strict=True)}
    sellers = _demo_sellers(day)
    customers = list(
        db.session.scalars(
            select(Customer).where(Customer.status != "potential").order_by(Customer.id)
        )
    )
    if not customers or not sellers:
        return
    contacts: dict[int, list[int]] = {}
    for contact_id, customer_id in db.session.execute(
        select(Contact.id, Contact.customer_id).order_by(Contact.id)
    ):
        contacts.setdefault(customer_id, []).append(contact_id)
    staff = [u for u, r in sorted(members.items()) if r in ("manager", "sales_rep")]
    fates = (
        ["in_force"] * 32
        + ["due"] * 10
        + ["lapse"] * 2
        + ["application"] * 4
        + ["underwriting"] * 3
        + ["declined"] * 3
        + ["cancelled"] * 3
        + ["issued"] * 3
    )
    rng.shuffle(fates)
    with deferred_values():
        made: list[Policy] = []
        for n, fate in enumerate(fates):
            made.append(
                _demo_policy(
                    n,
                    fate,
                    rng,
                    day,
                    products,
                    typical,
                    sellers,
                    customers,
                    contacts,
                    staff,
                    manager,
                )
            )
        lapsing = {p.id for p, fate in zip(made, fates, strict=True) if fate == "lapse"}
        _demo_renewals(made, lapsing, rng, day, manager)
    db.session.flush()


def _demo_policy(
    n: int,
    fate: str,
    rng: random.Random,
    day: date,
    products: list[Product],
    typical: dict[str, int],
    sellers: list[_DemoSeller],
    customers: list[Customer],
    contacts: dict[int, list[int]],
    staff: list[int],
    manager: User,
) -> Policy:
    seller = sellers[n % len(sellers)]
    yearly = [p for p in products if p.term_months == 12 and p.renewable]
    pool = yearly if fate in ("due", "lapse") else products
    fitting = [p for p in pool if seller.agent_id is None or p.product_class in seller.classes]
    if not fitting:  # an agent licensed for none of them: a direct sale through its channel
        seller = _DemoSeller(None, seller.channel_id, seller.channel_type, (), None)
        fitting = pool
    product = rng.choice(fitting)
    customer = customers[(n * 7 + rng.randint(0, 3)) % len(customers)]
    if fate == "due":  # ends in the next 90 days: a one-year term that started a year ago
        end = day + timedelta(days=rng.randint(5, 88))
        start = add_months(end + timedelta(days=1), -12)
    elif fate == "lapse":  # a one-year term that ended over 30 days ago, not renewed
        start = day - timedelta(days=rng.randint(400, 415))
    elif fate in ("application", "underwriting"):
        start = day + timedelta(days=rng.randint(3, 30))
    elif fate == "issued":
        start = day + timedelta(days=rng.randint(2, 20))
    else:
        start = day - timedelta(days=rng.randint(20, 680))
    applied = max(start - timedelta(days=rng.randint(5, 20)), day - timedelta(days=700))
    applied = min(applied, day)
    premium_year = Decimal(typical[product.code]) * Decimal(str(rng.uniform(0.7, 1.6)))
    frequency = _demo_frequency(rng)
    premium = money(premium_year / PAYMENTS[frequency]).quantize(Decimal(1))
    people = contacts.get(customer.id, [])
    insured = people[:1]
    beneficiaries: list[tuple[int, Decimal | None]] = []
    if len(people) >= 3:
        beneficiaries = [(people[1], Decimal(60)), (people[2], Decimal(40))]
    elif len(people) == 2:
        beneficiaries = [(people[1], None)]
    owner = seller.user_id if seller.user_id in staff else customer.owner_id
    if owner not in staff:
        owner = rng.choice(staff) if staff else manager.id
    data = PolicyInput(
        customer_id=customer.id,
        product_id=product.id,
        premium=max(premium, Decimal(1)),
        start_on=max(start, applied),
        frequency=frequency,
        agent_id=seller.agent_id,
        channel_id=seller.channel_id,
        owner_id=owner,
        sum_insured=Decimal(rng.choice([100000, 300000, 500000, 1000000, 2000000])),
        applied_on=applied,
        insured=insured,
        beneficiaries=beneficiaries,
    )
    created = _demo_moment(applied, rng)
    policy = create_policy(data, manager, at=created, via="demo")
    if fate == "application":
        return policy
    db.session.flush()
    moment = min(created + timedelta(hours=rng.randint(2, 30)), utcnow() - timedelta(minutes=4))
    workflow.transition(policy, "submit", user=manager, at=moment)
    if fate == "underwriting":
        return policy
    moment = min(moment + timedelta(days=rng.randint(1, 4)), utcnow() - timedelta(minutes=3))
    if fate == "declined":
        workflow.transition(
            policy,
            "decline",
            user=manager,
            inputs={"comment": rng.choice(DEMO_DECLINE)},
            at=moment,
        )
        return policy
    workflow.transition(policy, "issue", user=manager, inputs={"on": local_day(moment)}, at=moment)
    if policy.start_on <= day:
        when = max(moment, _demo_moment(policy.start_on, rng))
        when = min(when, utcnow() - timedelta(minutes=2))
        workflow.transition(
            policy, "activate", user=manager, inputs={"on": policy.start_on}, at=when
        )
        if fate == "cancelled":
            later = min(when + timedelta(days=rng.randint(5, 60)), utcnow() - timedelta(minutes=1))
            workflow.transition(
                policy,
                "cancel",
                user=manager,
                inputs={"comment": rng.choice(DEMO_CANCEL)},
                at=later,
            )
    elif fate == "cancelled":
        later = min(moment + timedelta(days=1), utcnow() - timedelta(minutes=1))
        workflow.transition(
            policy, "cancel", user=manager, inputs={"comment": rng.choice(DEMO_CANCEL)}, at=later
        )
    return policy


def _demo_renewals(
    made: list[Policy], lapsing: set[int], rng: random.Random, day: date, manager: User
) -> None:
    """Year-two terms: in-force policies that ended are renewed -- the renewal issued a few
    weeks before the old end -- except ``lapsing`` ones, lapsed after the grace period; two
    of the policies due soon get their renewal prepared."""
    ended = [p for p in made if p.state == "in_force" and p.end_on < day]
    for old in ended:
        if old.id in lapsing and old.end_on + timedelta(days=GRACE_DAYS) < day:
            when = _demo_moment(old.end_on + timedelta(days=GRACE_DAYS + 1), rng)
            workflow.transition(
                old,
                "lapse",
                user=manager,
                inputs={"comment": _("Not renewed within %(n)s days of its end.", n=GRACE_DAYS)},
                at=when,
            )
            continue
        prepared = _demo_moment(
            max(old.end_on - timedelta(days=rng.randint(20, 50)), old.start_on), rng
        )
        renewal = prepare_renewal(old, manager, at=prepared, via="demo")
        db.session.flush()
        issue = min(prepared + timedelta(days=rng.randint(3, 12)), utcnow() - timedelta(minutes=2))
        workflow.transition(renewal, "submit", user=manager, at=prepared + timedelta(hours=2))
        workflow.transition(
            renewal, "issue", user=manager, inputs={"on": local_day(issue)}, at=issue
        )
        if renewal.start_on <= day:
            when = min(
                max(issue, _demo_moment(renewal.start_on, rng)), utcnow() - timedelta(minutes=1)
            )
            workflow.transition(
                renewal, "activate", user=manager, inputs={"on": renewal.start_on}, at=when
            )
    soon = [
        p for p in made if p.state == "in_force" and day <= p.end_on <= day + timedelta(days=90)
    ]
    for old in soon[:2]:
        prepare_renewal(old, manager, at=_demo_moment(day, rng), via="demo")


__all__ = [
    "POLICY_WORKFLOW",
    "PolicyInput",
    "ProductInput",
    "create_policy",
    "prepare_renewal",
    "problems",
    "save_product",
    "update_policy",
]

from plugins.insurance import web_policies  # noqa: E402,F401  - registers the pages
