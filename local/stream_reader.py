"""The DynamoDB stream of `make local`'s table, read from the emulator and handed to the real
publisher code (the test binary's stream event kind), as Lambda's event source mapping does in AWS.

Usage: stream_reader.py ENDPOINT TABLE INVOKE_URL   poll forever; POST each batch of connector
                                                    writes that carry an outbox to INVOKE_URL
                                                    (cargo lambda's invoke endpoint of `test`)
       stream_reader.py ENDPOINT TABLE --once       print the table's stream records so far as one
                                                    Lambda event (the integration tests read it)

The emulator (moto) installs a new shard after a cancelled transaction, and an iterator of the old
shard then sees nothing new: every poll asks for fresh iterators of every shard, after the last
sequence number read from it. Records are filtered as the template's FilterCriteria does.
"""

import base64
import json
import sys
import time
import urllib.request

import boto3


def session():
    return boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1")


def jsonable(value):
    """A record as Lambda delivers it: binary attributes base64, times as epoch seconds."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode()
    if hasattr(value, "timestamp"):
        return int(value.timestamp())
    return value


def passes_filter(record) -> bool:
    """The template's filter: a MODIFY whose new image carries an outbox."""
    new = record.get("dynamodb", {}).get("NewImage", {})
    return record.get("eventName") == "MODIFY" and "eventId" in new.get("outbox", {}).get("M", {})


class Reader:
    def __init__(self, endpoint: str, table: str):
        s = session()
        self.dynamodb = s.client("dynamodb", endpoint_url=endpoint)
        self.streams = s.client("dynamodbstreams", endpoint_url=endpoint)
        self.table = table
        self.last = {}  # shard id → last sequence number read

    def poll(self):
        arn = self.dynamodb.describe_table(TableName=self.table)["Table"]["LatestStreamArn"]
        records = []
        for shard in self.streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
            sid = shard["ShardId"]
            args = {"StreamArn": arn, "ShardId": sid}
            if sid in self.last:
                args.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=self.last[sid])
            else:
                args.update(ShardIteratorType="TRIM_HORIZON")
            iterator = self.streams.get_shard_iterator(**args)["ShardIterator"]
            while iterator:
                out = self.streams.get_records(ShardIterator=iterator, Limit=1000)
                batch = out["Records"]
                if not batch:
                    break
                for r in batch:
                    self.last[sid] = r["dynamodb"]["SequenceNumber"]
                    r["eventSourceARN"] = arn
                    r["eventSource"] = "aws:dynamodb"
                    records.append(jsonable(r))
                iterator = out.get("NextShardIterator")
        return [r for r in records if passes_filter(r)]


def main() -> int:
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    reader = Reader(sys.argv[1], sys.argv[2])
    if sys.argv[3] == "--once":
        print(json.dumps({"Records": reader.poll()}))
        return 0
    url = sys.argv[3]
    while True:
        try:
            records = reader.poll()
        except Exception as e:  # the emulator restarting, the table not there yet
            print(f"stream reader: {e}", file=sys.stderr)
            time.sleep(2)
            continue
        for start in range(0, len(records), 25):
            body = json.dumps({"Records": records[start:start + 25]}).encode()
            req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=60) as resp:
                    resp.read()
            except Exception as e:
                print(f"stream reader: the publisher did not answer: {e}", file=sys.stderr)
        time.sleep(0.5)


if __name__ == "__main__":
    sys.exit(main())
