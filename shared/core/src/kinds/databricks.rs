//! databricks: a workspace at `host` (Databricks' own hosts only) and the SQL warehouse or
//! cluster its `httpPath` names. The token, or an OAuth client's secret, goes only there.

use super::forms;
use super::{
    no_auth_rules, DestinationField as D, Family, Form, Input, Part, Requirement, Source, Vendor,
};
use url::Url;

pub const FAMILY: Family = Family {
    requirements: |_| &[Requirement::Field("host"), Requirement::Field(HTTP_PATH)],
    destination: |_| &[D(Part::Config, "host", Form::Host)],
    vendor: |_| Vendor {
        name: "Databricks",
        hosts: &[
            "*.cloud.databricks.com",
            "*.azuredatabricks.net",
            "*.gcp.databricks.com",
        ],
    },
    config_field: |kind, field, value| match field {
        // The token goes to this host, so it must be Databricks'.
        "host" => forms::host(kind, value),
        HTTP_PATH => forms::non_empty(value),
        _ => None,
    },
    auth_config: no_auth_rules,
    config_rules: super::no_config_rules,
    tunnel: false,
    input,
};

const HTTP_PATH: &str = "httpPath";

/// What `httpPath` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    Warehouse(String),
    Cluster(String),
}

/// `/sql/1.0/warehouses/{id}` (or `/endpoints/{id}`) or `/sql/protocolv1/o/{org}/{cluster}`.
fn resource(http_path: &str) -> Option<Resource> {
    let parts: Vec<&str> = http_path.trim_matches('/').split('/').collect();
    match parts.as_slice() {
        ["sql", "1.0", "warehouses" | "endpoints", id] if !id.is_empty() => {
            Some(Resource::Warehouse(id.to_string()))
        }
        ["sql", "protocolv1", "o", _, cluster] if !cluster.is_empty() => {
            Some(Resource::Cluster(cluster.to_string()))
        }
        _ => None,
    }
}

/// A Databricks login.
pub struct Databricks<'a> {
    /// `https://{host}/`.
    pub base: Url,
    pub resource: Resource,
    /// A personal access token (`token`, or `accessToken`).
    pub token: Option<&'a str>,
    /// OAuth machine-to-machine: (`clientId`, `clientSecret`).
    pub client: Option<(&'a str, &'a str)>,
}

fn input(s: Source<'_>) -> Result<Input<'_>, String> {
    let base = forms::https_base(s.required("host")?, "config.host")?;
    let resource = resource(s.required(HTTP_PATH)?).ok_or(
        "config.httpPath names neither a SQL warehouse (/sql/1.0/warehouses/{id}) nor a cluster (/sql/protocolv1/o/{org}/{cluster})",
    )?;
    Ok(Input::Databricks(Databricks {
        base,
        resource,
        token: s.token("token").or_else(|| s.token("accessToken")),
        client: s.token("clientId").zip(s.secret("clientSecret")),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_paths_name_a_warehouse_or_a_cluster() {
        assert_eq!(
            resource("/sql/1.0/warehouses/abc123"),
            Some(Resource::Warehouse("abc123".into()))
        );
        assert_eq!(
            resource("sql/protocolv1/o/1234567890/0123-456789-abcdef"),
            Some(Resource::Cluster("0123-456789-abcdef".into()))
        );
        for bad in [
            "/sql/1.0/warehouses/",
            "/api/2.0/x",
            "",
            "/sql/protocolv1/o/1",
        ] {
            assert_eq!(resource(bad), None, "{bad}");
        }
    }
}
