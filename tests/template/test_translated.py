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
FUNCTIONS = ["Authorizer", "List", "Create", "Update", "Delete", "Test", "Publisher"]


class NoManagedPolicies:
    """The translator asks for managed policy ARNs only for policy names; the template uses none."""

    def load(self):
        return {}


PARAMS = {"JwksUrl": "https://issuer.example/jwks.json", "JwtIssuer": "https://issuer.example", "JwtAudience": "app"}
VPC = {"ProbeSubnetIds": ["subnet-0a", "subnet-0b"], "ProbeSecurityGroupIds": ["sg-0c"], "ProbeAllowCidrs": "10.20.0.0/16"}


def translated(params):
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    template = yaml_parse((ROOT / "template.yaml").read_text())
    # What `sam package` does to CodeUri before the translator sees it.
    template["Globals"]["Function"]["CodeUri"] = "s3://bucket/code.zip"
    return transform(template, params, NoManagedPolicies())


def decided(value, conditions):
    """`value` with every Fn::If on one of `conditions` (name → bool) decided, and the
    AWS::NoValue such an If yields dropped, as CloudFormation does at deploy time."""
    if isinstance(value, dict):
        if set(value) == {"Fn::If"} and value["Fn::If"][0] in conditions:
            name, yes, no = value["Fn::If"]
            chosen = decided(yes if conditions[name] else no, conditions)
            return DROP if chosen == NO_VALUE else chosen
        out = {k: decided(v, conditions) for k, v in value.items()}
        return {k: v for k, v in out.items() if v is not DROP}
    if isinstance(value, list):
        return [v for v in (decided(v, conditions) for v in value) if v is not DROP]
    return value


DROP = object()
NO_VALUE = {"Ref": "AWS::NoValue"}


def deployed(params, in_vpc):
    """The resources as CloudFormation would build them with `params`: ProbeInVpc decided as
    given (the other conditions are left for their own tests)."""
    return decided(translated(params)["Resources"], {"ProbeInVpc": in_vpc})


@pytest.fixture(scope="module")
def resources():
    return deployed(PARAMS, in_vpc=False)


@pytest.fixture(scope="module")
def vpc_resources():
    return deployed({**PARAMS, **VPC}, in_vpc=True)


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
        ("get", "/api/v1/tunnel-key"): "CreateFunction",
        ("get", "/api/v1/connectors/{id}/tests"): "ListFunction",
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
    # The authorizer's own route table admits every route (else API Gateway answers 403).
    authorizer = (ROOT / "shared/src/handlers/authorizer.rs").read_text()
    for method, path in expected:
        assert f'"{method.upper()} {path}"' in authorizer, (method, path)


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
    json.dumps({"Fn::GetAtt": ["ConnectorsTable", "StreamArn"]}): "table stream",
    json.dumps({"Fn::Sub": "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/${EventBusName}"}): "event bus",
    json.dumps({"Fn::GetAtt": ["StatusEventDeadLetters", "Arn"]}): "event dead letters",
}
KMS_CONTEXT = {
    "ForAllValues:StringEquals": {"kms:EncryptionContextKeys": ["tenantId", "connectorId"]},
    "Null": {"kms:EncryptionContext:tenantId": "false"},
}
# The functions that seal (create) or open (test) the tenant's tunnel key: its context names the
# tenant and the key's purpose.
KMS_CONTEXT_TUNNEL_KEY = {
    "ForAllValues:StringEquals": {"kms:EncryptionContextKeys": ["tenantId", "connectorId", "purpose"]},
    "Null": {"kms:EncryptionContext:tenantId": "false"},
}


def managed(arn):
    """A managed policy ARN as SAM writes it, whether spelled out or with ${AWS::Partition}."""
    if isinstance(arn, dict):
        return arn["Fn::Sub"].replace("${AWS::Partition}", "aws")
    return arn


def granted(role):
    """(sorted actions, resource name, conditioned on the KMS context) per inline statement."""
    out = set()
    for policy in role["Properties"].get("Policies", []):
        for st in policy["PolicyDocument"]["Statement"]:
            if st["Effect"] == "Deny":
                continue  # denials are checked by their own test
            assert st["Effect"] == "Allow"
            actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
            for a in actions:
                assert "*" not in a, f"wildcard action {a}"
            resource = RESOURCES[json.dumps(st["Resource"])]
            condition = st.get("Condition")
            if any(a.startswith("kms:") for a in actions):
                assert condition in (KMS_CONTEXT, KMS_CONTEXT_TUNNEL_KEY), "every KMS grant is conditioned on the encryption context"
            else:
                assert condition is None
            out.add((tuple(sorted(actions)), resource, condition is not None))
    return out


