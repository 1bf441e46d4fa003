//! The audit trail: one structured event per mutating request — who (tenant, subject) did what
//! (action) to which connector, and how it ended (HTTP status, result). Never a secret: the event
//! holds identifiers and the status only.

use crate::identity::Identity;

/// Filled in while a handler runs (identity once known, connector id once known), emitted once
/// with the final status.
#[derive(Debug, Default)]
pub struct AuditEvent {
    action: &'static str,
    tenant: Option<String>,
    subject: Option<String>,
    connector: Option<String>,
}

/// How a request ended, for people reading the trail.
pub fn result_of(status: u16) -> &'static str {
    match status {
        200..=399 => "success",
        401 | 403 => "denied",
        400..=499 => "rejected",
        _ => "error",
    }
}

impl AuditEvent {
    pub fn new(action: &'static str) -> Self {
        Self {
            action,
            ..Self::default()
        }
    }

    pub fn identity(&mut self, who: &Identity) {
        self.tenant = Some(who.tenant_id.clone());
        self.subject = Some(who.subject.clone());
    }

    /// Names the action once the request shows which it is (a test that turns out a dry run).
    pub fn action(&mut self, action: &'static str) {
        self.action = action;
    }

    pub fn connector(&mut self, id: &str) {
        self.connector = Some(id.to_string());
    }

    /// Logs the event (level info, `audit: true`), whatever the outcome.
    pub fn emit(self, status: u16) {
        let request_id = crate::telemetry::scope::request_id();
        tracing::info!(
            audit = true,
            requestId = request_id.as_deref().unwrap_or("-"),
            action = self.action,
            tenant = self.tenant.as_deref().unwrap_or("-"),
            subject = self.subject.as_deref().unwrap_or("-"),
            connector = self.connector.as_deref().unwrap_or("-"),
            status,
            result = result_of(status),
            "audit"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_follow_the_status() {
        assert_eq!(result_of(201), "success");
        assert_eq!(result_of(204), "success");
        assert_eq!(result_of(401), "denied");
        assert_eq!(result_of(403), "denied");
        assert_eq!(result_of(409), "rejected");
        assert_eq!(result_of(412), "rejected");
        assert_eq!(result_of(503), "error");
    }
}
