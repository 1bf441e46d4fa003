//! Private keys a tenant stores: their key-derivation work factor is read from the key's structure
//! alone, before anything is decrypted, and refused over a cap. A tenant chooses that factor: a
//! PBKDF2 count of 2^31 or a bcrypt of 2^20 rounds would run for hours in the probe.

use pkcs8::der::{Decode, SecretDocument};
use pkcs8::pkcs5::{pbes2, EncryptionScheme};
use pkcs8::EncryptedPrivateKeyInfoRef;

/// The most PBKDF2 iterations an encrypted PKCS#8 key may ask for.
pub const MAX_PBKDF2_ITERATIONS: u32 = 1_000_000;
/// The most memory an scrypt-encrypted PKCS#8 key may ask for (128 · N · r bytes).
pub const MAX_SCRYPT_BYTES: u64 = 32 << 20;
/// The most work an scrypt key may ask for, N · r · p (2^21: under a second; p multiplies the
/// time, not the memory, so the memory cap alone would let p = 65535 run for an hour).
pub const MAX_SCRYPT_WORK: u64 = 1 << 21;
/// The most bcrypt rounds an encrypted OpenSSH key may ask for.
pub const MAX_BCRYPT_ROUNDS: u32 = 64;

/// Checks a PKCS#8 PEM (Snowflake's `privateKey`, a Google key's `private_key`): an encrypted one
/// must name PBES2 with PBKDF2 or scrypt within the caps. Other PEMs are left to the probe, which
/// explains what it cannot use.
pub fn check_pkcs8(pem: &str) -> Result<(), String> {
    if !pem.contains("ENCRYPTED PRIVATE KEY") {
        return Ok(());
    }
    let (_, doc) = SecretDocument::from_pem(pem.trim())
        .map_err(|_| "the encrypted private key is not a PEM document".to_string())?;
    let info = EncryptedPrivateKeyInfoRef::from_der(doc.as_bytes())
        .map_err(|_| "the encrypted private key does not parse as PKCS#8".to_string())?;
    match info.encryption_algorithm {
        EncryptionScheme::Pbes2(params) => check_pbes2(&params.kdf),
        _ => Err(
            "the private key is encrypted with PBES1, which is not supported: re-encrypt it with PBES2 (openssl pkcs8 -topk8 -v2 aes256)".into(),
        ),
    }
}

fn check_pbes2(kdf: &pbes2::Kdf) -> Result<(), String> {
    match kdf {
        pbes2::Kdf::Pbkdf2(p) if p.iteration_count > MAX_PBKDF2_ITERATIONS => Err(format!(
            "the private key's PBKDF2 iteration count is {}, over the {MAX_PBKDF2_ITERATIONS} allowed",
            p.iteration_count
        )),
        pbes2::Kdf::Pbkdf2(_) => Ok(()),
        pbes2::Kdf::Scrypt(p) => {
            let n = p.cost_parameter;
            let bytes = 128u64
                .saturating_mul(n)
                .saturating_mul(u64::from(p.block_size))
                .saturating_add(128u64.saturating_mul(u64::from(p.block_size)).saturating_mul(u64::from(p.parallelization)));
            let work = n
                .saturating_mul(u64::from(p.block_size))
                .saturating_mul(u64::from(p.parallelization));
            if n < 2 || !n.is_power_of_two() {
                Err("the private key's scrypt cost N must be a power of two of at least 2".into())
            } else if bytes > MAX_SCRYPT_BYTES {
                Err(format!(
                    "the private key's scrypt parameters need {} MiB, over the {} MiB allowed",
                    bytes >> 20,
                    MAX_SCRYPT_BYTES >> 20
                ))
            } else if work > MAX_SCRYPT_WORK {
                Err(format!(
                    "the private key's scrypt work N·r·p is {work}, over the {MAX_SCRYPT_WORK} allowed"
                ))
            } else {
                Ok(())
            }
        }
        _ => Err("the private key's key derivation is not PBKDF2 or scrypt".into()),
    }
}

/// Checks an SSH private key (SFTP's `privateKey`): OpenSSH's format only (PuTTY files take
/// their Argon2 parameters from the file), and an encrypted one with bcrypt within the cap.
pub fn check_openssh(pem: &str) -> Result<(), String> {
    let key = ssh_key::PrivateKey::from_openssh(pem.trim()).map_err(|_| {
        "must be an OpenSSH private key (BEGIN OPENSSH PRIVATE KEY); convert other formats with ssh-keygen -p -f KEY".to_string()
    })?;
    match key.kdf() {
        ssh_key::Kdf::Bcrypt { rounds, .. } if *rounds > MAX_BCRYPT_ROUNDS => Err(format!(
            "the private key's bcrypt rounds are {rounds}, over the {MAX_BCRYPT_ROUNDS} allowed"
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!("{}/testdata/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    #[test]
    fn pkcs8_work_factors_over_the_caps_are_refused_unread() {
        assert_eq!(check_pkcs8(&fixture("pkcs8-pbkdf2-2048.pem")), Ok(()));
        assert_eq!(check_pkcs8(&fixture("pkcs8-scrypt-1024.pem")), Ok(()));
        let e = check_pkcs8(&fixture("pkcs8-pbkdf2-2m.pem")).unwrap_err();
        assert!(e.contains("2000000") && e.contains("1000000"), "{e}");
        let e = check_pkcs8(&fixture("pkcs8-scrypt-256mib.pem")).unwrap_err();
        assert!(e.contains("254 MiB"), "{e}");
        let e = check_pkcs8(&fixture("pkcs8-scrypt-n768.pem")).unwrap_err();
        assert!(e.contains("power of two"), "{e}");
        // 16 MiB of memory, but p = 127 rounds of it: refused for its work.
        let e = check_pkcs8(&fixture("pkcs8-scrypt-p127.pem")).unwrap_err();
        assert!(e.contains("N·r·p"), "{e}");
        assert_eq!(
            check_pkcs8("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"),
            Ok(()),
            "an unencrypted key costs no derivation"
        );
        assert!(check_pkcs8(
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----"
        )
        .is_err());
    }

    #[test]
    fn only_openssh_keys_within_the_bcrypt_cap_pass() {
        assert_eq!(check_openssh(&fixture("openssh-bcrypt-16")), Ok(()));
        let e = check_openssh(&fixture("openssh-bcrypt-100")).unwrap_err();
        assert!(e.contains("100"), "{e}");
        let e = check_openssh(&fixture("openssh-bcrypt-2g-rounds")).unwrap_err();
        assert!(e.contains("2147483647"), "{e}");
        let e = check_openssh(&fixture("putty-argon2.ppk")).unwrap_err();
        assert!(e.contains("OpenSSH"), "{e}");
        assert!(check_openssh(&fixture("pkcs8-pbkdf2-2048.pem")).is_err());
    }
}
