"""The Open Inference Protocol (KServe V2) routes through the predict handler, model preloaded.

Conformance cases follow the protocol's published text and examples, kserve/kserve
docs/predict-api/v2/required_api.md (commit 00c994162ae1acdeca5738971f5aed08f3cdbbfc):
- "Inference Request Examples": a request with "id": "42" and named inputs, each with "name",
  "shape", "datatype" and "data"; the response echoes "id" and gives "outputs" with "name",
  "shape", "datatype" and "data" (here one FP64 tensor of shape [n]).
- "Tensor Data": data "in their nature multi-dimensional representation, or as a flattened
  one-dimensional representation" ([[1, 2], [4, 5]] or [1, 2, 4, 5]), row-major.
- "$metadata_model_response": name, versions, platform, inputs and outputs as
  $metadata_tensor {name, datatype, shape}, "Variable-size dimensions are specified as -1".
- "Server Ready": GET v2/health/ready answers 200 when ready for inferencing.
- "$inference_response": "model_name", "model_version" (we version), "id" only when given.
"""

import json

import pytest

import predict_handler
from tests.helpers import load_event

pytestmark = pytest.mark.unit

RECORD = json.loads(load_event("predict")["body"])
NAMES = list(RECORD)


def call(event, context):
    reply = predict_handler.lambda_handler(event, context)
    return reply["statusCode"], json.loads(reply["body"])


def infer(body, context, model="house-prices"):
    event = load_event("v2_infer")
    event["path"] = f"/v2/models/{model}/infer"
    event["pathParameters"] = {"name": model}
    event["body"] = json.dumps(body)
    return call(event, context)


def reference(context):
    status, body = call(load_event("predict_batch"), context)
    assert status == 200
    return body["predictions"]


def named(records, shape_of=lambda n: [n]):
    """One tensor per feature, each of the datatype the metadata gives (v2_infer's form)."""
    tensors = json.loads(load_event("v2_infer")["body"])["inputs"]
    datatypes = {t["name"]: t["datatype"] for t in tensors}
    yes_no = {"yes": True, "no": False}
    return {
        "inputs": [
            {
                "name": name,
                "shape": shape_of(len(records)),
                "datatype": datatypes[name],
                "data": [
                    yes_no.get(r[name], r[name]) if datatypes[name] == "BOOL" else r[name]
                    for r in records
                ],
            }
            for name in NAMES
        ]
    }


def test_named_tensors_event_answers_one_fp64_output_and_echoes_the_id(loaded, lambda_context):
    status, body = call(load_event("v2_infer"), lambda_context)
    assert status == 200, body
    assert body == {
        "model_name": "house-prices",
        "model_version": loaded.manifest.version,
        "id": "42",
        "outputs": [
            {
                "name": "predictions",
                "datatype": "FP64",
                "shape": [2],
                "data": reference(lambda_context),
            }
        ],
    }


def test_one_2d_bytes_tensor_in_schema_order_agrees(loaded, lambda_context):
    status, body = call(load_event("v2_infer_matrix"), lambda_context)
    assert status == 200, body
    assert body["outputs"][0]["data"] == reference(lambda_context)
    assert "id" not in body  # none given


def test_2d_tensor_data_may_be_flat_or_nested(loaded, lambda_context):
    matrix = json.loads(load_event("v2_infer_matrix")["body"])
    flat = [v for row in matrix["inputs"][0]["data"] for v in row]
    matrix["inputs"][0]["data"] = flat
    status, body = infer(matrix, lambda_context)
    assert status == 200, body
    assert body["outputs"][0]["data"] == reference(lambda_context)


def test_fp64_matrix_is_checked_per_feature_type(loaded, lambda_context):
    numbers = [[2.5] * len(NAMES)]  # a number, but neither an integer nor a boolean
    body = {
        "inputs": [{"name": "x", "shape": [1, len(NAMES)], "datatype": "FP64", "data": numbers}]
    }
    status, reply = infer(body, lambda_context)
    assert status == 422
    fields = {d["field"] for d in reply["error"]["details"]}
    assert {"driveway", "bedrooms"} <= fields and "lotsize" not in fields


def test_named_tensors_of_shape_n_by_1_are_taken(loaded, lambda_context):
    records = [RECORD, RECORD]
    status, body = infer(named(records, lambda n: [n, 1]), lambda_context)
    assert status == 200, body
    assert body["outputs"][0]["shape"] == [2]


def test_unknown_model_is_404_in_the_error_shape(loaded, lambda_context):
    status, body = call(load_event("v2_infer_unknown_model"), lambda_context)
    assert status == 404
    assert body["error"]["code"] == "model_not_found"
    event = load_event("v2_model_metadata")
    event["path"], event["pathParameters"] = "/v2/models/other", {"name": "other"}
    assert call(event, lambda_context)[0] == 404


