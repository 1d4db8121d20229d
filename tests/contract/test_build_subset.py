"""The script that takes methods into the spec subset: newest copy first, every reachable schema,
nothing invented, what is already there kept."""

from tests.contract.build_subset import extend


def _copy(paths: dict, schemas: dict) -> dict:
    return {"paths": paths, "components": {"schemas": schemas}}


def _op(request: str, response: str) -> dict:
    return {"post": {
        "parameters": [{"name": "Client-Id", "in": "header"}],
        "requestBody": {"content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{request}"}}}},
        "responses": {"200": {"content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{response}"}}}}},
    }}


def test_newest_copy_wins_schemas_follow_refs_existing_kept_missing_reported():
    subset = {"x-sources": {"A": {"date": "2026-04-13"}, "C": {"date": "2026-10-01"}}, "paths": {},
              "components": {"schemas": {"rpcStatus": {"type": "object", "x-source": "C"}}}}
    old = _copy({"/v1/x": _op("XReq", "XResp"), "/v1/y": _op("YReq", "YResp")}, {
        "XReq": {"type": "object"}, "XResp": {"properties": {"item": {"$ref": "#/components/schemas/Item"}}},
        "Item": {"type": "string", "enum": ["OLD"]}, "YReq": {"type": "object"}, "YResp": {"type": "object"},
        "rpcStatus": {"type": "string"}})
    new = _copy({"/v1/x": _op("XReq", "XResp")}, {
        "XReq": {"type": "object"}, "XResp": {"properties": {"item": {"$ref": "#/components/schemas/Item"}}},
        "Item": {"type": "string", "enum": ["NEW"]}})
    missing = extend(subset, {"A": old, "C": new}, ["/v1/x", "/v1/y", "/v1/z"])
    assert missing == ["/v1/z"]
    assert subset["paths"]["/v1/x"]["post"]["x-source"] == "C"
    assert "parameters" not in subset["paths"]["/v1/x"]["post"]
    assert subset["paths"]["/v1/y"]["post"]["x-source"] == "A"
    schemas = subset["components"]["schemas"]
    assert schemas["Item"] == {"type": "string", "enum": ["NEW"], "x-source": "C"}
    assert schemas["YResp"]["x-source"] == "A" and schemas["rpcStatus"]["x-source"] == "C"
    assert subset["x-capability-calls"] == ["/v1/x", "/v1/y"]
