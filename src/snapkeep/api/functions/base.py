"""What every API function module shares: the function table types, the call context, parameter
checks, list parameters (API.md section 3) and output conventions (flags, times).

A function is a ``FunctionSpec``: name, summary, parameters (``ParamSpec``, derived from pydantic
models so the OpenAPI document and validation never disagree) and a handler
``handler(context, params) -> (message, data)`` that raises snapkeep errors for bad requests.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, Field

from snapkeep.clock import SYSTEM, Clock, isoformat
from snapkeep.errors import ValidationError
from snapkeep.home import default_home
from snapkeep.ids import is_id
from snapkeep.jobs import listing, users
from snapkeep.jobs.access import Principal, owners
from snapkeep.jobs.catalog import Catalog, Transaction
from snapkeep.jobs.models.base import NonNegative, Strict, choice, objectish, shown, validate

#: Who makes a call: an API user with what it may reach (``jobs.access``); the default is root.
Caller = Principal


@dataclass(frozen=True)
class ParamSpec:
    """One parameter of a function. ``type`` is a JSON-schema type name: string, integer, boolean,
    array, object, or ``any`` (several shapes, e.g. a schedule's ``type_data``)."""

    name: str
    type: str
    required: bool
    description: str


@dataclass
class CallContext:
    catalog: Catalog
    caller: Caller
    clock: Clock = SYSTEM
    #: what a successful call accepted but the caller should look at (the envelope's ``warnings``)
    warnings: list[str] = field(default_factory=list)

    @property
    def home(self) -> Path:
        """The data directory of the catalog behind this call (where logs, keys and downloads live)."""
        return self.catalog.home if self.catalog.home is not None else default_home()


Result = tuple[str, Any]
Handler = Callable[[CallContext, dict[str, Any]], Result]


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    summary: str
    parameters: list[ParamSpec]
    handler: Handler = field(repr=False)


def _json_type(schema: Mapping[str, Any]) -> str:
    if "type" in schema:
        return str(schema["type"])
    for option in schema.get("anyOf", []):
        if option.get("type") != "null":
            return _json_type(option)
    if "$ref" in schema or "allOf" in schema:
        return "object"
    return "any"


def param_specs(
    model: type[BaseModel], *, optional: bool = False, note: str = "", exclude: Iterable[str] = ()
) -> list[ParamSpec]:
    """ParamSpecs from a model's fields. ``optional`` marks all as not required and prefixes ``note``
    to the description of those the model requires."""
    properties = model.model_json_schema(by_alias=True).get("properties", {})
    specs = []
    for name, info in model.model_fields.items():
        key = info.alias or name
        if key in exclude:
            continue
        required = info.is_required()
        description = info.description or ""
        if optional and required and note:
            description = f"{note}; {description}" if description else note
        specs.append(
            ParamSpec(key, _json_type(properties.get(key, {})), required and not optional, description)
        )
    return specs


# --- common parameters ----------------------------------------------------------------------


class IdParams(Strict):
    id: Annotated[str, Field(alias="_id", description="the object's ID")]


def object_id(params: Mapping[str, Any], field_name: str = "_id") -> str:
    """The ID named by ``field_name``. Raises ValidationError when missing or malformed."""
    value = params.get(field_name)
    if value is None or value == "":
        raise ValidationError(field=field_name, problem="is required")
    if not is_id(value):
        raise ValidationError(
            field=field_name, problem=f"must be an ID of 24 lowercase hex characters (got {shown(value)})"
        )
    return str(value)


def no_parameters(params: Mapping[str, Any]) -> None:
    """For functions that take nothing: refuse any field by name."""
    for key in params:
        raise ValidationError(field=str(key), problem="unknown field")


def only_id(params: Mapping[str, Any]) -> str:
    """For functions that take nothing but ``_id``: refuse other fields, return the ID."""
    for key in params:
        if key != "_id":
            raise ValidationError(field=str(key), problem="unknown field")
    return object_id(params)


def one_object(
    context: CallContext,
    act: Callable[[Transaction, str], dict[str, Any]],
    ident: str,
    *,
    write: bool = False,
) -> dict[str, Any]:
    """``act(tx, ident)`` in one transaction (read-only unless ``write``): the body of the get and
    delete functions of one object by ID."""
    with context.catalog.transaction(write=write) as tx:
        return act(tx, ident)


ACTIONS = {"create", "modify"}


def manage_action(params: dict[str, Any]) -> tuple[str, str | None]:
    """Pop ``action`` and ``_id`` from ``params``. Raises ValidationError for a bad combination."""
    action = params.pop("action", None)
    if not isinstance(action, str) or action not in ACTIONS:
        got = "is required" if action in (None, "") else f"must be create or modify (got {shown(action)})"
        raise ValidationError(field="action", problem=got)
    if action == "create":
        if params.get("_id") not in (None, ""):
            raise ValidationError(field="_id", problem="must not be given on create (IDs are assigned)")
        params.pop("_id", None)
        return action, None
    ident = object_id(params)
    params.pop("_id")
    return action, ident


# --- list parameters ------------------------------------------------------------------------

SortOrder = Annotated[int, choice({1: "ascending", -1: "descending"})]


class ListParams(Strict):
    limit: NonNegative = Field(100, description="at most this many (0 = no limit)")
    skip: NonNegative = Field(0, description="skip this many first")
    sort: Annotated[dict[str, SortOrder], BeforeValidator(objectish)] = Field(
        default_factory=dict, description="sort[FIELD]=1|-1, several in order; dotted paths allowed"
    )
    find: Annotated[dict[str, Any], BeforeValidator(objectish)] = Field(
        default_factory=dict, description="find[FIELD]=VALUE exact match; dotted paths into nested objects"
    )
    filter: str = Field("", description="case-insensitive text matched against the name")


def _flatten(prefix: str, value: Any) -> Iterable[tuple[str, Any]]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from _flatten(f"{prefix}.{key}" if prefix else str(key), item)
    else:
        yield prefix, value


def _lookup(item: Any, path: str) -> Any:
    for part in path.split("."):
        if isinstance(item, Mapping):
            item = item.get(part)
        elif isinstance(item, list) and part.isdigit() and int(part) < len(item):
            item = item[int(part)]
        else:
            return None
    return item


_as_text = listing.as_text  # one rule for Python and SQL (jobs/listing.py)


def _matches(actual: Any, expected: Any) -> bool:
    if isinstance(actual, list):
        return any(_matches(item, expected) for item in actual) or _as_text(actual) == _as_text(expected)
    if actual is None:  # unset: a JetBackup flag is 1 or null, and find[disabled]=0 means "not set"
        return _as_text(expected) in ("", "0")
    return _as_text(actual) == _as_text(expected)


def _sort_key(value: Any) -> tuple[int, Any]:
    if value is None:
        return (0, 0)
    if isinstance(value, bool | int | float):
        return (1, value)
    return (2, str(value).lower())


def _name_of(item: Mapping[str, Any]) -> str:
    return str(item.get("name", ""))


def apply_list(
    items: list[dict[str, Any]],
    params: ListParams,
    *,
    text_of: Callable[[Mapping[str, Any]], str] = _name_of,
) -> tuple[list[dict[str, Any]], int]:
    """Filter, sort and page ``items`` (already in API shape); return the page and the total.

    ``filter`` is free text matched, ignoring case, against ``text_of(item)`` (default: its name).
    A find or sort on a field the items do not have is refused (``check_fields``)."""
    if items:
        check_fields(params, items[0])
    conditions = find_conditions(params)
    text = params.filter.lower()
    selected = [
        item
        for item in items
        if all(_matches(_lookup(item, path), expected) for path, expected in conditions)
        and (not text or text in text_of(item).lower())
    ]
    for path, order in reversed(list(params.sort.items())):

        def key(item: dict[str, Any], path: str = path) -> tuple[int, Any]:
            return _sort_key(_lookup(item, path))

        selected.sort(key=key, reverse=order == -1)
    total = len(selected)
    page = selected[params.skip :]
    if params.limit:
        page = page[: params.limit]
    return page, total


def list_params(params: Mapping[str, Any], model: type[ListParams] = ListParams) -> ListParams:
    """Validate list parameters. Raises ValidationError naming the field."""
    return validate(model, params)


def check_fields(params: ListParams, known: Iterable[str]) -> None:
    """Refuse a ``find`` or ``sort`` on a field the listed objects do not have, naming the fields that
    can be used (a JetBackup script's typo must not look like an empty answer: review D4)."""
    names = set(known)
    asked = [("find", path) for path, _ in find_conditions(params)] + [("sort", str(p)) for p in params.sort]
    for label, path in asked:
        if path.split(".")[0] not in names:
            raise ValidationError(
                field=f"{label}[{path}]", problem=f"no such field; use one of {', '.join(sorted(names))}"
            )


def find_conditions(params: ListParams) -> list[tuple[str, Any]]:
    """``find`` as (dotted path, value) pairs: ``find[monitor][notran]=5`` is ``monitor.notran``."""
    return [pair for key, value in params.find.items() for pair in _flatten(str(key), value)]


def list_query(params: ListParams) -> listing.ListQuery:
    """The list parameters as the catalog's paged query (``limit=0``: no limit)."""
    return listing.ListQuery(
        find=tuple(find_conditions(params)),
        sort=tuple((str(path), order) for path, order in params.sort.items()),
        text=params.filter,
        skip=params.skip,
        limit=params.limit or None,
    )


# --- output conventions ---------------------------------------------------------------------


def flag(value: Any) -> int | None:
    """A JetBackup flag: 1 when set, null when not."""
    return 1 if value else None


def boolean(value: Any) -> int:
    """Any other boolean: 1 or 0."""
    return 1 if value else 0


def when(value: _dt.datetime | None) -> str | None:
    """A time for the API: ISO-8601 UTC with offset."""
    return isoformat(value)


def names_of(jobs: Iterable[Mapping[str, Any]]) -> str:
    """``'Daily' (5fcb...), 'Weekly' (5fcc...)`` for messages naming jobs."""
    return ", ".join(f"{job['name']!r} ({job['_id']})" for job in jobs)


Presenter = Callable[[dict[str, Any]], dict[str, Any]]
Stored = dict[str, Any] | None


def visible_owners(context: CallContext) -> frozenset[str] | None:
    """The owners whose objects ``context``'s caller may list; None: every object (root).

    The one place a list learns who may see what: every ``list*`` of the managed objects passes this
    to ``listing.page``, which filters on the ``owner`` column in SQL (so ``total`` and the pages
    count only visible objects)."""
    return owners(context.caller)


def choose_owner(tx: Transaction, caller: Principal, asked: Any, stored: Stored) -> str:
    """The owner a managed object gets: what root asks for (an existing user's ``_id``), else the
    stored owner on modify, else the caller. Only root may set it (``api.permissions`` refuses
    others before this runs; this is the second lock on that door)."""
    if asked in (None, ""):
        return str(stored["owner"]) if stored is not None else caller.id
    if not isinstance(asked, str) or users.get(tx, asked) is None:
        raise ValidationError(
            field="owner", problem=f"must be the _id of an existing user (got {shown(asked)})"
        )
    if not caller.admin and asked != caller.id:
        raise ValidationError(field="owner", problem="only root may set it")
    return asked


def _merge_fields(model: type[BaseModel]) -> Callable[[Transaction, Stored, dict[str, Any]], dict[str, Any]]:
    def merge(tx: Transaction, stored: Stored, params: dict[str, Any]) -> dict[str, Any]:
        base = {key: value for key, value in (stored or {}).items() if key in model.model_fields}
        return {**base, **params}

    return merge


@dataclass(frozen=True)
class ManageRules:
    """What differs between the ``manageX`` functions of ``ObjectKind``s; each step has a default.

    ``merge(tx, stored, params)`` builds what is validated (stored is None on create; default: the
    stored writable fields, then ``params``); ``check(tx, fields, stored)`` raises ValidationError
    for what the model cannot see (references); ``document(tx, fields, stored, params)`` is what is
    stored (default: the model's dump). ``read_only`` fields are dropped from the request: they are
    what ``getX`` shows but no one writes, so a read-modify-write sends them back harmlessly.
    ``linked(tx, ident, params)`` runs after the object is written, in the same transaction: it
    updates the other objects a request names from this side (a job's ``hooks``, a schedule's
    ``jobs``), and its errors undo the whole request.
    """

    read_only: tuple[str, ...] = ()
    merge: Callable[[Transaction, Stored, dict[str, Any]], dict[str, Any]] | None = None
    validate: Callable[[dict[str, Any]], BaseModel] | None = None
    check: Callable[[Transaction, Any, Stored], None] | None = None
    document: Callable[[Transaction, Any, Stored, dict[str, Any]], dict[str, Any]] | None = None
    linked: Callable[[Transaction, str, dict[str, Any]], None] | None = None


@dataclass(frozen=True)
class ObjectKind:
    """A catalog object the API manages with the ``manageX/getX/listXs/deleteX`` pattern (API.md 5).

    ``view`` builds, once per transaction, the function that turns a stored object into its API
    object (so related rows are loaded once per call, not once per item); ``refuse_delete`` raises
    ``ConflictError`` naming what still uses an object. The generic ``get``, ``list`` and ``delete``
    handlers, ``manage`` (with the object's ``ManageRules``) and their function-table entries come
    from here.
    """

    table: str  # catalog kind
    label: str  # in messages: "Account Filter"
    name: str  # in function names: "AccountFilter"
    plural: str  # the list answer's key: "filters"
    fields: type[BaseModel]
    view: Callable[[Transaction], Presenter]
    refuse_delete: Callable[[Transaction, dict[str, Any]], None] | None = None
    rules: ManageRules = field(default_factory=ManageRules)

    def present(self, tx: Transaction) -> Presenter:
        """``view`` with ``owner`` (a user ID) and ``owner_name`` added."""
        view = self.view(tx)
        names = users.names(tx)

        def present(item: dict[str, Any]) -> dict[str, Any]:
            answer = view(item)
            owner = str(item.get("owner") or users.ROOT_ID)
            answer["owner"] = owner
            answer["owner_name"] = names.get(owner, "")
            return answer

        return present

    def manage(self, context: CallContext, params: dict[str, Any]) -> Result:
        """``manageX``: create (no ``_id``) or modify an object, validated whole before anything is
        written; answers the object as ``getX`` shows it."""
        rules = self.rules
        action, ident = manage_action(params)
        for key in (*rules.read_only, "owner_name"):  # owner_name: every object shows it, none writes it
            params.pop(key, None)
        asked_owner = params.pop("owner", None)
        merge = rules.merge or _merge_fields(self.fields)
        with context.catalog.transaction() as tx:
            stored = None if ident is None else tx.require(self.table, ident, self.label, lock=True)
            owner = choose_owner(tx, context.caller, asked_owner, stored)
            writable = None if stored is None else {k: v for k, v in stored.items() if k != "owner"}
            merged = merge(tx, writable, params)
            fields = rules.validate(merged) if rules.validate else validate(self.fields, merged)
            if rules.check is not None:
                rules.check(tx, fields, stored)
            document = rules.document(tx, fields, stored, params) if rules.document else fields.model_dump()
            document["owner"] = owner
            if ident is None:
                ident = tx.insert(self.table, document)
            else:
                tx.replace(self.table, ident, document)
            if rules.linked is not None:
                rules.linked(tx, ident, params)
            answer = self.present(tx)(tx.require(self.table, ident, self.label))
        verb = "Created" if action == "create" else "Modified"
        return f"{self.label} {verb} Successfully", answer

    def get(self, context: CallContext, params: dict[str, Any]) -> Result:
        ident = only_id(params)
        with context.catalog.transaction(write=False) as tx:
            answer = self.present(tx)(tx.require(self.table, ident, self.label))
        return f"{self.label} Retrieved Successfully", answer

    def list_items(self, context: CallContext, params: dict[str, Any]) -> Result:
        """``listXs``: filtered, sorted and paged in the catalog, only the page presented. A find or
        sort on a field the presenter computes (``listing.FIELDS``) is applied to the presented rows
        that the catalog's part of the query left (the same rules, ``apply_list``)."""
        options = list_params(params)
        check_fields(options, listing.FIELDS[self.table])
        in_sql, whole = listing.split(self.table, list_query(options))
        with context.catalog.transaction(write=False) as tx:
            rows, total = listing.page(tx, self.table, in_sql, owners=visible_owners(context))
            present = self.present(tx)
            page = [present(row) for row in rows]
        if not whole:
            page, total = apply_list(page, options)
        return f"{self.label}s Listed Successfully", {self.plural: page, "total": total}

    def delete(self, context: CallContext, params: dict[str, Any]) -> Result:
        ident = only_id(params)
        with context.catalog.transaction() as tx:
            item = tx.require(self.table, ident, self.label, lock=True)
            if self.refuse_delete is not None:
                self.refuse_delete(tx, item)
            tx.remove(self.table, ident)
        return f"{self.label} Deleted Successfully", {"_id": ident}

    def functions(
        self,
        manage: Handler | None = None,
        *,
        delete: Handler | None = None,
        delete_summary: str | None = None,
        extra: Iterable[FunctionSpec] = (),
    ) -> list[FunctionSpec]:
        """The function-table entries: manage, get, list, ``extra`` and delete, in that order."""
        ident = [ParamSpec("_id", "string", True, f"the {self.label}'s ID")]
        manage_parameters = [
            ParamSpec("action", "string", True, "create or modify"),
            ParamSpec("_id", "string", False, f"the {self.label}'s ID (modify only)"),
            ParamSpec("owner", "string", False, "the owning user's _id (root only; default: the caller)"),
            *param_specs(self.fields, optional=True, note="required on create"),
        ]
        return [
            FunctionSpec(
                f"manage{self.name}",
                f"Create or modify a {self.label}",
                manage_parameters,
                manage or self.manage,
            ),
            FunctionSpec(f"get{self.name}", f"Get one {self.label}", ident, self.get),
            FunctionSpec(
                f"list{self.name}s", f"List {self.label}s", param_specs(ListParams), self.list_items
            ),
            *extra,
            FunctionSpec(
                f"delete{self.name}",
                delete_summary or f"Delete a {self.label}",
                ident,
                delete or self.delete,
            ),
        ]
