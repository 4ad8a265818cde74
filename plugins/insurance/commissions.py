"""Commission schedules, the hierarchy frozen at sale, monthly settlements, clawbacks
(DOMAIN §2 利润分配, §6). See docs/insurance.md."""

from __future__ import annotations
