//! AWS checks: S3 `HeadBucket` and Kinesis `DescribeStreamSummary`, with the connector's own
//! credentials (or the function's role for `authMethod: iam_role`), on the process's HTTP client.

use super::report::{Failure, ProbeCode};
use aws_config::SdkConfig;
use aws_sdk_s3::config::{Credentials, Region};
use serde_json::{Map, Value};

/// Credentials from authConfig (`accessKeyId`, `secretAccessKey`, optional `sessionToken`), or
/// None to use the function's own role.
pub fn credentials(
    auth_method: &str,
    secret: Option<&Map<String, Value>>,
) -> Result<Option<Credentials>, Failure> {
    if auth_method == "iam_role" {
        return Ok(None);
    }
    let get = |k: &str| {
        secret
            .and_then(|s| s.get(k))
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
    };
    match (get("accessKeyId"), get("secretAccessKey")) {
        (Some(id), Some(key)) => Ok(Some(Credentials::new(
            id,
            key,
            get("sessionToken").map(str::to_string),
            None,
            "connector",
        ))),
        _ => Err(Failure::new(
            ProbeCode::InvalidConfig,
            "authConfig needs accessKeyId and secretAccessKey (or set authMethod to iam_role)",
        )),
    }
}

pub async fn head_bucket(
    sdk: &SdkConfig,
    region: &str,
    creds: Option<Credentials>,
    bucket: &str,
) -> Result<((), String), Failure> {
    let mut conf = aws_sdk_s3::config::Builder::from(sdk).region(Region::new(region.to_string()));
    if let Some(c) = creds {
        conf = conf.credentials_provider(c);
    }
    // An endpoint override (the emulator) serves buckets by path, not by subdomain.
    if sdk.endpoint_url().is_some() {
        conf = conf.force_path_style(true);
    }
    let client = aws_sdk_s3::Client::from_conf(conf.build());
    match client.head_bucket().bucket(bucket).send().await {
        Ok(_) => Ok(((), format!("bucket {bucket} exists and is accessible"))),
        Err(e) => Err(aws_failure(
            e.raw_response().map(|r| r.status().as_u16()),
            &e,
            "bucket",
        )),
    }
}

pub async fn describe_stream(
    sdk: &SdkConfig,
    region: &str,
    creds: Option<Credentials>,
    stream: &str,
) -> Result<((), String), Failure> {
    let mut conf = aws_sdk_kinesis::config::Builder::from(sdk)
        .region(aws_sdk_kinesis::config::Region::new(region.to_string()));
    if let Some(c) = creds {
        conf = conf.credentials_provider(c);
    }
    let client = aws_sdk_kinesis::Client::from_conf(conf.build());
    match client
        .describe_stream_summary()
        .stream_name(stream)
        .send()
        .await
    {
        Ok(out) => {
            let status = out
                .stream_description_summary()
                .map(|s| s.stream_status().as_str().to_string())
                .unwrap_or_default();
            Ok(((), format!("stream {stream} is {status}")))
        }
        Err(e) => {
            let status = e.raw_response().map(|r| r.status().as_u16());
            let not_found = e
                .as_service_error()
                .is_some_and(|se| se.is_resource_not_found_exception());
            Err(if not_found {
                Failure::new(
                    ProbeCode::NotFound,
                    format!("stream {stream} does not exist"),
                )
            } else {
                aws_failure(status, &e, "stream")
            })
        }
    }
}

fn aws_failure<E: std::error::Error + 'static>(status: Option<u16>, e: &E, what: &str) -> Failure {
    // The SDK's text names the request, not the credentials; it is logged at debug only.
    tracing::debug!(error = %aws_sdk_s3::error::DisplayErrorContext(e), "AWS probe failed");
    match status {
        Some(404) => Failure::new(ProbeCode::NotFound, format!("the {what} does not exist")),
        Some(401 | 403) => Failure::new(
            ProbeCode::AuthFailed,
            format!("access to the {what} was denied"),
        ),
        Some(400) => Failure::new(
            ProbeCode::AuthFailed,
            format!("the {what} request was refused (HTTP 400: credentials or region)"),
        ),
        Some(301) => Failure::new(
            ProbeCode::HttpError,
            format!("the {what} is in another region"),
        ),
        Some(s) => Failure::new(ProbeCode::HttpError, format!("AWS answered HTTP {s}")),
        None => Failure::new(ProbeCode::ConnectionRefused, "AWS could not be reached"),
    }
}
