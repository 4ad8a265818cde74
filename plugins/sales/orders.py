"""Sales part: orders, payments and receivables (订单、回款与应收账款; DOMAIN §2 and §4).

Orders
    An :class:`~plugins.sales.models.Order` has free product lines (product, quantity, unit
    price, unit cost); its ``amount`` and ``cost`` are the lines' sums (each line rounded to the
    fen). It is numbered per company and year of its date (``SO-2026-000123``), falls due on its
    due date -- by default the order date plus the company's payment terms (setting
    ``sales_payment_terms``, 30 days) -- and goes through the channel given, by default its
    customer's. Only open orders can be edited; the customer is fixed at creation.
Payments
    A :class:`~plugins.sales.models.Payment` (回款) is money received against an open order.
    ``Order.paid`` is rewritten as the SQL sum of the order's payments with every payment, and
    the order moves ``open → paid`` on the workflow ``sales_order`` when nothing is left.
    A payment must be above zero, at most what is outstanding and not dated in the future.
    A manager may reverse a payment recorded in error (the order goes back to open).
Channel credit (渠道信用)
    A channel's outstanding receivables are ``amount - paid`` summed over its open orders. When
    saving an order would push them above the channel's ``credit_limit``, :func:`credit_check`
    says by how much; the order form asks for an explicit confirmation, and the override is
    written to the audit log.
Receivables ageing (账龄)
    Open orders' outstanding amounts per bucket of days past the due date -- not yet due (due
    today or later, or no due date), 0–30 (1 to 30 days past due), 31–60, 61–90 and over 90 --
    are one aggregate (:func:`ageing_columns`), grouped by customer, channel, owner or region.
Overdue-payment reminders
    The obligation kind ``sales.payment_due`` puts each open order on the clock engine: its
    target is the working time from the order's creation to the end of its due date on the
    company's business calendar, so the clock breaches at the close of the due date's last
    working hours; it is met when the order is paid or cancelled (workflow transitions). A new
    due date, or an order reopened, restarts the clock from the order's creation.
Revenue and value
    After each order change the customer's value is recomputed (:mod:`plugins.sales.value`),
    which also rewrites ``Customer.revenue`` -- "what the customer bought in the last 12
    months", read by the core's value tiers and channel performance report -- from the orders
    and reclassifies the customer; the value part's nightly job moves the 12-month window.

Pages, API resources, reports and panels are in :mod:`plugins.sales.web_orders`.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import and_, case, func, or_, select

from core import access, audit, clocks, workflow
from core.extend import (
    Choice,
    MenuItem,
    ObligationKind,
    Panel,
    State,
    Transition,
    Workflow,
    db,
    utcnow,
)
from core.models import Channel, CompanySetting, Customer, Membership, User
from core.reports import today as company_today
from core.reports import zone
from plugins.sales.models import Opportunity, Order, OrderLine, Payment

WORKFLOW = "sales_order"
CLOCK = "sales.payment_due"
#: Company setting holding the default payment terms in days.
TERMS_KEY = "sales_payment_terms"
DEFAULT_TERMS = 30
MAX_TERMS = 365
CENT = Decimal("0.01")
ZERO = Decimal("0.00")
#: Largest amount a Numeric(14, 2) column holds.
MAX_MONEY = Decimal("999999999999.99")
MAX_QUANTITY = Decimal("9999999999.99")
MAX_LINES = 200
EARLIEST = date(2000, 1, 1)
MANAGERS = ("admin", "manager")

STATES = (
    ("open", "Open", "未结清"),
    ("paid", "Paid", "已结清"),
    ("cancelled", "Cancelled", "已取消"),
)
#: Ageing buckets ``(key, label, label_zh)``: not yet due, then days past the due date.
BUCKETS = (
    ("not_due", "Not yet due", "未到期"),
    ("d0_30", "0–30 days overdue", "逾期0–30天"),
    ("d31_60", "31–60 days overdue", "逾期31–60天"),
    ("d61_90", "61–90 days overdue", "逾期61–90天"),
    ("d90_plus", "Over 90 days overdue", "逾期90天以上"),
)
BUCKET_KEYS = tuple(key for key, _l, _z in BUCKETS)
OVERDUE_KEYS = BUCKET_KEYS[1:]
METHODS = (
    ("transfer", "Bank transfer", "银行转账"),
    ("acceptance", "Bank acceptance bill", "银行承兑汇票"),
    ("cheque", "Cheque", "支票"),
    ("cash", "Cash", "现金"),
    ("wechat", "WeChat Pay", "微信支付"),
    ("alipay", "Alipay", "支付宝"),
    ("card", "Card", "刷卡"),
    ("other", "Other", "其他"),
)
METHOD_LIST = "sales_payment_method"


def money(value: Any) -> Decimal:
    """A SUM or a number as a 2-place Decimal (SQLite may hand back a float or an int)."""
    if value is None:
        return ZERO
    return Decimal(str(value)).quantize(CENT, ROUND_HALF_UP)


def line_total(quantity: Decimal, unit: Decimal) -> Decimal:
    """``quantity × unit`` rounded to the fen (half up), as each line of an order counts it."""
    return (Decimal(quantity) * Decimal(unit)).quantize(CENT, ROUND_HALF_UP)


# -- the workflow ---------------------------------------------------------------------------------


def _fully_paid(order: Order, inputs: Any) -> str | None:
    if money(order.paid) >= money(order.amount):
        return None
    return _("¥%(left)s is still outstanding.", left=f"{order.outstanding:,.2f}")


def _not_fully_paid(order: Order, inputs: Any) -> str | None:
    if money(order.paid) < money(order.amount):
        return None
    return _("The order is fully paid.")


def _nothing_paid(order: Order, inputs: Any) -> str | None:
    if not money(order.paid):
        return None
    return _("Payments were received on this order; reverse them before cancelling it.")


ORDER_WORKFLOW = Workflow(
    name=WORKFLOW,
    model=Order,
    label="Sales order",
    label_zh="销售订单",
    initial="open",
    states=(
        State("open", "Open", "未结清"),
        State("paid", "Paid", "已结清", "done"),
        State("cancelled", "Cancelled", "已取消", "cancelled"),
    ),
    transitions=(
        Transition("settle", ("open",), "paid", "Mark paid", "结清", guard=_fully_paid),
        Transition(
            "unsettle",
            ("paid",),
            "open",
            "Back to open",
            "恢复为未结清",
            roles=MANAGERS,
            guard=_not_fully_paid,
        ),
        Transition(
            "cancel",
            ("open",),
            "cancelled",
            "Cancel order",
            "取消订单",
            roles=MANAGERS,
            inputs=("comment",),
            guard=_nothing_paid,
        ),
        Transition(
            "reopen",
            ("cancelled",),
            "open",
            "Reopen order",
            "恢复订单",
            roles=MANAGERS,
            inputs=("comment",),
        ),
    ),
)


def workflows() -> list[Workflow]:
    return [ORDER_WORKFLOW]


def choices() -> list[Choice]:
    return [Choice(METHOD_LIST, value, label, zh) for value, label, zh in METHODS]


def state_label(state: str) -> str:
    """The order state's label in the user's language."""
    return ORDER_WORKFLOW.state(state).text if state in {s for s, *_r in STATES} else state


# -- dates ----------------------------------------------------------------------------------------


def today() -> date:
    """Today in the company's time zone."""
    return company_today()