def test_metadata_lists_one_input_per_feature_with_its_datatype(loaded, lambda_context):
    status, body = call(load_event("v2_model_metadata"), lambda_context)
    assert status == 200
    assert body["name"] == "house-prices"
    assert body["versions"] == [loaded.manifest.version]
    assert body["platform"] == "sklearn"
    expected = {"number": "FP64", "integer": "INT64", "boolean": "BOOL", "category": "BYTES"}
    assert body["inputs"] == [
        {"name": f.name, "datatype": expected[f.type], "shape": [-1]}
        for f in loaded.schema.features
    ]
    assert body["outputs"] == [{"name": "predictions", "datatype": "FP64", "shape": [-1]}]


def test_ready_is_200_with_a_model_and_503_without(loaded, lambda_context):
    assert call(load_event("v2_ready"), lambda_context) == (200, {"ready": True})
    predict_handler.holder.reset()
    assert call(load_event("v2_ready"), lambda_context) == (503, {"ready": False})


def test_bad_values_are_422_with_0_based_rows(loaded, lambda_context):
    records = [RECORD, {**RECORD, "lotsize": "large"}]
    status, body = infer(named(records), lambda_context)
    assert status == 422
    assert body["error"]["details"] == [
        {"field": "lotsize", "message": "expected a number, got string", "row": 1}
    ]


def test_a_missing_feature_tensor_is_422_and_an_extra_one_is_warned(loaded, lambda_context):
    body = named([RECORD])
    body["inputs"] = [t for t in body["inputs"] if t["name"] != "bathrms"]
    status, reply = infer(body, lambda_context)
    assert status == 422
    assert reply["error"]["details"] == [{"field": "bathrms", "message": "missing input tensor"}]
    body = named([RECORD])
    body["inputs"].append({"name": "note", "shape": [1], "datatype": "BYTES", "data": ["x"]})
    status, reply = infer(body, lambda_context)
    assert status == 200
    assert reply["parameters"] == {"warnings": "ignored unknown inputs: note"}


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"inputs": []},
        {"inputs": "x"},
        {"inputs": [1]},
        {"inputs": [{"name": "lotsize", "shape": "1", "datatype": "FP64", "data": [1]}]},
        {"inputs": [{"name": "lotsize", "shape": [1], "datatype": "FP64", "data": 1}]},
        {"id": 42, "inputs": [{"name": "lotsize", "shape": [1], "datatype": "FP64", "data": [1]}]},
        {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]}]},
        {"parameters": {"a": [1]}, "inputs": [{"name": "x", "shape": [1], "data": [1]}]},
        {"inputs": [{"name": "lotsize", "shape": [1], "datatype": "FP64", "data": [[5850]]}]},
        {"inputs": [{"name": "x", "shape": [1, 11], "datatype": "INT32", "data": [1] * 11}]},
    ],
)
def test_malformed_requests_are_400(loaded, lambda_context, body):
    status, reply = infer(body, lambda_context)
    assert status == 400, reply
    assert reply["error"]["code"] == "bad_request"


def test_tensors_of_different_batch_sizes_are_400(loaded, lambda_context):
    body = named([RECORD, RECORD])
    body["inputs"][0] = {**body["inputs"][0], "shape": [1], "data": [RECORD[NAMES[0]]]}
    status, reply = infer(body, lambda_context)
    assert status == 400
    assert "rows" in reply["error"]["message"]


def test_shape_that_disagrees_with_the_data_is_422(loaded, lambda_context):
    body = named([RECORD])
    body["inputs"][0]["shape"] = [3]
    status, reply = infer(body, lambda_context)
    assert status == 422
    assert "needs 3 values, got 1" in reply["error"]["message"]


def test_more_rows_than_the_limit_is_413(loaded, lambda_context, monkeypatch):
    monkeypatch.setattr(
        predict_handler.holder,
        "settings",
        predict_handler.settings.__class__(bucket="b", model_name="house-prices", max_rows=1),
    )
    status, _ = infer(named([RECORD, RECORD]), lambda_context)
    assert status == 413


def test_the_document_describes_the_v2_routes(loaded, lambda_context):
    event = load_event("health")
    event["path"] = event["resource"] = "/openapi.json"
    document = json.loads(predict_handler.lambda_handler(event, lambda_context)["body"])
    paths = document["paths"]
    assert "security" not in paths["/v2/health/ready"]["get"]
    assert paths["/v2/models/{name}"]["get"]["security"] == [{"apiKey": []}]
    infer_op = paths["/v2/models/{name}/infer"]["post"]
    assert infer_op["security"] == [{"apiKey": []}]
    assert {"200", "400", "404", "422"} <= set(infer_op["responses"])
