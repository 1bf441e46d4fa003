"""Creates the local stack's DynamoDB table and KMS key on the emulator (idempotent), and prints
the environment the functions need, one KEY=VALUE a line.

Usage: aws_setup.py ENDPOINT_URL TABLE_NAME [--stream]
The table mirrors template.yaml: string keys pk/sk, the sparse keys-only `due` index, on-demand
billing; with --stream (make local) a NEW_AND_OLD_IMAGES stream (the publisher's outbox). The
benchmarks and the API fuzzer run without one: the emulator copies a table's stream into every
transaction on it, which would make their timings grow with the run. Also: the status-change events'
dead-letter queue, and on the default bus a rule sending "Connector Status Changed" events to the
queue `connector-events`, so they can be read (EVENTS_QUEUE_URL).
"""

import sys

import boto3

ALIAS = "alias/connectors-api-local"
REGION = "us-east-1"


def main() -> int:
    endpoint, table = sys.argv[1], sys.argv[2]
    stream = "--stream" in sys.argv[3:]
    session = boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name=REGION)
    dynamodb = session.client("dynamodb", endpoint_url=endpoint)
    kms = session.client("kms", endpoint_url=endpoint)

    if table not in dynamodb.list_tables()["TableNames"]:
        dynamodb.create_table(
            TableName=table,
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
                {"AttributeName": "dueShard", "AttributeType": "S"},
                {"AttributeName": "nextProbeAt", "AttributeType": "S"},
            ],
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            GlobalSecondaryIndexes=[
                {
                    "IndexName": "due",
                    "KeySchema": [
                        {"AttributeName": "dueShard", "KeyType": "HASH"},
                        {"AttributeName": "nextProbeAt", "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "KEYS_ONLY"},
                }
            ],
            BillingMode="PAY_PER_REQUEST",
            **({"StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}} if stream else {}),
        )
    elif stream and "StreamSpecification" not in dynamodb.describe_table(TableName=table)["Table"]:
        dynamodb.update_table(TableName=table, StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})

    sqs = session.client("sqs", endpoint_url=endpoint)
    events = session.client("events", endpoint_url=endpoint)
    dlq_url = sqs.create_queue(QueueName="connector-events-dead-letters")["QueueUrl"]
    queue_url = sqs.create_queue(QueueName="connector-events")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="connector-status-changes", EventBusName="default",
                    EventPattern='{"source": ["connectors-api"], "detail-type": ["Connector Status Changed"]}')
    events.put_targets(Rule="connector-status-changes", EventBusName="default", Targets=[{"Id": "queue", "Arn": queue_arn}])

    aliases = {a["AliasName"]: a.get("TargetKeyId") for a in kms.list_aliases()["Aliases"]}
    key_id = aliases.get(ALIAS)
    if not key_id:
        key_id = kms.create_key(Description="connectors-api local envelope key")["KeyMetadata"]["KeyId"]
        kms.create_alias(AliasName=ALIAS, TargetKeyId=key_id)

    print(f"AWS_ENDPOINT_URL={endpoint}")
    print(f"AWS_REGION={REGION}")
    print("AWS_ACCESS_KEY_ID=test")
    print("AWS_SECRET_ACCESS_KEY=test")
    print(f"TABLE_NAME={table}")
    print(f"KMS_KEY_ID={key_id}")
    print("EVENT_BUS_NAME=default")
    print(f"EVENTS_DLQ_URL={dlq_url}")
    print(f"EVENTS_QUEUE_URL={queue_url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
