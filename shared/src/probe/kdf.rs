//! Private keys are opened off the async threads, a few at a time. Create and update refuse a key
//! whose work factor is over the caps (`keys`), and a key stored before that rule is checked
//! again here before it is derived; even a key within the caps costs up to a second of CPU, which
//! must not stall the other probes of a sweep shard.

use crate::keys::{check_openssh, check_pkcs8};
use crate::probe::report::{Failure, ProbeCode};
use crate::probe::saas::signing_key::SigningKey;
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

/// Key derivations running at once in one process.
pub const AT_ONCE: usize = 2;

/// Runs `work` on a blocking thread once a slot is free. The slot goes with the work, not with
/// the waiting probe: a probe that times out leaves the derivation running, and it keeps its slot
/// until it ends, so no more than `AT_ONCE` ever run.
async fn off_thread<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    static SHARED: std::sync::OnceLock<std::sync::Arc<Semaphore>> = std::sync::OnceLock::new();
    let slots = SHARED.get_or_init(|| std::sync::Arc::new(Semaphore::new(AT_ONCE)));
    let slot = slots.clone().acquire_owned().await.ok()?;
    tokio::task::spawn_blocking(move || {
        let out = work();
        drop(slot);
        out
    })
    .await
    .ok()
}

fn invalid(field: &str, problem: impl std::fmt::Display) -> Failure {
    Failure::new(ProbeCode::InvalidConfig, format!("{field}: {problem}"))
}

/// A PKCS#8 signing key (Snowflake, Google), its work factor checked before it is derived.
pub async fn signing_key(
    field: &'static str,
    pem: &str,
    passphrase: Option<&str>,
) -> Result<SigningKey, Failure> {
    check_pkcs8(pem).map_err(|e| invalid(field, e))?;
    let pem = Zeroizing::new(pem.to_string());
    let passphrase = passphrase.map(|p| Zeroizing::new(p.to_string()));
    off_thread(move || SigningKey::from_pem(&pem, passphrase.as_deref().map(String::as_str)))
        .await
        .unwrap_or_else(|| Err("the key could not be opened".into()))
        .map_err(|e| invalid(field, e))
}

/// An OpenSSH private key (SFTP), its bcrypt rounds checked before it is derived.
pub async fn ssh_key(
    pem: &str,
    passphrase: Option<&str>,
) -> Result<russh::keys::PrivateKey, Failure> {
    const FIELD: &str = "authConfig.privateKey";
    check_openssh(pem).map_err(|e| invalid(FIELD, e))?;
    let pem = Zeroizing::new(pem.to_string());
    let passphrase = passphrase.map(|p| Zeroizing::new(p.to_string()));
    off_thread(move || {
        russh::keys::decode_secret_key(&pem, passphrase.as_deref().map(String::as_str))
    })
    .await
    .and_then(Result::ok)
    .ok_or_else(|| {
        invalid(
            FIELD,
            "is not an OpenSSH private key (or the passphrase is wrong)",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn fixture(name: &str) -> String {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/core/testdata/");
        std::fs::read_to_string(format!("{dir}{name}")).unwrap()
    }

    #[tokio::test]
    async fn keys_over_the_caps_fail_at_once_and_good_ones_open() {
        let started = Instant::now();
        let e = signing_key(
            "authConfig.privateKey",
            &fixture("pkcs8-pbkdf2-2m.pem"),
            Some("x"),
        )
        .await
        .err()
        .unwrap();
        assert_eq!(e.code, ProbeCode::InvalidConfig);
        let e = ssh_key(&fixture("openssh-bcrypt-2g-rounds"), Some("pw"))
            .await
            .unwrap_err();
        assert!(e.message.contains("bcrypt"), "{}", e.message);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "no derivation ran"
        );
        assert!(ssh_key(&fixture("openssh-bcrypt-16"), Some("pw"))
            .await
            .is_ok());
        assert!(ssh_key(&fixture("openssh-bcrypt-16"), Some("wrong"))
            .await
            .is_err());
        assert!(
            signing_key("f", &fixture("pkcs8-pbkdf2-2048.pem"), Some("x"))
                .await
                .is_ok()
        );
    }
}
