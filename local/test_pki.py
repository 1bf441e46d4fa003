"""The tests' own PKI: one CA (for PROBE_EXTRA_CA_FILE) and server certificates for `localhost`
in every state a TLS probe must tell apart.

  ca.pem                      the trusted test CA
  localhost.{crt,key}         valid for a year, DNS name `localhost` and IP 127.0.0.3 (the servers
                              behind the bastion); 127.0.0.1 is a mismatch
  expiring.{crt,key}          valid, but for 5 more days only (a warning, not a failure)
  expired.{crt,key}           expired yesterday
  future.{crt,key}            valid from tomorrow
  wrongname.{crt,key}         valid, for `other.example` only
  unknownca.{crt,key}         valid, signed by a CA nobody trusts
  selfsigned.{crt,key}        valid, signed by itself
  login_key.p8, login_key_enc.p8   an RSA key for key-pair logins (Snowflake, the Google service
                              account of the look-alike), PKCS#8, plain and
                              encrypted with KEY_PASSPHRASE
  vendors.{crt,key}           valid, for the vendors' hosts the SaaS look-alikes stand in for
                              (VENDOR_NAMES; the probes reach them through PROBE_RESOLVE)

Usage: test_pki.py DIR   (or import and call `write(DIR)`)
"""

import datetime
import ipaddress
import os
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PRIVATE_IP = ipaddress.ip_address("127.0.0.3")

DAY = datetime.timedelta(days=1)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _ca(cn: str, now):
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - DAY)
        .not_valid_after(now + 3650 * DAY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, cert


# The vendors' names a look-alike answers for (local/saas_peer.py).
VENDOR_NAMES = [
    "api.hubapi.com",
    "*.my.salesforce.com",
    "*.cloud.databricks.com",
    "*.snowflakecomputing.com",
    "*.us-east-1.snowflakecomputing.com",
    "oauth2.googleapis.com",
    "bigquery.googleapis.com",
    "storage.googleapis.com",
    "*.blob.core.windows.net",
]

# The passphrase of the encrypted copy of the key-pair login key (test data).
KEY_PASSPHRASE = "key-passphrase-1"


def _leaf(out: Path, stem: str, dns: str, issuer_key, issuer_cert, not_before, not_after, self_signed=False,
          more_names=(), ips=()) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(dns))
        .issuer_name(_name(dns) if self_signed else issuer_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in (dns, *more_names)] + [x509.IPAddress(ip) for ip in ips]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    )
    cert = builder.sign(key if self_signed else issuer_key, hashes.SHA256())
    (out / f"{stem}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (out / f"{stem}.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    os.chmod(out / f"{stem}.key", 0o600)


def write(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, ca = _ca("connectors-api test CA", now)
    other_key, other = _ca("an untrusted CA", now)
    (out / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    # 127.0.0.3: the servers behind the tests' SSH bastion (only reachable through it).
    _leaf(out, "localhost", "localhost", ca_key, ca, now - DAY, now + 365 * DAY, ips=[PRIVATE_IP])
    _leaf(out, "expiring", "localhost", ca_key, ca, now - DAY, now + 5 * DAY)
    _leaf(out, "expired", "localhost", ca_key, ca, now - 30 * DAY, now - DAY)
    _leaf(out, "future", "localhost", ca_key, ca, now + DAY, now + 30 * DAY)
    _leaf(out, "wrongname", "other.example", ca_key, ca, now - DAY, now + 365 * DAY)
    _leaf(out, "unknownca", "localhost", other_key, other, now - DAY, now + 365 * DAY)
    _leaf(out, "selfsigned", "localhost", None, None, now - DAY, now + 365 * DAY, self_signed=True)
    _leaf(out, "vendors", "localhost", ca_key, ca, now - DAY, now + 365 * DAY, more_names=VENDOR_NAMES)
    login_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (out / "login_key.p8").write_bytes(login_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    (out / "login_key_enc.p8").write_bytes(login_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(KEY_PASSPHRASE.encode())))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    write(Path(sys.argv[1]))
