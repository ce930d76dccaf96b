"""local/moto_service.py: the server's backend apps are moto's, out of Flask's debug mode."""

from __future__ import annotations

from moto.moto_server.werkzeug_app import create_backend_app

from local.moto_service import backend_app


def test_backend_apps_are_moto_s_apps_without_debug_mode() -> None:
    for service in ("stepfunctions", "s3", "sns"):
        app, stock = backend_app(service), create_backend_app(service)
        assert stock.debug and not app.debug
        rules = sorted(
            (r.rule, r.endpoint, sorted(r.methods or ())) for r in app.url_map.iter_rules()
        )
        assert rules == sorted(
            (r.rule, r.endpoint, sorted(r.methods or ())) for r in stock.url_map.iter_rules()
        )
        assert app.view_functions.keys() == stock.view_functions.keys()


def test_moto_errors_reach_the_client_unchanged_without_debug_mode() -> None:
    client = backend_app("stepfunctions").test_client()
    response = client.post(
        "/",
        headers={
            "X-Amz-Target": "AWSStepFunctions.DescribeExecution",
            "Content-Type": "application/x-amz-json-1.0",
            "Authorization": "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/states/"
            "aws4_request, SignedHeaders=host, Signature=x",
        },
        data='{"executionArn": "not-an-arn"}',
    )
    assert response.status_code == 400
    assert response.get_json()["__type"].endswith("InvalidArn")