def local_noon(day: date) -> datetime:
    """Noon of ``day`` in the company's time zone, as aware UTC."""
    return datetime.combine(day, time(12), zone()).astimezone(UTC)


def received_at(paid_on: date, created: datetime | None = None) -> datetime:
    """The moment money dated ``paid_on`` counts as received: now for today's, noon of its day
    for an earlier one (a payment entered late still meets a deadline it met), never before
    ``created`` (the order's creation)."""
    moment = utcnow() if paid_on >= today() else local_noon(paid_on)
    return max(moment, created) if created is not None else moment


def payment_terms() -> int:
    """The company's default payment terms in days (:data:`DEFAULT_TERMS` when unset)."""
    value = db.session.scalar(select(CompanySetting.value).where(CompanySetting.key == TERMS_KEY))
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_TERMS:
        return value
    return DEFAULT_TERMS


def set_payment_terms(days: int, user_id: int | None = None) -> None:
    """Store the company's default payment terms (0 to :data:`MAX_TERMS` days); audited."""
    if not 0 <= days <= MAX_TERMS:
        raise ValueError(f"payment terms must be 0 to {MAX_TERMS} days")
    row = CompanySetting.put(TERMS_KEY, days)
    audit.record("update", "company_setting", row.id, {TERMS_KEY: days}, user_id=user_id)


def default_due(ordered_on: date) -> date:
    """The due date of an order dated ``ordered_on`` under the company's payment terms."""
    return ordered_on + timedelta(days=payment_terms())


# -- saving orders --------------------------------------------------------------------------------


@dataclass
class LineInput:
    """One product line as entered."""

    product: str
    quantity: Decimal
    unit_price: Decimal
    unit_cost: Decimal = ZERO


@dataclass
class OrderInput:
    """What a form or an API request gives for an order. ``channel_id`` ``None`` means the
    customer's channel; ``owner_id`` ``None`` the customer's owner (else the user saving);
    ``due_on`` ``None`` the order date plus the payment terms."""

    customer_id: int
    ordered_on: date
    lines: list[LineInput]
    due_on: date | None = None
    channel_id: int | None = None
    owner_id: int | None = None
    opportunity_id: int | None = None
    notes: str | None = None

    @property
    def amount(self) -> Decimal:
        return sum((line_total(x.quantity, x.unit_price) for x in self.lines), ZERO)

    @property
    def cost(self) -> Decimal:
        return sum((line_total(x.quantity, x.unit_cost) for x in self.lines), ZERO)


def _places_ok(value: Decimal) -> bool:
    return value.is_finite() and value.as_tuple().exponent >= -2  # type: ignore[operator]


def line_problems(lines: Sequence[LineInput]) -> str | None:
    """Why ``lines`` cannot make an order, or ``None``."""
    if not lines:
        return _("Enter at least one product line.")
    if len(lines) > MAX_LINES:
        return _("At most %(n)s lines.", n=MAX_LINES)
    for n, line in enumerate(lines, start=1):
        if not line.product.strip() or len(line.product) > 200:
            return _("Line %(n)s: name the product (at most 200 characters).", n=n)
        if not (_places_ok(line.quantity) and ZERO < line.quantity <= MAX_QUANTITY):
            return _("Line %(n)s: the quantity must be above zero.", n=n)
        for value in (line.unit_price, line.unit_cost):
            if not (_places_ok(value) and ZERO <= value <= MAX_MONEY):
                return _("Line %(n)s: prices are amounts from 0 with at most 2 decimals.", n=n)
    return None


