"""The OpenAPI snapshot (`docs/openapi.json`) and the check that the running API stays compatible
with it: within `/v1` a client written against the snapshot must keep working (docs/versioning.md).

A change is breaking when the new document accepts less than the snapshot did (a removed path or
operation, a parameter or field that became required, a removed enum value, a narrowed constraint,
a changed type) or promises less in its answers (a removed response field, a field's type changed,
a removed success status). Additions are not breaking."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

METHODS = ("get", "put", "post", "patch", "delete", "head", "options", "trace")
SNAPSHOT = Path("docs/openapi.json")
# Lower bounds may not rise, upper bounds may not fall, in what a request may send.
_LOWER = ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties")
_UPPER = ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties")

Schema = dict[str, Any]


def current_document() -> dict[str, Any]:
    from crossdock.api.app import create_app

    return create_app().openapi()


def render(document: dict[str, Any]) -> str:
    """The committed form: pretty, sorted keys, trailing newline, so diffs stay readable."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def breaking_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What a client of `old` would find broken in `new`, one line each (empty: compatible)."""
    return _Comparison(old, new).run()


class _Comparison:
    def __init__(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        self.old, self.new = old, new
        self.changes: list[str] = []

    def run(self) -> list[str]:
        new_paths = self.new.get("paths", {})
        for path, old_item in sorted(self.old.get("paths", {}).items()):
            new_item = new_paths.get(path)
            if new_item is None:
                self.changes.append(f"{path}: path removed")
                continue
            for method in METHODS:
                if method not in old_item:
                    continue
                where = f"{method.upper()} {path}"
                if method not in new_item:
                    self.changes.append(f"{where}: operation removed")
                    continue
                self._operation(where, old_item, new_item, method)
        return self.changes

    def _operation(self, where: str, old_item: Schema, new_item: Schema, method: str) -> None:
        old_op, new_op = old_item[method], new_item[method]
        old_params = _parameters(old_item, old_op)
        for key, param in sorted(_parameters(new_item, new_op).items()):
            name = f"{key[0]} parameter `{key[1]}`"
            before = old_params.get(key)
            if param.get("required") and not (before and before.get("required")):
                self.changes.append(f"{where}: {name} is {'now' if before else 'new and'} required")
            if before is not None:
                self._request(f"{where} {name}", before.get("schema", {}), param.get("schema", {}), set())

        old_body, new_body = old_op.get("requestBody"), new_op.get("requestBody")
        if new_body is not None:
            if new_body.get("required") and not (old_body and old_body.get("required")):
                self.changes.append(f"{where}: request body is now required")
            if old_body is not None:
                old_media = self._deref(old_body, self.old).get("content", {})
                new_media = self._deref(new_body).get("content", {})
                for media, content in sorted(old_media.items()):
                    if media not in new_media:
                        self.changes.append(f"{where}: request body no longer accepts {media}")
                        continue
                    self._request(
                        f"{where} request", content.get("schema", {}), new_media[media].get("schema", {}), set()
                    )

        new_answers = new_op.get("responses", {})
        for status, old_answer in sorted(old_op.get("responses", {}).items()):
            new_answer = new_answers.get(status)
            if new_answer is None:
                if status.startswith("2"):
                    self.changes.append(f"{where}: success status {status} removed")
                continue
            old_media = self._deref(old_answer, self.old).get("content", {})
            new_media = self._deref(new_answer).get("content", {})
            for media, content in sorted(old_media.items()):
                if media not in new_media:
                    self.changes.append(f"{where} {status}: response no longer {media}")
                    continue
                self._response(
                    f"{where} {status} response", content.get("schema", {}), new_media[media].get("schema", {}), set()
                )

    # -- schemas ---------------------------------------------------------------------------------

    def _deref(self, schema: Schema, doc: dict[str, Any] | None = None) -> Schema:
        """Follows local `$ref`s; `doc` is the document the schema came from (old or new)."""
        seen = 0
        while isinstance(schema, dict) and "$ref" in schema and seen < 32:
            target: Any = doc if doc is not None else self.new
            for part in schema["$ref"].lstrip("#/").split("/"):
                target = target.get(part, {})
            schema, seen = target, seen + 1
        return schema

    def _pair(self, old: Schema, new: Schema, seen: set[tuple[str, str]]) -> tuple[Schema, Schema] | None:
        """Both resolved, or None when this pair of $refs is already being compared (recursion)."""
        key = (old.get("$ref", ""), new.get("$ref", ""))
        if key[0] and key[1]:
            if key in seen:
                return None
            seen.add(key)
        return self._deref(old, self.old), self._deref(new, self.new)

    def _request(self, where: str, old: Schema, new: Schema, seen: set[tuple[str, str]]) -> None:
        """New must accept every value old accepted."""
        pair = self._pair(old, new, seen)
        if pair is None:
            return
        old, new = pair
        old_alts, new_alts = self._alternatives(old), self._alternatives(new)
        if len(old_alts) > 1 or len(new_alts) > 1:
            for alt in old_alts:
                match = self._same_type(alt, new_alts)
                if match is None:
                    self.changes.append(f"{where}: no longer accepts {_types(alt) or 'a value'}")
                else:
                    self._request(where, alt, match, seen)
            return
        if _types(old) and _types(new) and not _types(old) <= _types(new):
            self.changes.append(f"{where}: type changed from {_show(_types(old))} to {_show(_types(new))}")
            return
        old_values, new_values = _allowed(old), _allowed(new)
        if new_values is not None:
            if old_values is None:
                self.changes.append(f"{where}: now restricted to {sorted(map(str, new_values))}")
            elif removed := [v for v in old_values if v not in new_values]:
                self.changes.append(f"{where}: enum value(s) {removed} removed")
        for bound in _LOWER:
            if bound in new and (bound not in old or new[bound] > old[bound]):
                self.changes.append(f"{where}: {bound} narrowed to {new[bound]}")
        for bound in _UPPER:
            if bound in new and (bound not in old or new[bound] < old[bound]):
                self.changes.append(f"{where}: {bound} narrowed to {new[bound]}")
        if "pattern" in new and new.get("pattern") != old.get("pattern"):
            self.changes.append(f"{where}: pattern changed to {new['pattern']!r}")

        old_props, new_props = old.get("properties", {}), new.get("properties", {})
        for name in sorted(set(new.get("required", [])) - set(old.get("required", []))):
            self.changes.append(f"{where}: field `{name}` is {'now' if name in old_props else 'new and'} required")
        closed = new.get("additionalProperties") is False
        for name, schema in sorted(old_props.items()):
            if name in new_props:
                self._request(f"{where}.{name}", schema, new_props[name], seen)
            elif closed:
                self.changes.append(f"{where}: field `{name}` removed (and unknown fields are refused)")
        if "items" in old and "items" in new:
            self._request(f"{where}[]", old["items"], new["items"], seen)

    def _response(self, where: str, old: Schema, new: Schema, seen: set[tuple[str, str]]) -> None:
        """New must still give every field old promised, with the same type."""
        pair = self._pair(old, new, seen)
        if pair is None:
            return
        old, new = pair
        old_alts, new_alts = self._alternatives(old), self._alternatives(new)
        if len(old_alts) > 1 or len(new_alts) > 1:
            for alt in new_alts:
                match = self._same_type(alt, old_alts)
                if match is None:
                    self.changes.append(f"{where}: may now be {_show(_types(alt)) or 'another type'}")
                else:
                    self._response(where, match, alt, seen)
            return
        if _types(old) and _types(new) and not _types(new) <= _types(old):
            self.changes.append(f"{where}: type changed from {_show(_types(old))} to {_show(_types(new))}")
            return
        old_props, new_props = old.get("properties", {}), new.get("properties", {})
        for name, schema in sorted(old_props.items()):
            if name not in new_props:
                self.changes.append(f"{where}: field `{name}` removed")
                continue
            if name in old.get("required", []) and name not in new.get("required", []):
                self.changes.append(f"{where}: field `{name}` is no longer always present")
            self._response(f"{where}.{name}", schema, new_props[name], seen)
        if "items" in old and "items" in new:
            self._response(f"{where}[]", old["items"], new["items"], seen)

    def _alternatives(self, schema: Schema) -> list[Schema]:
        for key in ("anyOf", "oneOf"):
            if key in schema:
                return list(schema[key])
        return [schema]

    def _same_type(self, alt: Schema, candidates: list[Schema]) -> Schema | None:
        """The candidate to compare `alt` with: the same model by name, or the same JSON type."""
        for candidate in candidates:
            if _key(candidate) == _key(alt):
                return candidate
        if "$ref" in alt:  # a renamed model: compare its fields with the other model's
            return next((c for c in candidates if "$ref" in c), None)
        return None


def _key(schema: Schema) -> str:
    return str(schema.get("$ref") or _show(_types(schema)) or "any")


def _parameters(item: Schema, operation: Schema) -> dict[tuple[str, str], Schema]:
    params = [*item.get("parameters", []), *operation.get("parameters", [])]
    return {(p.get("in", ""), p.get("name", "")): p for p in params if "name" in p}


def _types(schema: Schema) -> set[str]:
    kind = schema.get("type")
    if kind is None:
        return {"object"} if "properties" in schema else set()
    found = set(kind) if isinstance(kind, list) else {kind}
    if "number" in found:
        found.add("integer")  # a number may be an integer: integer -> number widens what is accepted
    return found


def _show(types: set[str]) -> str:
    return "|".join(sorted(types - {"integer"} if "number" in types else types))


def _allowed(schema: Schema) -> list[Any] | None:
    if "enum" in schema:
        return list(schema["enum"])
    if "const" in schema:
        return [schema["const"]]
    return None
