//! The vendors' own hosts: the only places a warehouse, cloud-storage or SaaS connector's
//! credentials may go. Each family names its vendor's hosts (`ConnectorType::vendor`); this
//! checks a host against them. Pure, so create and update refuse another host before anything is
//! stored, and the probe refuses a stored legacy value before anything is sent.

use crate::model::ConnectorType;

/// True for the types whose credentials go only to the vendor's own hosts.
pub fn is_bound(kind: ConnectorType) -> bool {
    !kind.vendor().hosts.is_empty()
}

/// True when the type's credentials may go to `host` (case and a root dot ignored).
pub fn is_allowed(kind: ConnectorType, host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    kind.vendor()
        .hosts
        .iter()
        .any(|pattern| match pattern.strip_prefix('*') {
            // ".suffix": a name under it, with a non-empty label before the dot.
            Some(suffix) => host.len() > suffix.len() && host.ends_with(suffix),
            None => host == *pattern,
        })
}

/// Why `host` may not receive the type's credentials (for a 400 or a probe failure).
pub fn refusal(kind: ConnectorType, host: &str) -> String {
    let vendor = kind.vendor();
    format!(
        "{host} is not a {} host ({}): credentials go only to the vendor",
        vendor.name,
        vendor.hosts.join(", ")
    )
}
#[cfg(test)]
mod tests {
    use super::*;
    use ConnectorType::*;

    #[test]
    fn only_the_vendors_own_names_are_allowed() {
        for (kind, host) in [
            (Salesforce, "acme.my.salesforce.com"),
            (Salesforce, "ACME.lightning.force.com."),
            (Salesforce, "login.salesforce.com"),
            (Hubspot, "api.hubapi.com"),
            (Snowflake, "xy12345.us-east-1.snowflakecomputing.com"),
            (Databricks, "adb-1.2.azuredatabricks.net"),
            (Databricks, "dbc-1.cloud.databricks.com"),
            (AzureBlob, "acct.blob.core.windows.net"),
            (Gcs, "oauth2.googleapis.com"),
        ] {
            assert!(is_allowed(kind, host), "{kind:?} {host}");
        }
        for (kind, host) in [
            (Salesforce, "evil.com"),
            (Salesforce, "my.salesforce.com"),
            (Salesforce, "acme.my.salesforce.com.evil.com"),
            (Salesforce, "evilmy.salesforce.com"),
            (Salesforce, "xforce.com"),
            (Hubspot, "api.hubapi.com.evil.com"),
            (Hubspot, "acme.my.salesforce.com"),
            (Databricks, "azuredatabricks.net"),
            (Databricks, "127.0.0.1"),
            (AzureBlob, "acct.blob.core.windows.net.evil.com"),
            (Gcs, "bigquery.googleapis.com"),
            (Postgresql, "db.example.com"),
        ] {
            assert!(!is_allowed(kind, host), "{kind:?} {host}");
        }
        assert!(refusal(Hubspot, "evil.com").contains("api.hubapi.com"));
    }
}
