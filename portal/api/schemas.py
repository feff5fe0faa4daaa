"""Marshmallow schemas of the core API (they also generate the OpenAPI document)."""
from marshmallow import Schema, fields


class MeSchema(Schema):
    kind = fields.String(metadata={"description": "`merchant` or `operator`"})
    token_id = fields.Integer()
    merchant = fields.String(allow_none=True, metadata={"description": "merchant slug; null for operator tokens"})


class ProgressSchema(Schema):
    done = fields.Integer()
    total = fields.Integer(allow_none=True)
    percent = fields.Integer(allow_none=True)


class JobSchema(Schema):
    id = fields.String()
    kind = fields.String()
    status = fields.String(metadata={"description": "queued, running, succeeded or failed"})
    progress = fields.Nested(ProgressSchema)
    result = fields.Dict(allow_none=True)
    error = fields.String(allow_none=True)
    created_at = fields.String()
    started_at = fields.String(allow_none=True)
    finished_at = fields.String(allow_none=True)
