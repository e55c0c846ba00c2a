"""Checks real answers of the example services against their OpenAPI 3
documents (examples/<service>/openapi.yaml): the status must be documented
for the operation, and a JSON body must match the documented schema.

Only what the documents use is supported: $ref, type, nullable, required,
properties, additionalProperties, items, enum, minimum, maximum, minLength,
maxLength, minItems, maxItems, format date-time, allOf.
"""
import re
import threading

import yaml

# Answers the HTTP layer gives on any route, before a handler runs; they
# need not be listed per operation, but must be the JSON error bodies of docs/reference.md.
GENERIC_STATUSES = {404, 405, 413, 415, 431}
DATE_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
ERROR_SCHEMA = {
    "type": "object", "required": ["error"],
    "properties": {"error": {"type": "object", "required": ["code", "message"],
                             "properties": {"code": {"type": "string"},
                                            "message": {"type": "string"}}}}}


class Spec:
    def __init__(self, path):
        with open(path, encoding="utf-8") as f:
            self.doc = yaml.safe_load(f)
        self.paths = []
        for tpl, item in self.doc.get("paths", {}).items():
            rx = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(tpl)) + "$"
            if tpl.endswith("{rest}"):  # the gateway's "rest of the path"
                rx = rx.replace("[^/]+$", ".+$")
            self.paths.append((re.compile(rx), tpl, item))

    def resolve(self, node):
        while isinstance(node, dict) and "$ref" in node:
            ref = node["$ref"]
            if not ref.startswith("#/"):
                raise ValueError(f"external $ref {ref}")
            node = self.doc
            for part in ref[2:].split("/"):
                node = node[part]
        return node

    def operation(self, method, path):
        for rx, tpl, item in self.paths:
            if rx.match(path):
                return tpl, item.get(method.lower())
        return None, None

    def validate(self, schema, value, where, errors):
        schema = self.resolve(schema)
        if not isinstance(schema, dict):
            return
        for sub in schema.get("allOf", []):
            self.validate(sub, value, where, errors)
        if value is None:
            if not schema.get("nullable") and "type" in schema:
                errors.append(f"{where}: null where {schema['type']} is documented")
            return
        t = schema.get("type")
        ok = {
            None: True,
            "object": isinstance(value, dict),
            "array": isinstance(value, list),
            "string": isinstance(value, str),
            "integer": isinstance(value, int) and not isinstance(value, bool),
            "number": isinstance(value, (int, float)) and not isinstance(value, bool),
            "boolean": isinstance(value, bool),
        }.get(t, True)
        if not ok:
            errors.append(f"{where}: {type(value).__name__} where {t} is documented")
            return
        if "enum" in schema and value not in schema["enum"]:
            errors.append(f"{where}: {value!r} not in {schema['enum']}")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if "minimum" in schema and value < schema["minimum"]:
                errors.append(f"{where}: {value} < minimum {schema['minimum']}")
            if "maximum" in schema and value > schema["maximum"]:
                errors.append(f"{where}: {value} > maximum {schema['maximum']}")
        if isinstance(value, str):
            if "minLength" in schema and len(value) < schema["minLength"]:
                errors.append(f"{where}: shorter than {schema['minLength']}")
            if "maxLength" in schema and len(value) > schema["maxLength"]:
                errors.append(f"{where}: longer than {schema['maxLength']}")
            if schema.get("format") == "date-time" and not DATE_TIME.match(value):
                errors.append(f"{where}: {value!r} is not an RFC 3339 date-time")
        if isinstance(value, list):
            if "minItems" in schema and len(value) < schema["minItems"]:
                errors.append(f"{where}: fewer than {schema['minItems']} items")
            if "maxItems" in schema and len(value) > schema["maxItems"]:
                errors.append(f"{where}: more than {schema['maxItems']} items")
            for i, v in enumerate(value):
                self.validate(schema.get("items", {}), v, f"{where}[{i}]", errors)
        if isinstance(value, dict):
            for name in schema.get("required", []):
                if name not in value:
                    errors.append(f"{where}: required '{name}' missing")
            props = schema.get("properties", {})
            for name, v in value.items():
                if name in props:
                    self.validate(props[name], v, f"{where}.{name}", errors)
                elif schema.get("additionalProperties") is False:
                    errors.append(f"{where}: '{name}' is not documented")

    def check(self, method, path, status, content_type, body_json, errors):
        tpl, op = self.operation(method, path)
        where = f"{method} {path} -> {status}"
        if op is None or tpl is None:
            if status in GENERIC_STATUSES or status == 503:
                self.validate(ERROR_SCHEMA, body_json, where, errors)
            else:
                errors.append(f"{where}: no such operation in the document")
            return
        responses = op.get("responses", {})
        resp = responses.get(str(status)) or responses.get(f"{str(status)[0]}XX")
        if resp is None and status in GENERIC_STATUSES:
            self.validate(ERROR_SCHEMA, body_json, where, errors)
            return
        if resp is None:
            resp = responses.get("default")
        if resp is None:
            errors.append(f"{where}: status not documented for {method} {tpl}")
            return
        resp = self.resolve(resp)
        content = resp.get("content") or {}
        media = content.get("application/json")
        if media is None or not (content_type or "").startswith("application/json"):
            return
        self.validate(media.get("schema", {}), body_json, where, errors)


class Conformance:
    """Collects violations of the documents over every answer seen; safe to
    feed from several threads."""

    def __init__(self, src_dir, services):
        self.specs = {s: Spec(f"{src_dir}/examples/{s}/openapi.yaml") for s in services}
        self.lock = threading.Lock()
        self.errors = []
        self.seen = 0

    def observe(self, service, method, path, resp):
        if resp.status == 0 or service not in self.specs:
            return
        path = path.split("?", 1)[0]
        ctype = resp.header("content-type")
        errors = []
        if resp.status == 503 and resp.error_code() == "SHUTTING_DOWN":
            self.specs[service].validate(ERROR_SCHEMA, resp.json, f"{method} {path}", errors)
        elif service == "bff" and path.startswith("/api/") and resp.status not in (503, 504):
            # Gateway answers are the upstream's own.
            rest = path[4:]
            upstream = "order-service" if rest.startswith("/orders") else "user-service"
            self.specs[upstream].check(method, rest, resp.status, ctype, resp.json, errors)
        else:
            self.specs[service].check(method, path, resp.status, ctype, resp.json, errors)
        with self.lock:
            self.seen += 1
            self.errors.extend(f"{service}: {e}" for e in errors)

    def take(self):
        with self.lock:
            seen, errors = self.seen, self.errors
            self.seen, self.errors = 0, []
        return seen, errors
