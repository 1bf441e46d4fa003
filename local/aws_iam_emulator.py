"""A second AWS emulator (moto, local/emulator.py) that enforces IAM, for the aws_s3 and
amazon_kinesis login probes: moto checks signatures and policies once INITIAL_NO_AUTH_ACTION_COUNT
requests have passed. The first three create an admin; the admin sets up the rest under
enforcement. (The main emulator of make test stays without IAM: every other test signs with
made-up keys.)

  users    prober  s3:ListBucket (+ moto's s3:HeadBucket) on granted-bucket and missing-bucket,
                   kinesis:DescribeStreamSummary (on "*": moto matches no narrower resource),
                   sts:AssumeRole; plays the function's role, or a connector's keys
           nobody  no policy at all (AssumeRole refused)
  role     probe-role  s3:ListBucket (+ s3:HeadBucket) on granted-bucket
           tenant-role the same, trusted only with tenant awsext's ExternalId
  buckets  granted-bucket, locked-bucket      stream  granted-stream

Usage: aws_iam_emulator.py start DIR PORT   (prints AWS_IAM_* KEY=VALUE lines)
       aws_iam_emulator.py stop DIR
"""

import hashlib
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import boto3

sys.path.insert(0, str(Path(__file__).resolve().parent))
from server_proc import command_line, stop_pid_file  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT = "123456789012"


def policy(*statements):
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": actions, "Resource": resources} for actions, resources in statements]})


def start(base: Path, port: int) -> None:
    stop(base)
    base.mkdir(parents=True, exist_ok=True)
    log = open(base / "emulator.log", "w")
    proc = subprocess.Popen([sys.executable, str(ROOT / "local" / "emulator.py"), str(port)],
                            env={**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "3"},
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    (base / "emulator.pid").write_text(str(proc.pid))
    for _ in range(150):
        try:
            # moto-api does not count as an action.
            urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/", timeout=1)
            break
        except OSError:
            if proc.poll() is not None:
                sys.exit(f"the IAM emulator exited: {(base / 'emulator.log').read_text()[-2000:]}")
            time.sleep(0.2)
    endpoint = f"http://127.0.0.1:{port}"

    def client(service, key):
        return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1",
                            aws_access_key_id=key[0], aws_secret_access_key=key[1])

    iam = client("iam", ("test", "test"))
    iam.create_user(UserName="admin")
    iam.put_user_policy(UserName="admin", PolicyName="all", PolicyDocument=policy(("*", "*")))
    k = iam.create_access_key(UserName="admin")["AccessKey"]
    admin = (k["AccessKeyId"], k["SecretAccessKey"])
    iam = client("iam", admin)
    s3, kinesis = client("s3", admin), client("kinesis", admin)
    for bucket in ("granted-bucket", "locked-bucket"):
        s3.create_bucket(Bucket=bucket)
    kinesis.create_stream(StreamName="granted-stream", ShardCount=1)
    read = ["s3:ListBucket", "s3:HeadBucket"]
    buckets = [f"arn:aws:s3:::{b}" for b in ("granted-bucket", "missing-bucket")]
    # moto checks other services' actions against resource "*" only (S3 is checked per bucket):
    # a stream-scoped grant would never match there, so Kinesis is granted on "*" and the refused
    # case is the user without the grant.
    streams = "*"
    iam.create_user(UserName="prober")
    iam.put_user_policy(UserName="prober", PolicyName="probe", PolicyDocument=policy(
        (read, buckets), (["kinesis:DescribeStreamSummary"], streams), (["sts:AssumeRole"], "*")))
    iam.create_user(UserName="nobody")
    keys = {}
    for user in ("prober", "nobody"):
        k = iam.create_access_key(UserName=user)["AccessKey"]
        keys[user] = (k["AccessKeyId"], k["SecretAccessKey"])
    # moto matches a trust policy's principal literally (the account root would not admit its
    # users): any principal here; who may assume the role is decided by the caller's sts:AssumeRole.
    role = iam.create_role(RoleName="probe-role", AssumeRolePolicyDocument=policy(("sts:AssumeRole", "*")).replace(
        '"Resource": "*"', '"Principal": {"AWS": "*"}'))["Role"]["Arn"]
    iam.put_role_policy(RoleName="probe-role", PolicyName="read", PolicyDocument=policy((read, buckets[:1])))
    # A customer's role as the README tells them to write it: trust only with the tenant's
    # ExternalId (tenant `awsext`; the derivation is connectors-core's aws_identity::external_id).
    external_id = "cnx-" + hashlib.sha256(b"connectors-api/aws-external-id/v1\n" + b"awsext").hexdigest()[:32]
    trust = json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole",
        "Condition": {"StringEquals": {"sts:ExternalId": external_id}}}]})
    tenant_role = iam.create_role(RoleName="tenant-role", AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    iam.put_role_policy(RoleName="tenant-role", PolicyName="read", PolicyDocument=policy((read, buckets[:1])))
    print(f"AWS_IAM_TEST_PORT={port}")
    print(f"AWS_IAM_PROBER_KEY={keys['prober'][0]}")
    print(f"AWS_IAM_PROBER_SECRET={keys['prober'][1]}")
    print(f"AWS_IAM_NOBODY_KEY={keys['nobody'][0]}")
    print(f"AWS_IAM_NOBODY_SECRET={keys['nobody'][1]}")
    print(f"AWS_IAM_ROLE_ARN={role}")
    print(f"AWS_IAM_TENANT_ROLE_ARN={tenant_role}")


def stop(base: Path) -> None:
    stop_pid_file(base / "emulator.pid", group=True)
    (base / "emulator.pid").unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(command_line(__doc__, start, stop))
