"""Validation building blocks shared by the object models, and ``validate``.

Values may arrive as strings (command line, HTTP forms): integers, 1/0 booleans, a single value for a
list and an empty value for an empty list are all accepted. ``validate(Model, data)`` turns every
pydantic problem into one ``ValidationError`` whose message names each bad field by its bracket path
(``schedules[0][retain]``) and, for enumerations, the allowed values.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError
from pydantic_core import PydanticCustomError

from snapkeep.errors import ValidationError
from snapkeep.ids import is_id


def describe(choices: Mapping[Any, str]) -> str:
    """``1 (Incremental), 2 (Archived) or 4 (Compressed)``; bare values when the label is the value."""
    parts = [str(key) if label == str(key) else f"{key} ({label})" for key, label in choices.items()]
    if len(parts) > 12:
        return f"{parts[0]} to {parts[-1]}"
    return ", ".join(parts[:-1]) + f" or {parts[-1]}" if len(parts) > 1 else parts[0]


def shown(value: Any, limit: int = 60) -> str:
    """``repr(value)``, shortened for an error message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 5] + "...'" + f" ({len(str(value))} characters)"


def as_int(value: Any) -> int | None:
    """An integer from an int, an integral float or a decimal string; None otherwise."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
        return int(value.strip())
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


class FieldProblem(ValueError):
    """Raised inside a model validator to name a field other than the one being validated."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(problem)
        self.field = field
        self.problem = problem


def field_error(field: str, template: str, **values: Any) -> FieldProblem:
    """A FieldProblem for ``field`` with ``template`` formatted with ``values``."""
    return FieldProblem(field, template.format(**values))


def one_of(choices: Mapping[int, str], value: Any, field: str) -> int:
    """``value`` as one of the integer ``choices``; raises FieldProblem naming ``field`` otherwise."""
    number = as_int(value)
    if number is None or number not in choices:
        raise field_error(
            field, "must be one of {allowed} (got {got})", allowed=describe(choices), got=shown(value)
        )
    return number


def choice(choices: Mapping[int, str]) -> BeforeValidator:
    """An integer that must be one of ``choices``; the error lists them."""
    allowed = describe(choices)
    allowed = allowed if len(choices) < 3 else f"one of {allowed}"

    def check(value: Any) -> int:
        number = as_int(value)
        if number is None or number not in choices:
            raise PydanticCustomError(
                "choice", "must be {allowed} (got {got})", {"allowed": allowed, "got": shown(value)}
            )
        return number

    return BeforeValidator(check)


def integer(minimum: int | None = None, maximum: int | None = None) -> BeforeValidator:
    """An integer within bounds; accepts decimal strings."""

    def check(value: Any) -> int:
        number = as_int(value)
        if number is None:
            raise PydanticCustomError("integer", "must be an integer (got {got})", {"got": shown(value)})
        if minimum is not None and number < minimum:
            raise PydanticCustomError(
                "range", "must be at least {minimum} (got {got})", {"minimum": minimum, "got": number}
            )
        if maximum is not None and number > maximum:
            raise PydanticCustomError(
                "range", "must be at most {maximum} (got {got})", {"maximum": maximum, "got": number}
            )
        return number

    return BeforeValidator(check)


def _flag(value: Any) -> bool:
    if value is None or value == "":
        return False
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true"}:
        return True
    if text in {"0", "false", "null"}:
        return False
    raise PydanticCustomError("flag", "must be 1 or 0 (got {got})", {"got": shown(value)})


def listish(value: Any) -> Any:
    """An empty value is an empty list; a single value is a list of one."""
    if value is None or value == "":
        return []
    if isinstance(value, str | int):
        return [value]
    return value


def objectish(value: Any) -> Any:
    """An empty value is an empty object."""
    return {} if value is None or value == "" else value


def _object_id(value: Any) -> str:
    if not is_id(value):
        raise PydanticCustomError(
            "object_id", "must be an ID of 24 lowercase hex characters (got {got})", {"got": shown(value)}
        )
    return str(value)


def _absolute_path(value: Any) -> str:
    if not isinstance(value, str) or not value.startswith("/"):
        raise PydanticCustomError(
            "absolute_path", "must be an absolute path starting with / (got {got})", {"got": shown(value)}
        )
    if "\x00" in value:
        raise PydanticCustomError("absolute_path", "must not contain a NUL byte", {})
    return value


def _plain_name(value: str) -> str:
    """Names reach logs, hook arguments, environment variables and file names: a NUL made every hook
    run of the job fail (attack report LOW-15), and other control characters forge or hide log lines."""
    if any(unicodedata.category(char) in ("Cc", "Zl", "Zp") for char in value):
        raise PydanticCustomError(
            "control_character",
            "must not contain control characters such as NUL, tab or line breaks (got {got})",
            {"got": shown(value)},
        )
    return value


Flag = Annotated[bool, BeforeValidator(_flag)]
ObjectId = Annotated[str, BeforeValidator(_object_id)]
AbsolutePath = Annotated[str, BeforeValidator(_absolute_path)]
Name = Annotated[str, Field(min_length=1, max_length=255), AfterValidator(_plain_name)]
Text = Annotated[str, Field(min_length=1)]
NonNegative = Annotated[int, integer(0)]
IdList = Annotated[list[ObjectId], BeforeValidator(listish)]


class Strict(BaseModel):
    """Base of every model: unknown fields are refused by name."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


Model = TypeVar("Model", bound=BaseModel)

_PROBLEMS = {
    "missing": "is required",
    "too_short": "needs at least one entry",
    "extra_forbidden": "unknown field",
    "string_type": "must be text",
    "list_type": "must be a list",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "dict_type": "must be an object",
}


def field_path(location: tuple[Any, ...], prefix: str = "") -> str:
    """``("schedules", 0, "_id")`` -> ``schedules[0][_id]`` (the request's own bracket syntax)."""
    parts = [str(part) for part in location]
    if prefix:
        parts.insert(0, prefix)
    if not parts:
        return "(request)"
    return parts[0] + "".join(f"[{part}]" for part in parts[1:])


def validate(model: type[Model], data: Mapping[str, Any], *, prefix: str = "") -> Model:
    """Validate ``data`` against ``model``. Raises ValidationError naming every bad field."""
    try:
        return model.model_validate(dict(data))
    except PydanticValidationError as error:
        problems: list[str] = []
        fields: list[str] = []
        for item in error.errors(include_url=False):
            cause = (item.get("ctx") or {}).get("error")
            if isinstance(cause, FieldProblem):
                path, problem = field_path((cause.field,), prefix), cause.problem
            else:
                location = tuple(part for part in item["loc"] if not str(part).startswith("function-"))
                path = field_path(location, prefix)
                problem = _PROBLEMS.get(item["type"]) or item["msg"][:1].lower() + item["msg"][1:]
            fields.append(path)
            problems.append(f"{path}: {problem}")
        raise ValidationError(
            "; ".join(problems), field=fields[0] if fields else "", problem="invalid"
        ) from None
