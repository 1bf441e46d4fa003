//! The vendors' own hosts: the only places a warehouse, cloud-storage or SaaS connector's
//! credentials may go. Pure, so create and update refuse another host before anything is stored,
//! and the probe refuses a stored legacy value before anything is sent.

use crate::model::ConnectorType;

/// Hosts that may receive a type's credentials: `*.suffix` (any name under it, not the suffix
/// itself) or an exact name. Empty for types whose destination is the tenant's own.
pub fn allowed_hosts(kind: ConnectorType) -> &'static [&'static str] {
    use ConnectorType::*;
    match kind {
        Snowflake => &["*.snowflakecomputing.com"],
        Databricks => &[
            "*.cloud.databricks.com",
            "*.azuredatabricks.net",
            "*.gcp.databricks.com",
        ],
        Bigquery => &["bigquery.googleapis.com", "oauth2.googleapis.com"],
        Gcs => &["storage.googleapis.com", "oauth2.googleapis.com"],
        AzureBlob => &["*.blob.core.windows.net"],
        Salesforce => &[
            "*.my.salesforce.com",
            "*.force.com",
            "login.salesforce.com",
            "test.salesforce.com",
        ],
        Hubspot => &["api.hubapi.com"],
        _ => &[],
    }
}

/// The vendor's name, for messages.
pub fn vendor_name(kind: ConnectorType) -> &'static str {
    use ConnectorType::*;
    match kind {
        Snowflake => "Snowflake",
        Databricks => "Databricks",
        Bigquery | Gcs => "Google",
        AzureBlob => "Azure Storage",
        Salesforce => "Salesforce",
        Hubspot => "HubSpot",
        _ => "the vendor",
    }
}

/// True when the type's credentials may go to `host` (case and a root dot ignored).
pub fn is_allowed(kind: ConnectorType, host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    allowed_hosts(kind)
        .iter()
        .any(|pattern| match pattern.strip_prefix('*') {
            // ".suffix": a name under it, with a non-empty label before the dot.
            Some(suffix) => host.len() > suffix.len() && host.ends_with(suffix),
            None => host == *pattern,
        })
}

/// Why `host` may not receive the type's credentials (for a 400 or a probe failure).
pub fn refusal(kind: ConnectorType, host: &str) -> String {
    format!(
        "{host} is not a {} host ({}): credentials go only to the vendor",
        vendor_name(kind),
        allowed_hosts(kind).join(", ")
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