def problems(data: OrderInput, order: Order | None = None) -> dict[str, str]:
    """What is wrong with saving ``data`` (as a new order, or over ``order``), by field."""
    out: dict[str, str] = {}
    if order is not None and order.state != "open":
        out["state"] = _(
            "Only open orders can be changed; this one is %(state)s.",
            state=state_label(order.state),
        )
    if data.ordered_on > today():
        out["ordered_on"] = _("The order date cannot be in the future.")
    elif data.ordered_on < EARLIEST:
        out["ordered_on"] = _("Enter a date from 2000 on.")
    if data.due_on is not None and "ordered_on" not in out:
        if data.due_on < data.ordered_on:
            out["due_on"] = _("The due date cannot be before the order date.")
        elif data.due_on > data.ordered_on + timedelta(days=MAX_TERMS):
            out["due_on"] = _(
                "The due date must be within %(n)s days of the order date.", n=MAX_TERMS
            )
    lines = line_problems(data.lines)
    if lines:
        out["lines"] = lines
    else:
        amount = data.amount
        if amount <= 0:
            out["lines"] = _("The order's amount must be above zero.")
        elif amount > MAX_MONEY or data.cost > MAX_MONEY:
            out["lines"] = _("The order's amount is too large.")
        elif order is not None and amount < money(order.paid):
            out["lines"] = _(
                "¥%(paid)s was paid on this order already; the amount cannot be less.",
                paid=f"{order.paid:,.2f}",
            )
    if data.opportunity_id is not None:
        owner = db.session.scalar(
            select(Opportunity.customer_id).where(Opportunity.id == data.opportunity_id)
        )
        if owner is None:
            out["opportunity_id"] = _("No opportunity with this number.")
        elif owner != data.customer_id:
            out["opportunity_id"] = _("This opportunity is another customer's.")
    if data.channel_id is not None and not _exists(Channel, data.channel_id):
        out["channel_id"] = _("Choose a channel of this company.")
    if data.owner_id is not None and not _is_member(data.owner_id):
        out["owner_id"] = _("Choose a member of this company.")
    return out


def _exists(model: type, row_id: int) -> bool:
    return db.session.scalar(select(model.id).where(model.id == row_id)) is not None


def _is_member(user_id: int) -> bool:
    found = select(Membership.user_id).where(Membership.user_id == user_id)
    return db.session.scalar(found) is not None


def resolved_channel(data: OrderInput, customer: Customer) -> int | None:
    return data.channel_id if data.channel_id is not None else customer.channel_id


def next_number(ordered_on: date) -> str:
    """The next free number of the company for the year of ``ordered_on``: ``SO-2026-000124``."""
    prefix = f"SO-{ordered_on.year}-"
    last = db.session.scalar(
        select(Order.number)
        .where(Order.number.like(prefix + "%"))
        .order_by(func.length(Order.number).desc(), Order.number.desc())
        .limit(1)
    )
    tail = (last or "")[len(prefix) :]
    n = int(tail) + 1 if tail.isascii() and tail.isdigit() else 1
    return f"{prefix}{n:06d}"


def _apply(order: Order, data: OrderInput, customer: Customer, user: Any) -> None:
    order.ordered_on = data.ordered_on
    order.due_on = data.due_on or default_due(data.ordered_on)
    order.channel_id = resolved_channel(data, customer)
    order.owner_id = data.owner_id or order.owner_id or customer.owner_id or user.id
    order.opportunity_id = data.opportunity_id
    order.notes = (data.notes or "").strip() or None
    order.lines = [
        OrderLine(
            product=x.product.strip(),
            quantity=x.quantity,
            unit_price=x.unit_price,
            unit_cost=x.unit_cost,
        )
        for x in data.lines
    ]
    order.amount, order.cost = data.amount, data.cost


def create_order(
    data: OrderInput,
    user: Any,
    *,
    at: datetime | None = None,
    number: str | None = None,
    credit: Credit | None = None,
    via: str = "web",
    keep_revenue: bool = True,
) -> Order:
    """Create an order from checked ``data`` (see :func:`problems`), start its payment clock,
    keep its customer's revenue; ``credit`` is the credit-limit excess the user confirmed (it
    goes to the audit log). The caller commits."""
    customer = db.session.get(Customer, data.customer_id)
    at = at or utcnow()
    order = Order(customer_id=customer.id, created_at=at, state="open", paid=ZERO)
    _apply(order, data, customer, user)
    order.number = number or next_number(data.ordered_on)
    db.session.add(order)
    db.session.flush()
    clocks.start_all(order, at=at)
    details: dict[str, Any] = {"number": order.number, "amount": str(order.amount), "via": via}
    if credit is not None:
        details["credit_limit_exceeded"] = credit.as_dict()
    audit.record("create", Order.__tablename__, order.id, details, user_id=user.id)
    if keep_revenue:
        refresh_value([customer.id])
    return order


def update_order(
    order: Order, data: OrderInput, user: Any, *, credit: Credit | None = None, via: str = "web"
) -> None:
    """Apply checked ``data`` to open ``order``: lines replaced, clock restarted when the due
    date moved, settled when the new amount is what was paid. The caller commits."""
    customer = db.session.get(Customer, order.customer_id)
    due_before = order.due_on
    _apply(order, data, customer, user)
    db.session.flush()
    details: dict[str, Any] = {"amount": str(order.amount), "via": via}
    if credit is not None:
        details["credit_limit_exceeded"] = credit.as_dict()
    audit.record("update", Order.__tablename__, order.id, details, user_id=user.id)
    if order.due_on != due_before:
        restart_clock(order)
    if money(order.paid) and money(order.paid) >= money(order.amount):
        workflow.transition(order, "settle", user=user)
    refresh_value([customer.id])


