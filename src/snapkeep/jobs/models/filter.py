"""The Account Filter model (API.md section 5): which fields count depends on ``type``."""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, Field, model_validator

from snapkeep.jobs.models.base import Name, NonNegative, ObjectId, Strict, Text, choice, field_error, listish
from snapkeep.sources.name_regex import RegexError, compile_name_regex

FILTER_TYPES = {
    2: "accounts list",
    4: "resellers",
    8: "suspended",
    16: "disk usage",
    32: "inodes",
    64: "packages",
    128: "first-character range",
    256: "regular expression",
    512: "tags",
}
LIST_TYPES = (2, 4, 64, 512)
FILTER_CONDITIONS = {1: "include", 2: "exclude"}


class FilterFields(Strict):
    """The writable fields of an Account Filter."""

    name: Name = Field(description="free text, 1-255 characters")
    type: Annotated[int, choice(FILTER_TYPES)] = Field(
        description="2 accounts list, 4 resellers, 8 suspended, 16 disk usage, 32 inodes, 64 packages, "
        "128 first-character range, 256 regular expression, 512 tags"
    )
    condition: Annotated[int, choice(FILTER_CONDITIONS)] = Field(1, description="1 include, 2 exclude")
    group_id: ObjectId | None = Field(None, description="the group to join (default: a new group)")
    entries: Annotated[list[Text], BeforeValidator(listish)] = Field(
        default_factory=list,
        alias="list",
        description="accounts, resellers, packages or tags (types 2, 4, 64, 512)",
    )
    usage: NonNegative = Field(0, description="bytes (type 16) or inodes (type 32)")
    range_start: str = Field("", max_length=1, description="first character of the range (type 128)")
    range_end: str = Field("", max_length=1, description="last character of the range (type 128)")
    regex: str = Field(
        "",
        description="regular expression searched for in the username (type 256): at most 256 "
        "characters, no back-references or look-arounds",
    )

    @model_validator(mode="after")
    def _type_values(self) -> FilterFields:
        if self.type in LIST_TYPES and not self.entries:
            raise field_error(
                "list", "needs at least one entry for a filter of type {kind}", kind=FILTER_TYPES[self.type]
            )
        if self.type == 128:
            if len(self.range_start) != 1 or len(self.range_end) != 1:
                raise field_error("range_start", "a first-character range needs range_start and range_end")
            if self.range_start.lower() > self.range_end.lower():
                raise field_error("range_end", "must not come before range_start")
        if self.type == 256:
            if not self.regex:
                raise field_error("regex", "a regular-expression filter needs a pattern")
            try:  # the bounds of sources.name_regex: length, program size, regular constructs only
                compile_name_regex(self.regex)
            except RegexError as error:
                raise field_error("regex", "{why}", why=str(error)) from None
        return self
