"""The peer a user would otherwise write: a Python Lambda function with boto3 that builds the same
two clients as our create/update functions (DynamoDB and KMS) at init, and lists a tenant's
connectors per invocation, with a minimal Runtime API loop (what the managed Python runtime does).
"""

import http.client
import json
import os

import boto3

TABLE = os.environ["TABLE_NAME"]
dynamodb = boto3.client("dynamodb")
kms = boto3.client("kms")


def handler(event: dict) -> dict:
    tenant = event["requestContext"]["authorizer"]["lambda"]["tenantId"]
    page = dynamodb.query(
        TableName=TABLE,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
        ExpressionAttributeValues={":pk": {"S": f"TENANT#{tenant}"}, ":prefix": {"S": "CONNECTOR#"}},
        Limit=21,
        ConsistentRead=True,
    )
    items = [{"id": i["sk"]["S"].split("#", 1)[1], "name": i.get("name", {}).get("S")} for i in page["Items"][:20]]
    return {"statusCode": 200, "headers": {"content-type": "application/json"}, "body": json.dumps({"items": items})}


def main() -> None:
    api = http.client.HTTPConnection(os.environ["AWS_LAMBDA_RUNTIME_API"])
    while True:
        api.request("GET", "/2018-06-01/runtime/invocation/next")
        r = api.getresponse()
        event = json.loads(r.read())
        request_id = r.getheader("Lambda-Runtime-Aws-Request-Id")
        body = json.dumps(handler(event))
        api.request("POST", f"/2018-06-01/runtime/invocation/{request_id}/response", body=body, headers={"Content-Type": "application/json"})
        api.getresponse().read()


if __name__ == "__main__":
    main()
