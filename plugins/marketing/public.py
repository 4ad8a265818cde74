"""Public pages (no login) under ``/p/<company code>/marketing/``:

- ``/u/<token>`` -- the unsubscribe link at the end of every message: GET shows what will stop
  (the channel and purpose of the message) and a button; POST withdraws that consent (source
  ``unsubscribe link (message N)``) and thanks the customer. A link stays valid: unsubscribing
  twice says the same. Anonymous POSTs are rate-limited per company and address (429 beyond);
- ``/o/<token>.gif`` -- the open-tracking pixel of e-mails: records the first open.

The token is the message's id and an HMAC of it (:func:`plugins.marketing.campaigns.token_for`);
an unknown or forged token answers 404. The pages show no personal data.
"""

from __future__ import annotations

import base64
from typing import Any

from flask import Response, abort, render_template, request

from core.extend import db, rate_allow, require_company
from core.models import Company
from plugins.marketing import campaigns
from plugins.marketing.blueprint import public_bp
from plugins.marketing.models import Campaign

#: Unsubscribe submissions one address may make per company.
LIMIT = "30/hour"
_PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


@public_bp.route("/u/<token>", methods=["GET", "POST"])
def unsubscribe(token: str) -> Any:
    message = campaigns.message_for_token(token)
    if message is None:
        abort(404)
    campaign = db.session.get(Campaign, message.campaign_id)
    purpose = campaign.purpose if campaign else "marketing"
    company = db.session.get(Company, require_company())
    done = False
    if request.method == "POST":
        if not rate_allow(
            "marketing.unsubscribe", LIMIT, key=f"{company.id}:{request.remote_addr}"
        ):
            abort(429)
        campaigns.unsubscribe(message)
        db.session.commit()
        done = True
    return render_template(
        "marketing/unsubscribe.html",
        public_company=company,
        done=done,
        channel=campaigns.channel_label(message.channel),
        purpose=campaigns.purpose_label(purpose),
    )


@public_bp.route("/o/<token>.gif")
def opened(token: str) -> Any:
    message = campaigns.message_for_token(token)
    if message is not None:
        campaigns.mark(message, "opened")
        db.session.commit()
    return Response(_PIXEL, mimetype="image/gif", headers={"Cache-Control": "no-store"})
