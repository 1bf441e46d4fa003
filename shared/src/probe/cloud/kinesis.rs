//! Kinesis: DescribeStreamSummary (the stream exists and the identity may describe it).

use super::aws_failure;
use crate::probe::report::{Failure, ProbeCode};
use aws_config::SdkConfig;
use aws_sdk_s3::config::Credentials;

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
