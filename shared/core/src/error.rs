//! API errors: one type, one mapping to HTTP (in `http`), never carrying SDK text or secrets.

use serde::Serialize;

/// One problem with one input field, e.g. `config.port` / `must be an integer from 1 to 65535`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldProblem {
    pub field: String,
    pub problem: String,
}

impl FieldProblem {
    pub fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

/// An error a client sees: status, stable code, human message, optional field details.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    pub details: Vec<FieldProblem>,
    /// Seconds for a `Retry-After` header (503s).
    pub retry_after: Option<u32>,
}

impl ApiError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: Vec::new(),
            retry_after: None,
        }
    }

    pub fn with_details(mut self, details: Vec<FieldProblem>) -> Self {
        self.details = details;
        self
    }

    pub fn validation(details: Vec<FieldProblem>) -> Self {
        let fields: Vec<&str> = details.iter().map(|d| d.field.as_str()).collect();
        Self::new(
            400,
            "validation_failed",
            format!("invalid fields: {}", fields.join(", ")),
        )
        .with_details(details)
    }

    pub fn invalid_id(field: &str) -> Self {
        Self::new(
            400,
            "invalid_id",
            format!("{field} must be a non-empty string of at most 128 characters"),
        )
        .with_details(vec![FieldProblem::new(
            field,
            "must be a non-empty string of at most 128 characters",
        )])
    }

    pub fn not_found() -> Self {
        Self::new(404, "not_found", "connector not found")
    }

    pub fn name_taken() -> Self {
        Self::new(
            409,
            "name_taken",
            "a connector with this name already exists in this tenant",
        )
        .with_details(vec![FieldProblem::new(
            "name",
            "already in use (names are compared ignoring case)",
        )])
    }

    pub fn conflict() -> Self {
        Self::new(
            409,
            "conflict",
            "the connector was changed concurrently; retry the request",
        )
    }

    /// The connector is not at the version the client expected (`If-Match` or `version`).
    pub fn version_mismatch(current: u64) -> Self {
        Self::new(
            412,
            "version_mismatch",
            format!("the connector is at version {current}, not the one this request expected; read it again"),
        )
        .with_details(vec![FieldProblem::new("version", format!("current version is {current}"))])
    }

    /// The change moves the connector's destination (type, host, url, …) without spelling out
    /// the credentials: stored secrets never follow a connector to another destination.
    pub fn credentials_required(fields: Vec<String>) -> Self {
        let problem = "re-enter this value: the stored one is not sent to a changed destination";
        Self::new(
            400,
            "credentials_required",
            format!(
                "the change moves the connector to another destination (type, host, url, port, TLS mode, …); re-enter the stored credentials: {}",
                fields.join(", ")
            ),
        )
        .with_details(fields.into_iter().map(|f| FieldProblem::new(f, problem)).collect())
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(401, "unauthorized", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "forbidden", message)
    }

    /// A failure on our side; the cause is logged by the caller, never sent.
    pub fn internal() -> Self {
        Self::new(500, "internal", "internal error")
    }

    /// A dependency is throttling or down; the client may retry.
    pub fn unavailable() -> Self {
        let mut e = Self::new(
            503,
            "unavailable",
            "service temporarily unavailable; retry later",
        );
        e.retry_after = Some(1);
        e
    }
}
