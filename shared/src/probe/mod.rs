//! Connection probes and the SSRF guard they all go through.

pub mod ssrf;