def test_each_function_has_exactly_the_privileges_the_readme_lists(resources):
    table = least_privilege_table()
    assert sorted(table) == sorted([f.lower() for f in FUNCTIONS] + ["sweep schedule"])
    for f in FUNCTIONS:
        role = resources[f"{f}FunctionRole"]
        # X-Ray writes come with SAM's Tracing property as soon as it is a parameter (README
        # "Operating it"); nothing else is managed.
        assert [managed(a) for a in role["Properties"]["ManagedPolicyArns"]] == [
            "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
            "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
        ]
        principal = role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]
        assert principal == {"Service": ["lambda.amazonaws.com"]}
        kms = [st for p in role["Properties"].get("Policies", []) for st in p["PolicyDocument"]["Statement"]
               if any(a.startswith("kms:") for a in (st["Action"] if isinstance(st["Action"], list) else [st["Action"]]))]
        tunnel_key = [st["Condition"] == KMS_CONTEXT_TUNNEL_KEY for st in kms]
        assert all(tunnel_key) if f in ("Create", "Test") else not any(tunnel_key), f
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
    (mapping,) = [m for m in of_type(resources, "AWS::Lambda::EventSourceMapping").values()
                  if m["Properties"]["FunctionName"] == {"Ref": "TestFunction"}]
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


# ---------------------------------------------------------------- operations (issue: Operability)

TELEMETRY = (ROOT / "shared/src/telemetry/request.rs").read_text()
# What the functions emit (shared/src/telemetry/request.rs): metric → its dimension sets.
EMITTED = {
    "Requests": [["function", "statusClass"]],
    "ProbeResult": [["type", "code", "depth"], ["code"], ["service"]],
    "ProbeLatency": [["type", "code", "depth"], ["code"], ["service"]],
    "RateLimited": [["function"]],
    "CircuitOpened": [["service"]],
    "SweepProbed": [["service"]],
    "SweepFailed": [["service"]],
    "SweepSkipped": [["service"]],
    "SweepLagSeconds": [["service"]],
}


def test_the_emitted_metrics_are_the_ones_operations_read():
    for name, sets in EMITTED.items():
        assert f'"{name}"' in TELEMETRY, name
        for dims in sets:
            listed = "&[" + ", ".join(f'"{d}"' for d in dims) + "]"
            assert listed in TELEMETRY, (name, listed)
    assert 'SERVICE: &str = "connectors-api"' in (ROOT / "shared/src/telemetry/metrics.rs").read_text()


def test_every_function_traces_as_the_parameter_says_and_names_the_namespace(resources):
    template = yaml_parse((ROOT / "template.yaml").read_text())
    tracing = template["Parameters"]["Tracing"]
    assert tracing["Default"] == "PassThrough"
    assert sorted(tracing["AllowedValues"]) == ["Active", "PassThrough"]
    assert template["Parameters"]["MetricsNamespace"]["Default"] == "ConnectorsApi"
    for f in FUNCTIONS:
        props = resources[f"{f}Function"]["Properties"]
        assert props["TracingConfig"] == {"Mode": {"Ref": "Tracing"}}, f
        assert props["Environment"]["Variables"]["METRICS_NAMESPACE"] == {"Ref": "MetricsNamespace"}, f


