"""The OpenAPI document of the HTTP door, built from the dispatcher's function table.

FastAPI cannot see the functions (they all go through one route), so this module writes the paths
itself (the choice is recorded in docs/http.md):

- ``GET /`` and ``POST /``: the JetBackup-style door, with ``function`` as an enum of every function.
- ``POST /function/{NAME}`` for every function: a JSON object body whose properties are that function's
  parameters (names, types, required ones, descriptions): what a schema-driven fuzzer reads.
- ``x-snapkeep-functions``: the function table itself (name, summary, parameters), for tools that want
  the list without walking paths.

Every operation answers the envelope (API.md section 2) with 200, 400 or 401, and needs the bearer token.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from snapkeep.api.dispatch import FUNCTIONS, FunctionSpec

ENVELOPE_REF = {"$ref": "#/components/schemas/Envelope"}
ID_PATTERN = "^[0-9a-f]{24}$"

ENVELOPE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["success", "message", "system", "data"],
    "properties": {
        "success": {"type": "integer", "enum": [0, 1]},
        "message": {"type": "string"},
        "system": {
            "type": "object",
            "properties": {
                "version": {"type": "string"},
                "tier": {"type": "string"},
                "type": {"type": "string"},
                "licenseIssue": {"type": "integer"},
            },
        },
        "data": {"description": "The answer: an object (empty on failure)."},
    },
}

# ParamSpec.type -> JSON Schema. Unknown type names are documented as "any value".
TYPE_SCHEMAS: dict[str, dict[str, Any]] = {
    "string": {"type": "string"},
    "str": {"type": "string"},
    "text": {"type": "string"},
    "id": {"type": "string", "pattern": ID_PATTERN},
    "int": {"type": "integer"},
    "integer": {"type": "integer"},
    "number": {"type": "number"},
    "bool": {"type": "integer", "enum": [0, 1]},
    "boolean": {"type": "integer", "enum": [0, 1]},
    "list": {"type": "array"},
    "array": {"type": "array"},
    "object": {"type": "object"},
    "dict": {"type": "object"},
}


def schema_for_type(type_name: str) -> dict[str, Any]:
    """JSON Schema for a ``ParamSpec.type`` name such as ``int``, ``list[id]`` or ``object``."""
    name = type_name.strip().lower()
    for prefix in ("list[", "array[", "[", "list of "):
        if name.startswith(prefix):
            inner = name[len(prefix) :].rstrip("]").strip()
            return {"type": "array", "items": schema_for_type(inner)}
    if name.endswith("[]"):
        return {"type": "array", "items": schema_for_type(name[:-2])}
    if "|" in name:
        return {"anyOf": [schema_for_type(part) for part in name.split("|")]}
    return dict(TYPE_SCHEMAS.get(name, {}))


def parameters_schema(spec: FunctionSpec) -> dict[str, Any]:
    """The JSON object schema of one function's parameters."""
    properties: dict[str, Any] = {}
    required: list[str] = []
    for parameter in spec.parameters:
        schema = schema_for_type(str(parameter.type))
        if parameter.description:
            schema["description"] = parameter.description
        properties[parameter.name] = schema
        if parameter.required:
            required.append(parameter.name)
    schema_object: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema_object["required"] = required
    return schema_object


def responses() -> dict[str, Any]:
    """The answers every operation can give."""
    content = {"application/json": {"schema": ENVELOPE_REF}}
    return {
        "200": {"description": "The call reached the dispatcher; read `success`.", "content": content},
        "400": {"description": "The body is not a form or a JSON object.", "content": content},
        "401": {"description": "Missing or wrong bearer token.", "content": content},
        "413": {"description": "The body is larger than the service accepts.", "content": content},
    }


def door_paths(names: list[str]) -> dict[str, Any]:
    """``GET /`` and ``POST /``: the JetBackup-style door, function named by a parameter."""
    function_schema = {"type": "string", "enum": names}
    body_schema = {
        "type": "object",
        "required": ["function"],
        "properties": {"function": function_schema},
        "additionalProperties": True,
    }
    return {
        "get": {
            "operationId": "call",
            "summary": "Call a function; its parameters follow in the query string (bracket syntax).",
            "parameters": [
                {"name": "api", "in": "query", "required": False, "schema": {"type": "integer", "enum": [1]}},
                {"name": "function", "in": "query", "required": True, "schema": function_schema},
            ],
            "responses": responses(),
        },
        "post": {
            "operationId": "callPost",
            "summary": "Call a function; parameters as a form (bracket syntax) or a JSON object.",
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": body_schema},
                    "application/x-www-form-urlencoded": {"schema": body_schema},
                },
            },
            "responses": responses(),
        },
    }


def function_path(spec: FunctionSpec) -> dict[str, Any]:
    """``POST /function/NAME``: one function, its parameters as a JSON object body."""
    return {
        "post": {
            "operationId": spec.name,
            "summary": spec.summary,
            "tags": ["functions"],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": parameters_schema(spec)}},
            },
            "responses": responses(),
        }
    }


def function_table() -> list[dict[str, Any]]:
    """The ``x-snapkeep-functions`` extension: every function and its parameters."""
    return [
        {
            "name": spec.name,
            "summary": spec.summary,
            "parameters": [
                {
                    "name": parameter.name,
                    "type": str(parameter.type),
                    "required": bool(parameter.required),
                    "description": parameter.description,
                }
                for parameter in spec.parameters
            ],
        }
        for spec in FUNCTIONS.values()
    ]


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """Build (once) and return the OpenAPI document of ``app``."""
    if app.openapi_schema:
        return app.openapi_schema
    document = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    names = sorted(FUNCTIONS)
    paths: dict[str, Any] = {"/": door_paths(names)}
    for name in names:
        paths[f"/function/{name}"] = function_path(FUNCTIONS[name])
    document["paths"] = paths
    components = document.setdefault("components", {})
    components.setdefault("schemas", {})["Envelope"] = ENVELOPE_SCHEMA
    components["securitySchemes"] = {
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "USER:TOKEN, as printed by the first `snapkeep serve` or `snapkeep token create`.",
        }
    }
    document["security"] = [{"bearer": []}]
    document["x-snapkeep-functions"] = function_table()
    app.openapi_schema = document
    return document
