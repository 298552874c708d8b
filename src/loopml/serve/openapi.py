"""The OpenAPI document of one app, with the predict route's schemas generated from the contract.

``POST /v1/models/{name}/predict`` takes one record or a list of records and answers predictions;
both are published from the served version's data contract and task, so an OpenAPI client generator
(openapi-generator, openapi-python-client, ...) produces a typed client:

- ``<Model>Record``: one property per contract column, typed as the API checks it (``int``: integer,
  ``float``: number, ``bool``: boolean, ``string``: string, ``datetime``: a ``date-time`` string, read
  as UTC without an offset), with ``minimum``/``maximum``, ``enum`` (the categories, unless unknown
  ones are scored as missing), ``pattern``, null allowed only where the contract says so;
  ``required``: the model's inputs that are never missing; no other property unless
  ``serve.extra_fields: ignore``;
- ``<Model>Prediction``: ``prediction_id``, the id column, the task's outputs (see
  :attr:`loopml.tasks.Task.output_schema`), ``scored_as_missing`` and ``explanation``;
- ``<Model>Predictions``: the response (``model``, ``model_version``, ``predictions``).

The document describes the version being served: it is built when first asked for and again after
the server has followed its alias to another version.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from loopml.serve.state import ModelHolder, Serving
from loopml.validate import ColumnSpec, DataContract, ScoringPolicy

__all__ = ["PREDICT_PATH", "install_openapi", "predict_schemas", "record_schema"]

PREDICT_PATH = "/v1/models/{name}/predict"
_TYPES: dict[str, dict[str, Any]] = {
    "int": {"type": "integer", "format": "int64"},
    "float": {"type": "number", "format": "double"},
    "bool": {"type": "boolean"},
    "string": {"type": "string"},
    "datetime": {
        "type": "string",
        "format": "date-time",
        "examples": ["2026-01-20T14:30:00Z"],
        "description": "ISO 8601; without a UTC offset the time is read as UTC.",
    },
}


def _column(spec: ColumnSpec, policy: ScoringPolicy) -> dict[str, Any]:
    schema: dict[str, Any] = dict(_TYPES[spec.dtype])
    if spec.dtype in ("int", "float"):
        bounds = (("minimum", spec.min), ("maximum", spec.max))
        schema.update({k: int(v) if v.is_integer() else v for k, v in bounds if v is not None})
    unknown = spec.on_unknown_category or policy.on_unknown_category
    if spec.categories is not None and unknown == "reject":
        schema["enum"] = list(spec.categories)
    elif spec.categories is not None:
        schema["examples"] = list(spec.categories)[:10]
        schema["description"] = "A value outside the known categories is scored as missing."
    if spec.pattern is not None:
        schema["pattern"] = spec.pattern
    if spec.nullable:
        schema["type"] = [schema["type"], "null"]
        if "enum" in schema:
            schema["enum"] = [*schema["enum"], None]
    return schema


def record_schema(
    contract: DataContract, inputs: Sequence[str], policy: ScoringPolicy, title: str = "Record"
) -> dict[str, Any]:
    """One record, as the API checks it against ``contract`` (``inputs``: the model's input columns)
    with the project's ``policy``."""
    schema: dict[str, Any] = {
        "type": "object",
        "title": title,
        "properties": {spec.name: _column(spec, policy) for spec in contract.columns},
        "required": [c for c in inputs if not contract.column(c).nullable],
    }
    if policy.extra_fields == "reject":
        schema["additionalProperties"] = False
    return schema


def prediction_schema(serving: Serving) -> dict[str, Any]:
    """One prediction: its id, the record's id, the task's outputs, and the optional extras."""
    model = serving.model
    outputs = model.task.output_schema(getattr(model.pipeline, "classes_", None))
    properties: dict[str, Any] = {"prediction_id": {"type": "string", "format": "uuid"}}
    id_column = model.contract.id_column
    if id_column is not None:
        id_schema = dict(_TYPES[model.contract.column(id_column).dtype])
        properties[id_column] = {**id_schema, "type": [id_schema["type"], "null"]}
    properties.update(outputs["properties"])
    properties["scored_as_missing"] = {
        "type": "object",
        "description": "Column -> value sent, for values outside a column's categories scored as missing.",
    }
    properties["explanation"] = {"type": "object", "description": "With explain=true: see the route."}
    return {
        "type": "object",
        "title": f"{_title(model.name)}Prediction",
        "properties": properties,
        "required": ["prediction_id", *outputs["required"]],
    }


def predict_schemas(serving: Serving, policy: ScoringPolicy, max_batch: int) -> dict[str, dict[str, Any]]:
    """The components of the predict route: record, prediction, request body and response."""
    title = _title(serving.model.name)
    record, prediction = f"{title}Record", f"{title}Prediction"
    ref = {"$ref": f"#/components/schemas/{record}"}
    return {
        record: {
            **record_schema(serving.model.contract, serving.model.input_columns, policy, record),
            "description": f"One record for model '{serving.model.name}' (the contract of version "
            f"{serving.model.version.version}).",
        },
        prediction: prediction_schema(serving),
        f"{title}PredictRequest": {
            "title": f"{title}PredictRequest",
            "oneOf": [ref, {"type": "array", "items": ref, "minItems": 1, "maxItems": max_batch}],
        },
        f"{title}Predictions": {
            "type": "object",
            "title": f"{title}Predictions",
            "properties": {
                "model": {"type": "string", "const": serving.model.name},
                "model_version": {"type": "integer", "minimum": 1},
                "predictions": {"type": "array", "items": {"$ref": f"#/components/schemas/{prediction}"}},
            },
            "required": ["model", "model_version", "predictions"],
        },
    }


def _title(name: str) -> str:
    words = [w for w in re.split(r"[^0-9A-Za-z]+", name) if w]
    title = "".join(w[:1].upper() + w[1:] for w in words) or "Model"
    return title if not title[0].isdigit() else f"Model{title}"


def _with_contract(schema: dict[str, Any], components: dict[str, dict[str, Any]], title: str) -> None:
    """Point the predict operation of ``schema`` at ``components`` (in place)."""
    schema.setdefault("components", {}).setdefault("schemas", {}).update(components)
    operation = schema.get("paths", {}).get(PREDICT_PATH, {}).get("post")
    if operation is None:
        return
    body = {"$ref": f"#/components/schemas/{title}PredictRequest"}
    operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    answer = {"$ref": f"#/components/schemas/{title}Predictions"}
    ok = operation.setdefault("responses", {}).setdefault("200", {"description": "Successful Response"})
    ok["content"] = {"application/json": {"schema": answer}}


def install_openapi(app: FastAPI, holder: ModelHolder, policy: ScoringPolicy, max_batch: int) -> None:
    """Make ``app.openapi()`` publish the predict route's schemas from the contract of the version
    ``holder`` serves (rebuilt once the holder serves another version)."""
    built: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:
        serving = holder.current
        version = serving.model.version.version if serving is not None else None
        if built.get("version") != version or "schema" not in built:
            schema = _base(app)
            if serving is not None:
                components = predict_schemas(serving, policy, max_batch)
                _with_contract(schema, components, _title(serving.model.name))
            built.update(version=version, schema=schema)
        document: dict[str, Any] = built["schema"]
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def _base(app: FastAPI) -> dict[str, Any]:
    make: Callable[..., dict[str, Any]] = get_openapi
    return make(
        title=app.title,
        version=app.version,
        openapi_version=app.openapi_version,
        summary=app.summary,
        description=app.description,
        routes=app.routes,
        tags=app.openapi_tags,
        servers=app.servers,
    )