def test_no_role_of_the_deployments_own_account_can_be_assumed(resources):
    denials = {
        f: [st for p in resources[f"{f}FunctionRole"]["Properties"].get("Policies", [])
            for st in p["PolicyDocument"]["Statement"] if st["Effect"] == "Deny"]
        for f in FUNCTIONS
    }
    assert {f: d for f, d in denials.items() if d} == {"Test": [{
        "Effect": "Deny",
        "Action": "sts:AssumeRole",
        "Resource": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/*"},
    }]}


def test_the_function_role_is_lent_to_connectors_only_when_the_parameter_says(resources):
    template = yaml_parse((ROOT / "template.yaml").read_text())
    allow = template["Parameters"]["AllowFunctionRole"]
    assert (allow["Default"], sorted(allow["AllowedValues"])) == ("false", ["false", "true"])
    for f in FUNCTIONS:
        variables = resources[f"{f}Function"]["Properties"]["Environment"]["Variables"]
        assert variables["ALLOW_FUNCTION_ROLE"] == {"Ref": "AllowFunctionRole"}, f


def test_browsers_may_read_the_request_id(resources):
    cors = api_body(resources)["x-amazon-apigateway-cors"]
    assert "x-request-id" in cors["exposeHeaders"]
    assert "etag" in cors["exposeHeaders"]


def metric_of(stat):
    m = stat["MetricStat"]["Metric"]
    return m["MetricName"], {d["Name"]: d["Value"] for d in m.get("Dimensions", [])}, m["Namespace"]


def emitted(name, dims):
    """True when the functions emit `name` under exactly this dimension set."""
    return sorted(dims) in [sorted(s) for s in EMITTED.get(name, [])]


def test_the_sweep_lag_alarm_fires_when_behind_or_silent(resources):
    alarm = resources["SweepLagAlarm"]["Properties"]
    assert alarm["Namespace"] == {"Ref": "MetricsNamespace"}
    assert alarm["MetricName"] == "SweepLagSeconds"
    dims = {d["Name"]: d["Value"] for d in alarm["Dimensions"]}
    assert dims == {"service": "connectors-api"} and emitted("SweepLagSeconds", dims)
    assert alarm["Statistic"] == "Maximum"
    assert alarm["Threshold"] == {"Ref": "SweepLagAlarmSeconds"}
    assert alarm["TreatMissingData"] == "breaching", "a sweep that stopped reporting is behind"
    # Every scheduled run reports (each shard run does), so a period holds at least one run.
    schedule = yaml_parse((ROOT / "template.yaml").read_text())["Parameters"]["SweepSchedule"]["Default"]
    minutes = int(re.fullmatch(r"rate\((\d+) minutes\)", schedule).group(1))
    assert alarm["Period"] >= 2 * minutes * 60
    assert alarm["AlarmActions"] == {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}


def test_a_jump_of_auth_and_tls_failures_across_tenants_alarms(resources):
    alarm = resources["ProbeAuthTlsFailuresAlarm"]["Properties"]
    by_id = {m["Id"]: m for m in alarm["Metrics"]}
    (returned,) = [m for m in alarm["Metrics"] if m["ReturnData"]]
    assert "auth" in returned["Expression"] and "tls" in returned["Expression"] and "probes" in returned["Expression"]
    for mid, (dims) in {"auth": {"code": "auth_failed"}, "tls": {"code": "tls_failed"}, "probes": {"service": "connectors-api"}}.items():
        name, got, namespace = metric_of(by_id[mid])
        assert (name, got, namespace) == ("ProbeResult", dims, {"Ref": "MetricsNamespace"}), mid
        assert emitted(name, got), mid
        assert by_id[mid]["MetricStat"]["Stat"] == "Sum"
    assert alarm["Threshold"] == {"Ref": "ProbeFailureAlarmPercent"}
    assert alarm["EvaluationPeriods"] == alarm["DatapointsToAlarm"] == 2
    assert alarm["TreatMissingData"] == "notBreaching"
    for name in ["ApiServerErrorsAlarm", "FunctionErrorsAlarm", "FunctionThrottlesAlarm", "ProbeAuthTlsFailuresAlarm"]:
        assert "AlarmActions" in resources[name]["Properties"], name


def test_the_dashboard_shows_requests_probes_circuits_limits_and_the_sweep(resources):
    body = resources["OperationsDashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    assert isinstance(body, str)
    names = set(re.findall(r"\$\{([^}!]+)\}", body))
    params = yaml_parse((ROOT / "template.yaml").read_text())["Parameters"]
    for ref in names:
        base = ref.split(".")[0]
        assert base in params or base in resources or base.startswith("AWS::"), ref
    values = {"MetricsNamespace": "ConnectorsApi", "AWS::Region": "us-east-1", "SweepLagAlarmSeconds": "1800"}
    text = re.sub(r"\$\{([^}]+)\}", lambda m: values.get(m.group(1), "arn:" + m.group(1)), body)
    widgets = json.loads(text)["widgets"]
    shown = {}
    for w in widgets:
        if w["type"] != "metric":
            continue
        for row in w["properties"]["metrics"]:
            if isinstance(row[0], dict):  # a SEARCH expression
                expr = row[0]["expression"]
                (keys,) = re.findall(r"\{ConnectorsApi,([^}]*)\}", expr)
                (name,) = re.findall(r'MetricName="(\w+)"', expr)
                shown.setdefault(name, []).append(keys.split(","))
            else:
                namespace, name, *rest = row
                assert namespace == "ConnectorsApi"
                dims = [d for d in rest[0::2] if isinstance(d, str)]
                shown.setdefault(name, []).append(dims[:1] if dims else [])
    for name in EMITTED:
        assert name in shown, f"{name} is on no widget"
        for dims in shown[name]:
            assert emitted(name, dims), (name, dims)
    (alarms,) = [w for w in widgets if w["type"] == "alarm"]
    assert "arn:SweepLagAlarm.Arn" in alarms["properties"]["alarms"]
    assert "arn:ProbeAuthTlsFailuresAlarm.Arn" in alarms["properties"]["alarms"]


def test_only_the_vpc_parameters_put_the_test_function_in_a_vpc_with_its_eni_grant(resources, vpc_resources):
    eni = {"ec2:CreateNetworkInterface", "ec2:DeleteNetworkInterface", "ec2:DescribeNetworkInterfaces"}

    def statements(res):
        role = res["TestFunctionRole"]["Properties"]
        return [st for p in role["Policies"] for st in p["PolicyDocument"]["Statement"]]

    def eni_grants(res):
        return [st for st in statements(res) if eni & set(st["Action"] if isinstance(st["Action"], list) else [st["Action"]])]

    for name, res in (("without", resources), ("with", vpc_resources)):
        for f in FUNCTIONS:
            props = res[f"{f}Function"]["Properties"]
            has_vpc = "VpcConfig" in props
            assert has_vpc == (name == "with" and f == "Test"), (name, f)
            role = res[f"{f}FunctionRole"]["Properties"]
            # No managed VPC policy anywhere (its ENI actions cover every resource).
            assert not any("VPCAccess" in managed(a) for a in role["ManagedPolicyArns"]), (name, f)
    assert eni_grants(resources) == []
    (grant,) = eni_grants(vpc_resources)
    assert grant["Effect"] == "Allow" and eni <= set(grant["Action"])
    vpc = vpc_resources["TestFunction"]["Properties"]["VpcConfig"]
    assert vpc == {"SubnetIds": {"Ref": "ProbeSubnetIds"}, "SecurityGroupIds": {"Ref": "ProbeSecurityGroupIds"}}
    env = vpc_resources["TestFunction"]["Properties"]["Environment"]["Variables"]
    assert env["PROBE_ALLOW_CIDRS"] == {"Ref": "ProbeAllowCidrs"}
    # The parameters default to empty: no VPC, no private range.
    params = translated(PARAMS)
    template = yaml_parse((ROOT / "template.yaml").read_text())
    for p in ("ProbeSubnetIds", "ProbeSecurityGroupIds", "ProbeAllowCidrs"):
        assert template["Parameters"][p]["Default"] == "", p
    assert params["Conditions"]["ProbeInVpc"]["Fn::And"]


def test_the_stream_feeds_the_publisher_through_its_filter_only(resources):
    table = resources["ConnectorsTable"]["Properties"]
    assert table["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}
    mappings = [r["Properties"] for r in of_type(resources, "AWS::Lambda::EventSourceMapping").values()
                if r["Properties"]["EventSourceArn"] == {"Fn::GetAtt": ["ConnectorsTable", "StreamArn"]}]
    (mapping,) = mappings
    assert mapping["FunctionName"] == {"Ref": "PublisherFunction"}
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    (flt,) = mapping["FilterCriteria"]["Filters"]
    pattern = json.loads(flt["Pattern"])
    # What the publisher keys on: the outbox the connector's own write carries.
    assert pattern == {"eventName": ["MODIFY"], "dynamodb": {"NewImage": {"outbox": {"M": {"eventId": {"S": [{"exists": True}]}}}}}}
    model = (ROOT / "shared/core/src/model.rs").read_text()
    assert "pub outbox: Option<Outbox>" in model and "pub event_id: String" in model
    publisher = resources["PublisherFunction"]["Properties"]
    assert publisher["Environment"]["Variables"]["EVENT_BUS_NAME"] == {"Ref": "EventBusName"}
    assert publisher["Environment"]["Variables"]["EVENTS_DLQ_URL"] == {"Ref": "StatusEventDeadLetters"}
    # No SAM DynamoDB event (it grants every stream of the account), no event source in SAM's form.
    assert "Events" not in publisher or not publisher["Events"]


def test_the_publisher_is_watched_lag_dead_letters_and_errors(resources):
    lag = resources["PublisherLagAlarm"]["Properties"]
    assert (lag["Namespace"], lag["MetricName"]) == ("AWS/Lambda", "IteratorAge")
    assert lag["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": "PublisherFunction"}}]
    dead = resources["StatusEventDeadLettersAlarm"]["Properties"]
    assert dead["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert dead["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["StatusEventDeadLetters", "QueueName"]}}]
    assert (dead["Threshold"], dead["ComparisonOperator"]) == (0, "GreaterThanThreshold")
    errors = resources["FunctionErrorsAlarm"]["Properties"]["Metrics"]
    watched = {m["MetricStat"]["Metric"]["Dimensions"][0]["Value"]["Ref"] for m in errors if "MetricStat" in m}
    assert watched == {f"{f}Function" for f in FUNCTIONS}
    for alarm in (lag, dead):
        assert alarm["AlarmActions"] == {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}