# -- channel credit -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Credit:
    """Where an order leaves its channel's credit: the limit, what the channel's other open
    orders owe (``others``), what this order would owe, and the excess."""

    channel_id: int
    channel_name: str
    limit: Decimal
    others: Decimal
    order: Decimal

    @property
    def after(self) -> Decimal:
        return self.others + self.order

    @property
    def available(self) -> Decimal:
        return self.limit - self.others

    @property
    def excess(self) -> Decimal:
        return self.after - self.limit

    def as_dict(self) -> dict[str, str | int]:
        return {
            "channel_id": self.channel_id,
            "limit": str(self.limit),
            "outstanding_before": str(self.others),
            "outstanding_after": str(self.after),
        }


def outstanding_by_channel(
    channel_ids: Iterable[int] | None = None, exclude: int | None = None
) -> dict[int, Decimal]:
    """Outstanding receivables (open orders' ``amount - paid``) per channel, of every customer
    whoever reads it (the query does not touch customers, so no record rule narrows it)."""
    stmt = (
        select(Order.channel_id, func.sum(Order.amount - Order.paid))
        .where(Order.state == "open", Order.channel_id.is_not(None))
        .group_by(Order.channel_id)
    )
    if channel_ids is not None:
        stmt = stmt.where(Order.channel_id.in_(list(channel_ids)))
    if exclude is not None:
        stmt = stmt.where(Order.id != exclude)
    return {channel_id: money(total) for channel_id, total in db.session.execute(stmt)}


def credit_check(
    channel_id: int | None, outstanding: Decimal, order: Order | None = None
) -> Credit | None:
    """The :class:`Credit` excess when an order owing ``outstanding`` through ``channel_id``
    (replacing ``order``'s current contribution) pushes the channel above its credit limit, and
    pushes it further than it was; ``None`` when it stays within (or the channel has no limit).
    """
    if channel_id is None:
        return None
    channel = db.session.get(Channel, channel_id)
    if channel is None or channel.credit_limit is None:
        return None
    others = outstanding_by_channel([channel_id], exclude=order.id if order else None)
    found = Credit(
        channel.id,
        channel.name,
        money(channel.credit_limit),
        others.get(channel_id, ZERO),
        money(outstanding),
    )
    before = found.others
    if order is not None and order.channel_id == channel_id and order.state == "open":
        before += money(order.amount) - money(order.paid)
    return found if found.after > found.limit and found.after > before else None


# -- payments -------------------------------------------------------------------------------------


