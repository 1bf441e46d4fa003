//! Credential custody: the stored `authConfig` (and any masked value that would restore part of
//! it) backs a probe only while the connector keeps its stored type and destination. An update
//! or dry run that moves the connector elsewhere gets only what its body spells out; update then
//! refuses to drop the secret silently (`credentials_required`), a dry run probes without it.

use crate::destination::{reads_auth_config, Destination};
use crate::envelope::{SecretContext, SecretSealer};
use crate::error::ApiError;
use crate::masking::{may_hold_masks, restore_masked};
use crate::model::{Connector, ConnectorType, PlainSecret};
use crate::validate::Change;
use serde_json::{Map, Value};

/// The authConfig a proposed change may use, and what custody held back.
pub struct Proposed {
    /// What the probe or the write uses: restored from the stored secret only when the
    /// destination stayed.
    pub secret: Option<PlainSecret>,
    /// The destination moved while a secret was stored.
    pub moved: bool,
    /// `authConfig.<field>` names whose stored values were held back (empty unless `moved`).
    pub withheld: Vec<String>,
}

/// Applies custody to a change of `current`: the proposed type and config, and what the body does
/// to authConfig. `open_kept`: open the stored secret when it is kept (the dry run probes with it).
pub async fn propose<E: SecretSealer>(
    sealer: &E,
    current: &Connector,
    kind: ConnectorType,
    config: &Map<String, Value>,
    auth: &Change<PlainSecret>,
    open_kept: bool,
) -> Result<Proposed, ApiError> {
    let Some(sealed) = &current.auth_config else {
        let secret = match auth {
            Change::Set(s) => Some(PlainSecret(s.0.clone())),
            _ => None,
        };
        return Ok(Proposed {
            secret,
            moved: false,
            withheld: Vec::new(),
        });
    };
    // Auth fields compare equal here (both absent); the config side and the type decide.
    let mut moved =
        Destination::of(kind, config, None) != Destination::of(current.kind, &current.config, None);
    let compare_auth = !moved && reads_auth_config(kind) && matches!(auth, Change::Set(_));
    let masks = matches!(auth, Change::Set(s) if s.0.values().any(may_hold_masks));
    let kept = matches!(auth, Change::Keep) && open_kept && !moved;
    let stored = if compare_auth || masks || kept {
        let ctx = SecretContext {
            tenant_id: &current.tenant_id,
            connector_id: &current.id,
        };
        Some(sealer.open(ctx, sealed).await?)
    } else {
        None
    };
    match auth {
        Change::Clear => Ok(Proposed {
            secret: None,
            moved,
            withheld: Vec::new(),
        }),
        Change::Keep if moved => Ok(Proposed {
            secret: None,
            moved,
            withheld: current
                .auth_config_fields
                .iter()
                .map(|f| format!("authConfig.{f}"))
                .collect(),
        }),
        Change::Keep => Ok(Proposed {
            secret: stored,
            moved,
            withheld: Vec::new(),
        }),
        Change::Set(incoming) => {
            let restored = match &stored {
                Some(s) => restore_masked(incoming.0.clone(), &s.0),
                None => incoming.0.clone(),
            };
            if compare_auth {
                moved = Destination::of(kind, config, Some(&restored))
                    != Destination::of(
                        current.kind,
                        &current.config,
                        stored.as_ref().map(|s| &s.0),
                    );
            }
            if !moved {
                return Ok(Proposed {
                    secret: Some(PlainSecret(restored)),
                    moved,
                    withheld: Vec::new(),
                });
            }
            // Moved: every value the stored secret would have filled in is held back.
            let mut spelled = PlainSecret(restored);
            let withheld: Vec<String> = incoming
                .0
                .iter()
                .filter(|(k, v)| spelled.0.get(*k) != Some(v))
                .map(|(k, _)| k.clone())
                .collect();
            for k in &withheld {
                // Dropped as a secret of its own, so the restored value is wiped.
                if let Some(v) = spelled.0.remove(k) {
                    drop(PlainSecret(Map::from_iter([(k.clone(), v)])));
                }
            }
            Ok(Proposed {
                secret: Some(spelled),
                moved,
                withheld: withheld.iter().map(|f| format!("authConfig.{f}")).collect(),
            })
        }
    }
}
