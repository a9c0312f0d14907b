"""Hooks for the schemathesis run of crates/server/tests/api/schemathesis.rs.

Each valid Idempotency-Key schemathesis sends gets a fresh suffix. By the
contract (API.md), a key sent again with the same body replays the first
answer: the same order id, even once that order is deleted. Hypothesis sends
the same drawn values more than once (short keys such as "0" come up often,
and it re-runs the steps of a sequence it mutates), so a create answered by
replay could name an order that an earlier scenario deleted, which the
stateful phase reports as "Created resource not found" (ST302). Fresh keys
keep that check meaningful; the replay itself is tested by the API tests.
Invalid keys are left as drawn, so their refusal is still checked.
"""

import re
import uuid

import schemathesis

HEADER = "Idempotency-Key"
# The document's pattern for the header (crates/http/src/openapi.rs).
VALID = re.compile(r"^[\t ]*[\x21-\x7E](?:[\t\x20-\x7E]{0,253}[\x21-\x7E])?[\t ]*$")


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    key = (case.headers or {}).get(HEADER)
    if isinstance(key, str) and VALID.match(key):
        # 222 + 1 + 32 = 255 characters at most, the longest key allowed.
        case.headers[HEADER] = f"{key.strip()[:222]}-{uuid.uuid4().hex}"
