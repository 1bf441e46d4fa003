//! S3: HeadBucket (exists, and the identity may use it) then ListObjectsV2 with one key at most
//! (the grant a connector needs to read).

use super::{aws_failure, region_of};
use crate::probe::report::Failure;
use aws_config::SdkConfig;
use aws_sdk_s3::config::Credentials;

pub async fn check_bucket(
    sdk: &SdkConfig,
    region: &str,
    creds: Option<Credentials>,
    bucket: &str,
) -> Result<((), String), Failure> {
    let mut conf = aws_sdk_s3::config::Builder::from(sdk).region(region_of(region));
    if let Some(c) = creds {
        conf = conf.credentials_provider(c);
    }
    // An endpoint override (the emulator) serves buckets by path, not by subdomain.
    if sdk.endpoint_url().is_some() {
        conf = conf.force_path_style(true);
    }
    let client = aws_sdk_s3::Client::from_conf(conf.build());
    if let Err(e) = client.head_bucket().bucket(bucket).send().await {
        return Err(aws_failure(
            e.raw_response().map(|r| r.status().as_u16()),
            &e,
            "bucket",
        ));
    }
    match client
        .list_objects_v2()
        .bucket(bucket)
        .max_keys(1)
        .send()
        .await
    {
        Ok(out) => Ok((
            (),
            format!(
                "bucket {bucket} exists and lists ({} key shown)",
                out.key_count().unwrap_or(0)
            ),
        )),
        Err(e) => Err(aws_failure(
            e.raw_response().map(|r| r.status().as_u16()),
            &e,
            "bucket",
        )),
    }
}
