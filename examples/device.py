#!/usr/bin/env python3
"""A bedside monitor feeding flapwatch through its JSON API, using nothing but the standard
library and the documented endpoints (GET /api/v1/openapi.json).

It admits a patient, adds a free flap, posts 100 checks over the flap's first two and a half
days (the last ones showing venous congestion), sends a tissue oximeter's last hour of StO₂
readings in one batch, then reads the flags and the open escalations. Every POST carries an
Idempotency-Key and is retried after a dropped connection, so a check is never lost and
never stored twice (a batch of readings sent again stores nothing twice either).

    python examples/device.py --url http://127.0.0.1:8000 --token fwt_... --unit DEMO

The token's account must be a unit coordinator (unit_admin) or administrator to admit the
patient and add the flap; a nurse's token can post checks to an existing flap with --flap ID.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

CHECKS = 100
EVERY = timedelta(minutes=35)
OXIMETER = "T.Ox gateway 2"


class Api:
    def __init__(self, url: str, token: str) -> None:
        self.base = url.rstrip("/") + "/api/v1"
        self.token = token

    def call(self, method: str, path: str, body: Any = None, *, retries: int = 5) -> Any:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if method == "POST":
            # One key per logical request, reused by its retries.
            headers["Idempotency-Key"] = str(uuid.uuid4())
        for attempt in range(retries):
            request = urllib.request.Request(  # noqa: S310 - the flapwatch URL given
                self.base + path, data=data, headers=headers, method=method
            )
            try:
                with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                    return json.load(response)
            except urllib.error.HTTPError as error:
                problem = json.load(error).get("error", {})
                if error.code >= 500 and attempt + 1 < retries:
                    time.sleep(2**attempt)
                    continue
                raise SystemExit(
                    f"{method} {path}: {error.code} {problem.get('message')} "
                    f"{problem.get('fields') or ''}"
                ) from None
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if attempt + 1 == retries:
                    raise
                time.sleep(2**attempt)
        raise AssertionError("unreachable")


def reading(number: int) -> dict[str, Any]:
    """A stable flap for the first 90 checks, then venous congestion setting in."""
    failing = number >= CHECKS - 10
    flap = 34.6 - (0.25 * (number - (CHECKS - 10)) if failing else 0.0)
    return {
        "colour": "dusky" if number >= CHECKS - 4 else "pink",
        "flap_temperature_c": round(flap, 1),
        "control_temperature_c": 35.2,
        "capillary_refill": "brisk" if failing else "normal",
        "doppler_arterial": "present",
        "doppler_venous": "absent" if number >= CHECKS - 2 else "present",
        "sto2_percent": 78.0 - (3.0 * (number - (CHECKS - 10)) if failing else 0.0),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--token", default=os.environ.get("FLAPWATCH_TOKEN"))
    parser.add_argument("--unit", default="DEMO")
    parser.add_argument("--flap", type=int, help="Post to this reconstruction instead.")
    options = parser.parse_args()
    if not options.token:
        parser.error("give --token or set FLAPWATCH_TOKEN (flapwatch create-token USERNAME)")
    api = Api(options.url, options.token)

    now = datetime.now(UTC)
    surgery_end = now - EVERY * CHECKS - timedelta(minutes=20)
    if options.flap is None:
        patient = api.call(
            "POST",
            "/patients",
            {
                "mrn": f"DEV{uuid.uuid4().hex[:10].upper()}",
                "name": "Device Test Patient",
                "date_of_birth": "1968-04-02",
                "unit": options.unit,
            },
        )
        flap = api.call(
            "POST",
            "/reconstructions",
            {
                "patient_id": patient["id"],
                "procedure": "DIEP free flap",
                "flap_kind": "free",
                "site": "left breast",
                "side": "left",
                "surgery_end_at": surgery_end.isoformat(),
                "surgeon": "Ms A Surgeon",
            },
        )
        flap_id = flap["id"]
        print(f"Reconstruction {flap_id} for patient {patient['id']} in {options.unit}")
    else:
        flap_id = options.flap

    flagged = 0
    for number in range(CHECKS):
        taken_at = surgery_end + EVERY * (number + 1)
        check = api.call(
            "POST",
            f"/reconstructions/{flap_id}/checks",
            {"taken_at": taken_at.isoformat(), **reading(number)},
        )
        if check["flags"]:
            flagged += 1
            for flag in check["flags"]:
                print(
                    f"check {check['id']} {flag['severity'].upper()} {flag['name']}: "
                    f"{'; '.join(flag['reasons'])} -> {flag['action']}"
                )
    print(f"{CHECKS} checks posted, {flagged} flagged; next due {check['next_due_at']}")

    # A tissue oximeter's gateway: readings every 10 minutes, sent as one batch. They are
    # judged by the rules but never stand in for the bedside check the schedule asks for.
    readings = api.call(
        "POST",
        f"/reconstructions/{flap_id}/readings",
        {
            "device": OXIMETER,
            "readings": [
                {"taken_at": (now - timedelta(minutes=m)).isoformat(), "sto2_percent": 50.0}
                for m in range(60, -1, -10)
            ],
        },
    )
    print(
        f"{len(readings['stored'])} readings from {OXIMETER} stored; the next bedside check "
        f"is still due {readings['next_due_at']}"
    )

    unit = api.call("GET", f"/reconstructions/{flap_id}")["unit"]
    cursor: str | None = None
    while True:
        query = f"/escalations?status=open&unit={unit}&limit=50"
        page = api.call("GET", query + (f"&cursor={cursor}" if cursor else ""))
        for escalation in page["items"]:
            reasons = escalation["reasons"]
            print(
                f"open escalation {escalation['id']} ({escalation['severity']}) on "
                f"reconstruction {escalation['reconstruction_id']} since "
                f"{escalation['opened_at']}; latest reason: {reasons[-1]}"
            )
        cursor = page["next_cursor"]
        if cursor is None:
            break
    return 0


if __name__ == "__main__":
    sys.exit(main())
