"""What README.md tells a reader works as written."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

from flapwatch.domain.rules import parse_rule_set

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_the_rule_set_example_is_a_valid_rule_set():
    block = re.search(r"```json\n(.*?)```", README, re.DOTALL)
    assert block is not None
    rule_set = parse_rule_set(json.loads(block.group(1)))
    assert [rule.id for rule in rule_set.rules] == ["venous", "temperature", "sto2", "overdue"]


def test_readme_opens_with_the_two_set_up_commands():
    blocks = re.findall(r"```sh\n(.*?)\n```", README, re.DOTALL)
    assert "flapwatch demo" in blocks[0] and "flapwatch serve" in blocks[0]
    assert "pytest" in blocks[1] and "FLAPWATCH_TEST_DATABASE_URL" in blocks[1]
    assert README.index(blocks[0]) < README.index("## ")


def test_the_curl_example_posts_a_check_the_api_accepts(app, make, session):
    from flapwatch.services import SYSTEM
    from flapwatch.services.tokens import create_token

    example = re.search(r"curl -sS -X POST (\S+).*?-d '(.*?)'", README, re.DOTALL)
    assert example is not None
    url, body = example.group(1), json.loads(example.group(2))
    flap = make.reconstruction(hours_ago=10)
    make.user("nurse", "PLAST-W3", username="doppler-gw")
    _, token = create_token(session, SYSTEM, "doppler-gw", name="readme")
    path = url.removeprefix("http://127.0.0.1:8000").replace("/1/", f"/{flap.id}/")
    body["taken_at"] = (flap.surgery_end_at + timedelta(hours=2)).isoformat()

    response = app.test_client().post(
        path, json=body, headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "r1"}
    )

    assert response.status_code == 201, response.json
    assert {flag["rule_id"] for flag in response.json["flags"]} >= {"venous"}
    assert response.json["escalation_id"] is not None