class PaymentRefused(ValueError):
    """A payment that cannot be recorded; ``field`` names the input at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field, self.message = field, message


def payment_problem(order: Order, amount: Decimal, paid_on: date) -> tuple[str, str] | None:
    """``(field, message)`` saying why this payment cannot be recorded, or ``None``."""
    if order.state != "open":
        return "order_id", _(
            "This order is %(state)s; it takes no more payments.", state=state_label(order.state)
        )
    if not amount.is_finite() or amount <= 0:
        return "amount", _("Enter an amount above zero.")
    if not _places_ok(amount):
        return "amount", _("At most 2 decimal places.")
    left = money(order.amount) - money(order.paid)
    if amount > left:
        return "amount", _("Only ¥%(left)s is outstanding on this order.", left=f"{left:,.2f}")
    if paid_on > today():
        return "paid_on", _("A payment cannot be dated in the future.")
    if paid_on < EARLIEST:
        return "paid_on", _("Enter a date from 2000 on.")
    return None


def _sync_paid(order: Order) -> None:
    """``order.paid`` := the SQL sum of its payments."""
    db.session.flush()
    total = db.session.scalar(select(func.sum(Payment.amount)).where(Payment.order_id == order.id))
    order.paid = money(total)


def record_payment(
    order: Order,
    amount: Decimal,
    paid_on: date,
    user: Any,
    *,
    method: str | None = None,
    note: str | None = None,
    at: datetime | None = None,
    via: str = "web",
) -> Payment:
    """Record money received on ``order``; settle the order when nothing is left. Raises
    :class:`PaymentRefused`; the caller commits. ``at`` is when it was entered (default now)."""
    problem = payment_problem(order, amount, paid_on)
    if problem:
        raise PaymentRefused(*problem)
    entered = at or utcnow()
    payment = Payment(
        order_id=order.id,
        amount=amount,
        paid_on=paid_on,
        user_id=user.id,
        method=method or None,
        note=(note or "").strip() or None,
        created_at=entered,
    )
    db.session.add(payment)
    _sync_paid(order)
    audit.record(
        "create",
        Payment.__tablename__,
        payment.id,
        {"order_id": order.id, "amount": str(amount), "via": via},
        user_id=user.id,
    )
    if money(order.paid) >= money(order.amount):
        moment = min(received_at(paid_on, order.created_at), entered)
        workflow.transition(order, "settle", user=user, at=moment)
    return payment


def reverse_payment(payment: Payment, user: Any) -> Order:
    """Delete a payment recorded in error; a paid order goes back to open (its clock runs again
    towards its due date). The caller commits."""
    order = db.session.get(Order, payment.order_id)
    if order.state == "cancelled":
        raise PaymentRefused("order_id", _("This order is cancelled."))
    audit.record(
        "delete",
        Payment.__tablename__,
        payment.id,
        {"order_id": order.id, "amount": str(payment.amount)},
        user_id=user.id,
    )
    db.session.delete(payment)
    _sync_paid(order)
    if order.state == "paid":
        workflow.transition(order, "unsettle", user=user)
    return order


# -- the payment clock ----------------------------------------------------------------------------


def end_of_due_day(due_on: date, timezone: str) -> datetime:
    """Midnight after ``due_on`` in ``timezone``, as aware UTC."""
    from zoneinfo import ZoneInfo

    midnight = datetime.combine(due_on + timedelta(days=1), time(), ZoneInfo(timezone))
    return midnight.astimezone(UTC)


def payment_target(order: Order) -> int | None:
    """Working minutes from the order's creation to the end of its due date on the company's
    calendar (0 when the due date is already past); ``None`` (no clock) without a due date.

    A due date on a rest day or public holiday moves to the next working day (节假日顺延): the
    payment is late only when that day's work is over, never on the working day before."""
    if order.due_on is None:
        return None
    cal = clocks.calendar_for(order.company_id)
    start = order.created_at or utcnow()
    due_day = order.due_on
    for _shift in range(31):  # the longest holiday stretch is far shorter
        if cal.working_intervals(due_day):
            break
        due_day += timedelta(days=1)
    else:
        due_day = order.due_on
    allowed = cal.working_time_between(start, end_of_due_day(due_day, cal.timezone))
    return int(allowed.total_seconds() // 60)


PAYMENT_CLOCK = ObligationKind(
    name=CLOCK,
    model=Order,
    target=payment_target,
    label="Payment due",
    label_zh="回款到期",
    met_states=("paid", "cancelled"),
    warn_fraction=0.9,
    escalate_fraction=1.5,
    assignee="owner_id",
    link="/sales/orders/{id}",
)


def obligation_kinds() -> list[ObligationKind]:
    return [PAYMENT_CLOCK]


def restart_clock(order: Order) -> None:
    """Count the order's payment clock again from its creation to the current due date (a new
    due date, a reopened order); a paid or cancelled order keeps its met clock."""
    if order.state == "open" and CLOCK in {k.name for k in clocks.kinds_for(order)}:
        clocks.restart(PAYMENT_CLOCK, order, at=order.created_at)


def after_transition(subject: Any, from_state: str, to_state: str, at: Any, inputs: Any) -> None:
    """An order back to open counts towards its due date again; revenue follows cancelling."""
    if not isinstance(subject, Order):
        return
    if to_state == "open":
        restart_clock(subject)
    if "cancelled" in (from_state, to_state):
        refresh_value([subject.customer_id])


# -- receivables ageing ---------------------------------------------------------------------------


def bucket_conditions(day: date) -> dict[str, Any]:
    """SQL conditions on ``Order.due_on`` per ageing bucket, as of ``day``."""
    c30, c60, c90 = (day - timedelta(days=n) for n in (30, 60, 90))
    due = Order.due_on
    return {
        "not_due": or_(due.is_(None), due >= day),
        "d0_30": and_(due < day, due >= c30),
        "d31_60": and_(due < c30, due >= c60),
        "d61_90": and_(due < c60, due >= c90),
        "d90_plus": due < c90,
    }


def ageing_columns(day: date) -> list[Any]:
    """Aggregate columns ``not_due``, ``d0_30`` … ``d90_plus`` and ``total``: outstanding
    amounts of the rows' orders per bucket (add ``WHERE state = 'open'``)."""
    owed = Order.amount - Order.paid
    cols = [
        func.coalesce(func.sum(case((cond, owed), else_=0)), 0).label(key)
        for key, cond in bucket_conditions(day).items()
    ]
    return [*cols, func.coalesce(func.sum(owed), 0).label("total")]


def bucket_of(due_on: date | None, day: date) -> str:
    """The ageing bucket of an order due on ``due_on`` as of ``day``."""
    if due_on is None or due_on >= day:
        return "not_due"
    late = (day - due_on).days
    return (
        "d0_30"
        if late <= 30
        else "d31_60"
        if late <= 60
        else "d61_90"
        if late <= 90
        else ("d90_plus")
    )


def days_overdue(order: Order, day: date | None = None) -> int:
    """Days the open ``order`` is past its due date (0 when not)."""
    if order.state != "open" or order.due_on is None:
        return 0
    return max(0, ((day or today()) - order.due_on).days)


@dataclass
class Ageing:
    """Outstanding amounts per bucket (and their total) of one group of open orders."""

    not_due: Decimal = ZERO
    d0_30: Decimal = ZERO
    d31_60: Decimal = ZERO
    d61_90: Decimal = ZERO
    d90_plus: Decimal = ZERO
    total: Decimal = ZERO

    @classmethod
    def of(cls, row: Any) -> Ageing:
        data = row._mapping if hasattr(row, "_mapping") else row
        return cls(**{k: money(data[k]) for k in (*BUCKET_KEYS, "total")})

    @property
    def overdue(self) -> Decimal:
        return self.total - self.not_due

    def get(self, key: str) -> Decimal:
        return getattr(self, key)


def ageing_of(*conditions: Any, day: date | None = None) -> Ageing:
    """The ageing of the open orders matching ``conditions`` (one query; customers joined, so
    the reader's record rule applies)."""
    stmt = (
        select(*ageing_columns(day or today()))
        .select_from(Order)
        .join(Customer, Customer.id == Order.customer_id)
        .where(Order.state == "open", *conditions)
    )
    return Ageing.of(db.session.execute(stmt).one())


# -- revenue and value ----------------------------------------------------------------------------

#: Days of "the last 12 months" (as :mod:`plugins.sales.value` counts them).
YEAR = timedelta(days=365)


def year_before(day: date) -> date:
    """The day that starts "the 12 months up to ``day``" (exclusive), as the value part counts."""
    return day - YEAR


def refresh_value(customer_ids: Iterable[int]) -> None:
    """After orders of these customers changed: recompute their value, which also rewrites
    their ``Customer.revenue`` (orders of the last 12 months) and reclassifies them
    (:func:`plugins.sales.value.recompute`; its nightly job moves the window for everyone)."""
    from plugins.sales import value

    value.recompute(customer_ids)


def menu_items(company: Any) -> list[MenuItem]:
    return [
        MenuItem("sales.orders", "Orders", "订单", 24, group="Sales", group_zh="销售"),
        MenuItem(
            "sales.receivables", "Receivables", "应收账款", 25, group="Sales", group_zh="销售"
        ),
    ]


# -- reading orders -------------------------------------------------------------------------------


def visible_order(order_id: int) -> Order | None:
    """The order ``order_id`` if it is the company's and its customer is one the reader sees."""
    if not 0 < order_id <= 2**31 - 1:
        return None
    return db.session.scalar(
        select(Order).join(Customer, Customer.id == Order.customer_id).where(Order.id == order_id)
    )


def hidden_order(order_id: int) -> bool:
    """Whether ``order_id`` is an order of the company whose customer the record rule hides."""
    if not 0 < order_id <= 2**31 - 1:
        return False
    with access.all_customers():
        return db.session.scalar(select(Order.id).where(Order.id == order_id)) is not None


def payments_of(order: Order) -> list[tuple[Payment, str | None]]:
    """The order's payments, oldest first, with who recorded each."""
    return list(
        db.session.execute(
            select(Payment, User.name)
            .outerjoin(User, User.id == Payment.user_id)
            .where(Payment.order_id == order.id)
            .order_by(Payment.paid_on, Payment.id)
        )
    )


def names(order: Order) -> dict[str, str | None]:
    """Names of the order's customer, channel, owner and opportunity (one query)."""
    row = db.session.execute(
        select(Customer.name, Channel.name, User.name, Opportunity.name)
        .select_from(Order)
        .join(Customer, Customer.id == Order.customer_id)
        .outerjoin(Channel, Channel.id == Order.channel_id)
        .outerjoin(User, User.id == Order.owner_id)
        .outerjoin(Opportunity, Opportunity.id == Order.opportunity_id)
        .where(Order.id == order.id)
    ).one()
    return dict(zip(("customer", "channel", "owner", "opportunity"), row, strict=True))


def panels(subject_type: str, subject: Any) -> list[Any]:
    return web_orders.panels(subject_type, subject)


def timeline(customer: Any) -> list[Any]:
    return web_orders.timeline(customer)


def widgets(company: Any, user: Any) -> list[Any]:
    """The dashboard box *应收账款*: ageing of open orders and the most overdue ones."""
    return [Panel("Receivables", web_orders.widget, "应收账款", order=14)]


def resources() -> list[Any]:
    return web_orders.resources()


def reports() -> list[Any]:
    return web_orders.reports()


# -- demo -----------------------------------------------------------------------------------------

#: Products by demo company (matched on its code): ``(name, unit, list price)``.
PRODUCTS: dict[str, tuple[tuple[str, str, int], ...]] = {
    "pharma": (
        ("阿莫西林胶囊 0.25g×24粒", "件", 1440),
        ("头孢克肟分散片 0.1g×6片", "件", 2160),
        ("布洛芬缓释胶囊 0.3g×20粒", "件", 1680),
        ("复方丹参滴丸 27mg×180丸", "件", 3960),
        ("阿托伐他汀钙片 20mg×7片", "件", 4200),
        ("缬沙坦胶囊 80mg×14粒", "件", 3360),
        ("注射用头孢曲松钠 1.0g", "箱", 5400),
        ("蒙脱石散 3g×10袋", "件", 960),
        ("医用外科口罩（50只/盒）", "箱", 1200),
        ("血糖试纸（50条/盒）", "箱", 2880),
    ),
    "insurance": (
        ("团体意外伤害保险（年度）", "人", 260),
        ("企业补充医疗保险", "人", 1180),
        ("雇主责任险", "人", 420),
        ("员工团体定期寿险", "人", 360),
        ("高端医疗团体计划", "人", 6800),
        ("财产一切险", "份", 48000),
        ("车队商业险", "辆", 5200),
        ("安全生产责任险", "份", 26000),
    ),
    "property": (
        ("地下车位年租", "个", 4800),
        ("会所场地租赁（半天）", "场", 1800),
        ("家政深度保洁套餐", "次", 680),
        ("室内维修服务包", "次", 380),
        ("电梯广告位（季度）", "块", 3600),
        ("储藏室年租", "间", 2400),
        ("社区团购年货礼盒", "盒", 298),
        ("拎包入住软装套餐", "套", 26000),
        ("写字楼保洁外包（月）", "月", 12000),
    ),
}
GENERIC_PRODUCTS = (
    ("标准产品A", "件", 1000),
    ("标准产品B", "件", 2500),
    ("技术服务（人天）", "人天", 1800),
    ("年度维保合同", "份", 12000),
)


def demo_products(code: str) -> tuple[tuple[str, str, int], ...]:
    """The product catalogue for a demo company, chosen by its code (pharma, insurance…)."""
    for key, products in PRODUCTS.items():
        if key in (code or ""):
            return products
    return GENERIC_PRODUCTS


def _split(total: Decimal, parts: int, rng: random.Random) -> list[Decimal]:
    """``total`` (whole yuan) in ``parts`` random whole-yuan parts that add up exactly."""
    if parts <= 1 or total < parts * 100:
        return [total]
    weights = [rng.uniform(0.5, 1.5) for _ in range(parts)]
    scale = sum(weights)
    cuts = [Decimal(int(total * Decimal(w / scale))) for w in weights[:-1]]
    return [*cuts, total - sum(cuts)]


def demo_lines(
    amount: Decimal, catalogue: Sequence[tuple[str, str, int]], rng: random.Random
) -> list[LineInput]:
    """Product lines adding up to exactly ``amount`` (whole yuan), 20–40 % margin each."""
    lines: list[LineInput] = []
    left = amount
    for n in range(rng.choice([1, 1, 2, 2, 3])):
        name, _unit, base = rng.choice(catalogue)
        margin = Decimal(str(rng.uniform(0.2, 0.4)))
        last = n == 2 or left < base * 3 or rng.random() < 0.4
        if last:
            cents = int(left * 100)
            want = max(1, int(left / base))
            qty = next(q for q in range(want, 0, -1) if cents % q == 0)
            price = (left / qty).quantize(CENT)
        else:
            price = (Decimal(base) * Decimal(str(rng.uniform(0.9, 1.1)))).quantize(Decimal(1))
            qty = max(1, int(left * Decimal(str(rng.uniform(0.3, 0.6))) / price))
        cost = (price * (1 - margin)).quantize(CENT)
        lines.append(LineInput(name, Decimal(qty), price, cost))
        left -= line_total(Decimal(qty), price)
        if last or left <= 0:
            break
    if left > 0:  # what rounding left over
        name, _unit, _base = rng.choice(catalogue)
        lines.append(LineInput(name, Decimal(1), left, (left * Decimal("0.7")).quantize(CENT)))
    return lines


#: Share of the orders of each ageing bucket left (partly) unpaid in the demo.
DEMO_OPEN_SHARE = {"not_due": 1.0, "d0_30": 0.45, "d31_60": 0.25, "d61_90": 0.2, "d90_plus": 0.06}


@dataclass
class _Plan:
    """A demo order to create: its customer, date, amount and due date."""

    customer: Customer
    ordered_on: date
    amount: Decimal
    due_on: date


def _demo_dates(
    customer: Customer, rng: random.Random, day: date, recent: bool, count: int
) -> list[date]:
    """``count`` order dates: in the last twelve months (``recent``) or the twelve before,
    never before the customer was created."""
    born = customer.created_at.astimezone(zone()).date() if customer.created_at else EARLIEST
    low, high = (
        (year_before(day) + timedelta(days=1), day)
        if recent
        else (year_before(year_before(day)) + timedelta(days=1), year_before(day))
    )
    low = max(low, born)
    if low > high:
        return []
    span = (high - low).days
    return sorted(low + timedelta(days=rng.randint(0, span)) for _ in range(count))


def _demo_plans(
    customers: Sequence[Customer], terms: dict[int | None, int], rng: random.Random, day: date
) -> list[_Plan]:
    """Orders for each customer: the last twelve months add up to the revenue it was seeded
    with (less any orders it has already), the twelve before are of a similar size."""
    have = dict(
        db.session.execute(
            select(Order.customer_id, func.sum(Order.amount))
            .where(Order.state != "cancelled", Order.ordered_on > year_before(day))
            .group_by(Order.customer_id)
        ).all()
    )
    plans: list[_Plan] = []
    for customer in customers:
        revenue = Decimal(int(customer.revenue or 0))
        budget = max(ZERO, revenue - money(have.get(customer.id)))
        budget = Decimal(int(budget))
        rounds = [(True, budget, rng.randint(2, 5))] if budget >= 100 else []
        scale = revenue or Decimal(rng.choice([20000, 80000, 300000]))
        older = Decimal(int(scale * Decimal(str(rng.uniform(0.5, 1.2)))))
        rounds.append((False, older, rng.randint(1, 4)))
        for recent, total, count in rounds:
            dates = _demo_dates(customer, rng, day, recent, count)
            for when, amount in zip(dates, _split(total, len(dates), rng), strict=False):
                if amount <= 0:
                    continue
                due = when + timedelta(days=terms.get(customer.channel_id, DEFAULT_TERMS))
                plans.append(_Plan(customer, when, amount, due))
    return sorted(plans, key=lambda p: (p.ordered_on, p.customer.id))


def _demo_fates(orders: Sequence[Order], rng: random.Random, day: date) -> dict[int, str]:
    """``paid``, ``partial`` or ``unpaid`` for each order: most paid, some open in every ageing
    bucket (at least one per overdue bucket that has orders)."""
    fates: dict[int, str] = {}
    by_bucket: dict[str, list[Order]] = {}
    for order in orders:
        bucket = bucket_of(order.due_on, day)
        by_bucket.setdefault(bucket, []).append(order)
        open_ = rng.random() < DEMO_OPEN_SHARE[bucket]
        fates[order.id] = rng.choice(["partial", "unpaid"]) if open_ else "paid"
    for bucket in OVERDUE_KEYS:
        group = by_bucket.get(bucket, [])
        if group and all(fates[o.id] == "paid" for o in group):
            fates[rng.choice(group).id] = "partial"
    for order in by_bucket.get("not_due", []):
        fates[order.id] = "partial" if rng.random() < 0.3 else "unpaid"
    return fates


def _demo_payments(
    order: Order, fate: str, rng: random.Random, day: date
) -> list[tuple[date, Decimal]]:
    """``(paid_on, amount)`` of the payments of a demo order with its fate."""
    amount = money(order.amount)
    since = max(0, (day - order.ordered_on).days)
    if fate == "unpaid":
        return []
    if fate == "partial":
        part = (amount * Decimal(str(rng.uniform(0.2, 0.6)))).quantize(Decimal(1))
        when = order.ordered_on + timedelta(days=rng.randint(0, min(20, since)))
        return [(min(when, day), part)] if part > 0 else []
    last = min(day, max(order.ordered_on, order.due_on + timedelta(days=rng.randint(-20, 10))))
    if rng.random() < 0.35 and amount >= 1000:
        deposit = (amount * Decimal(str(rng.uniform(0.3, 0.5)))).quantize(Decimal(1))
        first = min(last, order.ordered_on + timedelta(days=rng.randint(0, 5)))
        return [(first, deposit), (last, amount - deposit)]
    return [(last, amount)]


def _demo_method(amount: Decimal, rng: random.Random) -> str:
    if amount >= 200000:
        return rng.choice(["transfer", "transfer", "acceptance"])
    if amount < 5000:
        return rng.choice(["wechat", "alipay", "transfer", "cash"])
    return rng.choice(["transfer", "transfer", "cheque", "card"])


def _demo_moment(day: date, rng: random.Random) -> datetime:
    """A working-hours moment of ``day`` (company time), not later than now."""
    local = datetime.combine(day, time(rng.randint(9, 17), rng.randint(0, 59)), zone())
    return min(local.astimezone(UTC), utcnow())


def _demo_credit() -> None:
    """The distributor or agent owing the most gets a credit limit it has almost used up (93 %);
    channels with a limit that their orders nearly reach get a roomier one."""
    owed = outstanding_by_channel()
    if not owed:
        return
    channels = {c.id: c for c in db.session.scalars(select(Channel).where(Channel.id.in_(owed)))}
    trade = [k for k in owed if channels[k].type in ("distributor", "agent")] or list(owed)
    tight = max(trade, key=lambda k: owed[k])
    for channel_id, total in owed.items():
        channel = channels[channel_id]
        if channel_id == tight:
            channel.credit_limit = Decimal(int(total / Decimal("0.93") / 1000 + 1) * 1000)
        elif channel.credit_limit is not None and total > channel.credit_limit * Decimal("0.8"):
            channel.credit_limit = Decimal(int(total / Decimal("0.6") / 10000 + 1) * 10000)
    db.session.flush()


def _demo_link_opportunities(orders: Sequence[Order]) -> None:
    """Each won opportunity gets the order of its customer dated closest to its close."""
    from plugins.sales.models import Stage

    won = select(Stage.key).where(Stage.outcome == "won")
    by_customer: dict[int, list[Order]] = {}
    for order in orders:
        by_customer.setdefault(order.customer_id, []).append(order)
    for opp in db.session.scalars(select(Opportunity).where(Opportunity.state.in_(won))):
        closed = (opp.closed_at or opp.updated_at or utcnow()).astimezone(zone()).date()
        free = [o for o in by_customer.get(opp.customer_id, []) if o.opportunity_id is None]
        if free:
            min(free, key=lambda o: abs((o.ordered_on - closed).days)).opportunity_id = opp.id
    db.session.flush()


def demo(company: Any, fake: Any) -> None:
    """Demo orders: about two years of them per company, the last twelve months adding up to
    each customer's revenue as the core seeded it (so value tiers stay as they are), most paid,
    some partly, some overdue in every ageing bucket; orders linked to won opportunities; one
    channel close to its credit limit. Uses its own random generator."""
    rng = random.Random(f"sales-orders-{company.code}")
    day = today()
    catalogue = demo_products(company.code)
    members = dict(db.session.execute(select(Membership.user_id, Membership.role)).all())
    users = {u.id: u for u in db.session.scalars(select(User).where(User.id.in_(members)))}
    fallback = next(
        (users[i] for i, role in sorted(members.items()) if role in ("manager", "admin")), None
    )
    if fallback is None:
        return
    terms = {
        c.id: 60 if c.type == "distributor" else DEFAULT_TERMS
        for c in db.session.scalars(select(Channel))
    }
    customers = db.session.scalars(
        select(Customer).where(Customer.status != "potential").order_by(Customer.id)
    ).all()
    orders: list[Order] = []
    for plan in _demo_plans(customers, terms, rng, day):
        owner_id = plan.customer.owner_id
        user = users.get(owner_id) if members.get(owner_id) not in (None, "viewer") else None
        user = user or fallback
        data = OrderInput(
            customer_id=plan.customer.id,
            ordered_on=plan.ordered_on,
            due_on=plan.due_on,
            owner_id=user.id,
            lines=demo_lines(plan.amount, catalogue, rng),
        )
        moment = _demo_moment(plan.ordered_on, rng)
        orders.append(create_order(data, user, at=moment, via="demo", keep_revenue=False))
    fates = _demo_fates(orders, rng, day)
    for order in orders:
        user = users.get(order.owner_id) or fallback
        for paid_on, amount in _demo_payments(order, fates[order.id], rng, day):
            at = max(_demo_moment(paid_on, rng), order.created_at)
            record_payment(
                order, amount, paid_on, user, method=_demo_method(amount, rng), at=at, via="demo"
            )
    _demo_link_opportunities(orders)
    _demo_credit()


__all__ = [
    "BUCKETS",
    "Credit",
    "LineInput",
    "OrderInput",
    "PaymentRefused",
    "create_order",
    "credit_check",
    "record_payment",
    "update_order",
]

from plugins.sales import web_orders  # noqa: E402,F401  - registers the pages on the blueprint
