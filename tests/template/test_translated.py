"""What AWS will build from template.yaml: the template translated by the SAM translator (the code
`sam deploy` runs), asserted resource by resource. cfn-lint and `sam validate` only read what we
wrote; SAM drops properties it does not know without a word, so this reads what it generates.

The least-privilege table is read from README.md ("Least privilege"), so the README stays true.
"""

import json
import os
import re
from pathlib import Path

import pytest
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS = ["Authorizer", "List", "Create", "Update", "Delete", "Test"]


class NoManagedPolicies:
    """The translator asks for managed policy ARNs only for policy names; the template uses none."""

    def load(self):
        return {}


@pytest.fixture(scope="module")
def resources():
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    template = yaml_parse((ROOT / "template.yaml").read_text())
    # What `sam package` does to CodeUri before the translator sees it.
    template["Globals"]["Function"]["CodeUri"] = "s3://bucket/code.zip"
    params = {"JwksUrl": "https://issuer.example/jwks.json", "JwtIssuer": "https://issuer.example", "JwtAudience": "app"}
    return transform(template, params, NoManagedPolicies())["Resources"]


def of_type(resources, kind):
    return {name: r for name, r in resources.items() if r["Type"] == kind}


def api_body(resources):
    (api,) = of_type(resources, "AWS::ApiGatewayV2::Api").values()
    return api["Properties"]["Body"]


def test_authorizer_is_not_cached_and_speaks_payload_2(resources):
    schemes = api_body(resources)["components"]["securitySchemes"]
    auth = schemes["TokenAuthorizer"]["x-amazon-apigateway-authorizer"]
    assert auth["type"] == "request"
    assert auth["authorizerResultTtlInSeconds"] == 0
    assert auth["identitySource"] == ["$request.header.Authorization"]
    assert auth["authorizerPayloadFormatVersion"] == "2.0"
    assert auth["enableSimpleResponses"] is True
    assert "AuthorizerFunction" in json.dumps(auth["authorizerUri"])


def test_every_route_reaches_its_function_behind_the_authorizer(resources):
    expected = {
        ("get", "/api/v1/connectors"): "ListFunction",
        ("get", "/api/v1/connectors/{id}"): "ListFunction",
        ("post", "/api/v1/connectors"): "CreateFunction",
        ("put", "/api/v1/connectors"): "UpdateFunction",
        ("delete", "/api/v1/connectors"): "DeleteFunction",
        ("post", "/api/v1/connectors/test"): "TestFunction",
    }
    found = {}
    for path, methods in api_body(resources)["paths"].items():
        for method, op in methods.items():
            integration = op["x-amazon-apigateway-integration"]
            assert integration["type"] == "aws_proxy"
            assert integration["payloadFormatVersion"] == "2.0"
            assert op["security"] == [{"TokenAuthorizer": []}], (method, path)
            (function,) = re.findall(r"\$\{(\w+)\.Arn\}", integration["uri"]["Fn::Sub"])
            found[(method, path)] = function
    assert found == expected
    # API Gateway may invoke each function (one permission per route) and the authorizer.
    permissions = of_type(resources, "AWS::Lambda::Permission")
    names = [p["Properties"]["FunctionName"] for p in permissions.values()]
    invoked = sorted(n.get("Ref") or n["Fn::GetAtt"][0] for n in names)
    for p in permissions.values():
        assert p["Properties"]["Principal"] == "apigateway.amazonaws.com"
    assert invoked == sorted(list(expected.values()) + ["AuthorizerFunction"])


