//! Replicas share one CA and one secrets key (docs/architecture.md, "Invariants"). The
//! first server to start on a database records the CA's fingerprint and the
//! secrets key's id in it; a later server with another CA or key refuses to
//! start, instead of issuing certificates that no node or admin trusts or
//! failing to open every stored secret. A server that would generate a new
//! CA or key in its data dir for a database that already has them refuses
//! before generating anything.

use std::path::Path;

use anyhow::{Result, bail};

use crate::store::Store;

const CA_FINGERPRINT: &str = "ca_fingerprint";
const SECRETS_KEY_ID: &str = "secrets_key_id";

const CA_HOW: &str = "start every server on this database with the same CA: \
                      --ca-cert FILE --ca-key FILE, or CM_CA_CERT and CM_CA_KEY";
const KEY_HOW: &str = "start every server on this database with the same secrets key: \
                       --secrets-key FILE, or CM_SECRETS_KEY";

/// What the database says the CA and the secrets key are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recorded {
    pub ca_fingerprint: Option<String>,
    pub secrets_key_id: Option<String>,
}

impl Recorded {
    /// Read what earlier servers recorded (nothing on a new database).
    pub async fn load(store: &Store) -> Result<Recorded> {
        Ok(Recorded {
            ca_fingerprint: store.cluster_setting(CA_FINGERPRINT).await?,
            secrets_key_id: store.cluster_setting(SECRETS_KEY_ID).await?,
        })
    }

    /// Call before the data dir's own CA is loaded or created: refuses when
    /// it would be created for a database that already has a CA.
    pub fn refuse_new_ca(&self, data_dir: &Path) -> Result<()> {
        if let Some(fingerprint) = &self.ca_fingerprint
            && !data_dir.join("ca.pem").exists()
            && !data_dir.join("ca.key").exists()
        {
            bail!(
                "this database belongs to the CA with fingerprint {fingerprint}, and this server \
                 was given no CA (and has none in {}), so it would generate a new one that no \
                 node or admin trusts: {CA_HOW}",
                data_dir.display()
            );
        }
        Ok(())
    }

    /// Call before the data dir's own secrets key is loaded or created:
    /// refuses when it would be created for a database that already has one.
    pub fn refuse_new_secrets_key(&self, key_path: &Path) -> Result<()> {
        if let Some(id) = &self.secrets_key_id
            && !key_path.exists()
        {
            bail!(
                "this database's secrets are sealed with the secrets key {id}, and this server \
                 was given no secrets key (and has none at {}), so it would generate a new one \
                 that opens none of them: {KEY_HOW}",
                key_path.display()
            );
        }
        Ok(())
    }
}

/// Record this server's CA fingerprint and secrets key id when the database
/// has none yet, and refuse to start when it holds others.
pub async fn claim(store: &Store, ca_fingerprint: &str, secrets_key_id: &str) -> Result<()> {
    let recorded = store
        .claim_cluster_setting(CA_FINGERPRINT, ca_fingerprint)
        .await?;
    if recorded != ca_fingerprint {
        bail!(
            "this server's CA (fingerprint {ca_fingerprint}) is not the CA this database belongs \
             to (fingerprint {recorded}): {CA_HOW}"
        );
    }
    let recorded = store
        .claim_cluster_setting(SECRETS_KEY_ID, secrets_key_id)
        .await?;
    if recorded != secrets_key_id {
        bail!(
            "this server's secrets key (id {secrets_key_id}) is not the key this database's \
             secrets are sealed with (id {recorded}): {KEY_HOW}"
        );
    }
    Ok(())
}
