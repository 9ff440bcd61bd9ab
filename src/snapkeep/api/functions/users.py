"""User and token functions (root only, docs/users.md): manageUser, getUser, listUsers, deleteUser,
createToken, listTokens, revokeToken.

A user's ``name`` and ``role`` are set when it is created and never change (its tokens carry the
name). ``account`` links an account owner to its hosting account (a username of the account
provider); ``accounts`` adds accounts to a reseller's own (those whose provider ``owner`` is its
name); ``permissions[restore|download][ITEM]=0|1`` (items: files, databases, email, cron, dns,
certificates, ftp; all 1 by default) are checked on every restore and download item;
``manage_destinations=1`` lets a reseller create destinations of its own; ``password`` (write-only,
answered masked) lets the user sign in to the web panel (docs/panel.md).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field, field_validator

from snapkeep.api.functions.base import (
    CallContext,
    FunctionSpec,
    ListParams,
    ParamSpec,
    Result,
    apply_list,
    list_params,
    manage_action,
    one_object,
    only_id,
    param_specs,
)
from snapkeep.errors import ValidationError
from snapkeep.jobs import nodes, users
from snapkeep.jobs.models.base import Flag, Strict, field_error, listish, objectish, shown, validate

ROLES = {users.RESELLER: "reseller", users.ACCOUNT: "account"}


def _permissions(value: Any) -> dict[str, dict[str, bool]]:
    value = objectish(value)
    if not isinstance(value, dict):
        raise field_error("permissions", "must be an object: permissions[restore|download][ITEM]=0|1")
    answer: dict[str, dict[str, bool]] = {}
    for action, items in value.items():
        if action not in users.ACTIONS:
            raise field_error(f"permissions[{action}]", "unknown action (restore or download)")
        items = objectish(items)
        if not isinstance(items, dict):
            raise field_error(f"permissions[{action}]", "must be an object of ITEM=0|1")
        answer[action] = {}
        for item, allowed in items.items():
            where = f"permissions[{action}][{item}]"
            if item not in users.ITEMS:
                raise field_error(where, "unknown item ({items})", items=", ".join(users.ITEMS))
            if str(allowed) not in ("0", "1", "True", "False"):
                raise field_error(where, "must be 0 or 1 (got {got})", got=shown(allowed))
            answer[action][item] = str(allowed) in ("1", "True")
    return answer


class UserFields(Strict):
    name: str = Field("", description="login name (create only): letters, digits, '_', '.', '-'")
    role: str = Field("", description="reseller or account (create only)")
    account: str = Field("", description="role account: the hosting account's username")
    node: str = Field(
        "",
        description="role account: the node (ID or name) the account is on; default: the node serving "
        "the call (an account is identified by its node and username; docs/nodes.md)",
    )
    accounts: Annotated[list[str], BeforeValidator(listish)] = Field(
        default_factory=list, description="role reseller: accounts it owns besides its provider's"
    )
    permissions: Annotated[dict[str, dict[str, bool]], BeforeValidator(_permissions)] = Field(
        default_factory=dict, description="permissions[restore|download][ITEM]=0|1 (default all 1)"
    )
    manage_destinations: Flag = Field(False, description="role reseller: may manage its own destinations")
    password: str = Field(
        "",
        description="write-only: the web panel password (8-1,024 characters), stored as Argon2id; "
        "comes back masked; empty or the mask keeps the stored one",
    )

    @field_validator("accounts")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not name or len(name) > 255:
                raise ValueError("account usernames must be 1-255 characters")
        return value


def _document(fields: UserFields, stored: users.User | None, node: str) -> dict[str, Any]:
    permissions = (
        users.all_allowed() if stored is None else {k: dict(v) for k, v in stored.permissions.items()}
    )
    for action, items in fields.permissions.items():
        permissions[action].update(items)
    return {
        "account": fields.account,
        **({"node": node} if node else {}),
        "accounts": sorted(set(fields.accounts)),
        "permissions": permissions,
        "manage_destinations": bool(fields.manage_destinations),
    }


def manage(context: CallContext, params: dict[str, Any]) -> Result:
    action, ident = manage_action(params)
    with context.catalog.transaction() as tx:
        stored = None if ident is None else users.require(tx, ident)
        if stored is not None:
            if stored.id == users.ROOT_ID:
                raise ValidationError(field="_id", problem="root has every permission and cannot be changed")
            for key in ("name", "role"):
                if params.get(key) not in (None, "", getattr(stored, key)):
                    raise ValidationError(field=key, problem="cannot change (make a new user instead)")
            base = {
                "account": stored.account,
                "node": stored.node,
                "accounts": list(stored.accounts),
                "manage_destinations": stored.manage_destinations,
            }
            params = {**base, **{k: v for k, v in params.items() if k not in ("name", "role")}}
        fields = validate(UserFields, params)
        name = stored.name if stored is not None else users.check_name(fields.name)
        role = stored.role if stored is not None else fields.role
        if role not in ROLES:
            raise ValidationError(field="role", problem=f"must be reseller or account (got {role!r})")
        if role == users.ACCOUNT and not fields.account:
            raise ValidationError(
                field="account", problem="is required for role account (the account's username)"
            )
        if role == users.RESELLER and fields.account:
            raise ValidationError(field="account", problem="applies to role account only (use accounts[])")
        if role == users.ACCOUNT and (fields.accounts or fields.manage_destinations):
            field = "accounts" if fields.accounts else "manage_destinations"
            raise ValidationError(field=field, problem="applies to role reseller only")
        if role == users.RESELLER and fields.node:
            raise ValidationError(field="node", problem="applies to role account only")
        node = ""
        if role == users.ACCOUNT:
            node = fields.node or nodes.serving_node(tx) or ""
            if fields.node and (stored is None or fields.node != stored.node):
                node = nodes.resolve(tx, fields.node)  # a node the caller names must be registered
        password = None
        if fields.password not in ("", users.MASKED):
            password = users.hash_password(users.check_password_text(fields.password))
        saved = users.save(tx, ident, name=name, role=role, document=_document(fields, stored, node))
        if password is not None:
            users.set_password(tx, saved, password)
        answer = users.require(tx, saved).present()
    return f"User {'Created' if action == 'create' else 'Modified'} Successfully", answer


def get(context: CallContext, params: dict[str, Any]) -> Result:
    ident = only_id(params)
    with context.catalog.transaction(write=False) as tx:
        answer = users.require(tx, ident).present()
    return "User Retrieved Successfully", answer


def list_users(context: CallContext, params: dict[str, Any]) -> Result:
    options = list_params(params)
    with context.catalog.transaction(write=False) as tx:
        items = [user.present() for user in users.all_users(tx)]
    page, total = apply_list(items, options)
    return "Users Listed Successfully", {"users": page, "total": total}


def delete(context: CallContext, params: dict[str, Any]) -> Result:
    ident = only_id(params)
    with context.catalog.transaction() as tx:
        users.remove(tx, ident)
    return "User Deleted Successfully", {"_id": ident}


class TokenParams(Strict):
    user: str = Field(description="the user's name")
    name: str = Field("", max_length=255, description="a label for the token")
    expires: str = Field("", description="lifetime such as 30d, 12h, 2w (default: no end)")


def create_token(context: CallContext, params: dict[str, Any]) -> Result:
    options = validate(TokenParams, params)
    expires = context.clock.now() + users.parse_duration(options.expires) if options.expires else None
    with context.catalog.transaction() as tx:
        user = users.named(tx, options.user)
        ident, token = users.create_token(tx, user, name=options.name, expires=expires)
        answer = next(item for item in users.list_tokens(tx, user.id) if item["_id"] == ident)
    return "Token Created Successfully (it is not shown again)", {**answer, "token": token}


class TokenListParams(ListParams):
    user: str = Field("", description="only this user's tokens (its name)")


def list_tokens(context: CallContext, params: dict[str, Any]) -> Result:
    options = list_params(params, TokenListParams)
    assert isinstance(options, TokenListParams)
    with context.catalog.transaction(write=False) as tx:
        user_id = users.named(tx, options.user).id if options.user else None
        items = users.list_tokens(tx, user_id)
    page, total = apply_list(items, options)
    return "Tokens Listed Successfully", {"tokens": page, "total": total}


def revoke_token(context: CallContext, params: dict[str, Any]) -> Result:
    return "Token Revoked Successfully", one_object(context, users.revoke_token, only_id(params), write=True)


_ID = [ParamSpec("_id", "string", True, "the User's ID")]
FUNCTIONS = [
    FunctionSpec(
        "manageUser",
        "Create or modify a User (reseller or account owner)",
        [
            ParamSpec("action", "string", True, "create or modify"),
            ParamSpec("_id", "string", False, "the User's ID (modify only)"),
            *param_specs(UserFields),
        ],
        manage,
    ),
    FunctionSpec("getUser", "Get one User", _ID, get),
    FunctionSpec("listUsers", "List Users", param_specs(ListParams), list_users),
    FunctionSpec("deleteUser", "Delete a User that owns nothing (and its tokens)", _ID, delete),
    FunctionSpec(
        "createToken", "Create an API token for a User (shown once)", param_specs(TokenParams), create_token
    ),
    FunctionSpec(
        "listTokens", "List API tokens (never their secrets)", param_specs(TokenListParams), list_tokens
    ),
    FunctionSpec(
        "revokeToken",
        "Revoke an API token",
        [ParamSpec("_id", "string", True, "the token's ID")],
        revoke_token,
    ),
]