def least_privilege_table():
    """README rows: | function | actions | resource | encryption-context condition |."""
    text = (ROOT / "README.md").read_text()
    section = text.split("### Least privilege", 1)[1].split("\n#", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
        if len(cells) != 4 or cells[0] in ("function", "") or set(cells[0]) <= {"-"}:
            continue
        function, actions, resource, condition = cells
        actions = tuple(sorted(a.strip().strip("`") for a in actions.split(",") if a.strip()))
        if actions == ("(none)",):
            rows.setdefault(function, set())
            continue
        rows.setdefault(function, set()).add((actions, resource, condition == "yes"))
    return rows


RESOURCES = {
    json.dumps({"Fn::GetAtt": ["ConnectorsTable", "Arn"]}): "table",
    json.dumps({"Fn::Sub": "${ConnectorsTable.Arn}/index/due"}): "due index",
    json.dumps({"Fn::GetAtt": ["SecretsKey", "Arn"]}): "key",
    json.dumps({"Fn::GetAtt": ["TestFunction", "Arn"]}): "test function",
    json.dumps("arn:aws:iam::*:role/*"): "customer roles",
    json.dumps({"Fn::GetAtt": ["SweepShardQueue", "Arn"]}): "shard queue",
}
KMS_CONTEXT = {
    "ForAllValues:StringEquals": {"kms:EncryptionContextKeys": ["tenantId", "connectorId"]},
    "Null": {"kms:EncryptionContext:tenantId": "false"},
}


def granted(role):
    """(sorted actions, resource name, conditioned on the KMS context) per inline statement."""
    out = set()
    for policy in role["Properties"].get("Policies", []):
        for st in policy["PolicyDocument"]["Statement"]:
            assert st["Effect"] == "Allow"
            actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
            for a in actions:
                assert "*" not in a, f"wildcard action {a}"
            resource = RESOURCES[json.dumps(st["Resource"])]
            condition = st.get("Condition")
            if any(a.startswith("kms:") for a in actions):
                assert condition == KMS_CONTEXT, "every KMS grant is conditioned on the encryption context"
            else:
                assert condition is None
            out.add((tuple(sorted(actions)), resource, condition is not None))
    return out


def test_each_function_has_exactly_the_privileges_the_readme_lists(resources):
    table = least_privilege_table()
    assert sorted(table) == sorted([f.lower() for f in FUNCTIONS] + ["sweep schedule"])
    for f in FUNCTIONS:
        role = resources[f"{f}FunctionRole"]
        assert role["Properties"]["ManagedPolicyArns"] == [
            "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
        ]
        principal = role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]
        assert principal == {"Service": ["lambda.amazonaws.com"]}
        assert granted(role) == table[f.lower()], f
    assert granted(resources["TestFunctionSweepRole"]) == table["sweep schedule"]


def test_the_schedule_invokes_the_sweep(resources):
    (schedule,) = of_type(resources, "AWS::Scheduler::Schedule").values()
    target = schedule["Properties"]["Target"]
    assert target["Arn"] == {"Fn::GetAtt": ["TestFunction", "Arn"]}
    assert json.loads(target["Input"]) == {"detail-type": "Scheduled Event", "source": "connectors-api.sweep", "detail": {}}
    assert target["RetryPolicy"] == {"MaximumRetryAttempts": 0}
    assert json.loads((ROOT / "events/scheduled.json").read_text())["source"] == "connectors-api.sweep"


def test_shard_messages_reach_the_test_function_one_at_a_time(resources):
    (mapping,) = of_type(resources, "AWS::Lambda::EventSourceMapping").values()
    props = mapping["Properties"]
    assert props["EventSourceArn"] == {"Fn::GetAtt": ["SweepShardQueue", "Arn"]}
    assert props["FunctionName"] == {"Ref": "TestFunction"}
    assert props["BatchSize"] == 1
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert props["ScalingConfig"] == {"MaximumConcurrency": 16}
    env = resources["TestFunction"]["Properties"]["Environment"]["Variables"]
    assert env["SWEEP_QUEUE_URL"] == {"Ref": "SweepShardQueue"}
    queue = resources["SweepShardQueue"]["Properties"]
    timeout = resources["TestFunction"]["Properties"]["Timeout"]
    assert queue["VisibilityTimeout"] >= 6 * timeout, "Lambda's advice for an SQS event source"
    assert queue["RedrivePolicy"] == {"deadLetterTargetArn": {"Fn::GetAtt": ["SweepShardDeadLetters", "Arn"]}, "maxReceiveCount": 3}
    assert queue["SqsManagedSseEnabled"] is True


def test_table_keys_index_ttl_recovery_and_retention(resources):
    table = resources["ConnectorsTable"]
    assert table["DeletionPolicy"] == table["UpdateReplacePolicy"] == "Retain"
    p = table["Properties"]
    assert p["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}]
    (due,) = p["GlobalSecondaryIndexes"]
    assert due["IndexName"] == "due"
    assert due["KeySchema"] == [
        {"AttributeName": "dueShard", "KeyType": "HASH"},
        {"AttributeName": "nextProbeAt", "KeyType": "RANGE"},
    ]
    assert due["Projection"] == {"ProjectionType": "KEYS_ONLY"}
    assert p["TimeToLiveSpecification"] == {"AttributeName": "expiresAt", "Enabled": True}
    assert p["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert p["SSESpecification"] == {"SSEEnabled": True}
    assert resources["SecretsKey"]["DeletionPolicy"] == "Retain"
    assert resources["SecretsKey"]["Properties"]["EnableKeyRotation"] is True
    groups = of_type(resources, "AWS::Logs::LogGroup")
    assert len(groups) == len(FUNCTIONS)
    for g in groups.values():
        assert g["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}


def test_function_timeouts_are_mirrored_for_the_deadline(resources):
    """FUNCTION_TIMEOUT_SECONDS tells a function its own timeout where the runtime gives no deadline."""
    for f in FUNCTIONS[1:]:
        props = resources[f"{f}Function"]["Properties"]
        assert props["Environment"]["Variables"]["FUNCTION_TIMEOUT_SECONDS"] == str(props["Timeout"]), f
