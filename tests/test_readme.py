"""What README.md tells a reader works as written."""

from __future__ import annotations

import json
import re
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
