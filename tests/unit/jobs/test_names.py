"""Names with NUL or other control characters are refused when saved (attack report LOW-15)."""

from __future__ import annotations

from typing import Any

import pytest

from snapkeep.errors import ValidationError
from snapkeep.jobs.models import FilterFields, HookFields, JobFields, ScheduleFields, validate
from snapkeep.jobs.models.destination import DestinationFields

ID = "0123456789abcdef01234567"
VALID: list[tuple[type, dict[str, Any]]] = [
    (JobFields, {"type": "1", "destination": ID, "contains": "511", "structure": "1"}),
    (DestinationFields, {"type": "Local", "options": {"path": "/b"}}),
    (ScheduleFields, {"type": "3", "type_data": ["2"]}),
    (HookFields, {"script": "/bin/true", "position_type": 1, "position": 1}),
    (FilterFields, {"type": 8}),
]
BAD = ["a\x00b", "line\nbreak", "carriage\rreturn", "tab\there", "bell\x07", "del\x7f", "c1\x85", "ls\u2028"]


@pytest.mark.parametrize(("model", "fields"), VALID, ids=lambda value: getattr(value, "__name__", ""))
@pytest.mark.parametrize("name", BAD, ids=repr)
def test_control_characters_in_names_are_refused(model: type, fields: dict[str, Any], name: str) -> None:
    with pytest.raises(ValidationError) as caught:
        validate(model, {**fields, "name": name})
    assert caught.value.field == "name"
    assert f"name: must not contain control characters such as NUL, tab or line breaks (got {name!r})" in str(
        caught.value
    )


@pytest.mark.parametrize(("model", "fields"), VALID, ids=lambda value: getattr(value, "__name__", ""))
def test_printable_names_in_any_script_are_kept(model: type, fields: dict[str, Any]) -> None:
    name = "Sites & mail: Ünïcødé 名前 (nightly) \u200d"
    assert validate(model, {**fields, "name": name}).name == name


def test_a_nul_in_a_job_name_is_refused_over_the_api(api: Any, make: Any) -> None:
    destination = make.ok(
        "manageDestination",
        {"action": "create", "name": "d", "type": "Local", "options": {"path": "/backups"}},
    )
    answer = api.call(
        "manageBackupJob",
        "action=create&name=a%00b&type=2&contains=2&structure=1&include_list[]=/srv"
        f"&destination[]={destination['_id']}",
    )
    assert answer["success"] == 0
    assert "name: must not contain control characters" in answer["message"]
    assert make.ok("listBackupJobs")["total"] == 0
