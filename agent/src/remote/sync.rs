//! Plan sync: ask for the plan unless its hash is unchanged, download only
//! the cookbook files missing from the content-addressed cache, verify each
//! digest, and only then keep the plan, so a stored plan always has its
//! files. A run assembles its cookbooks from the cache, with no network,
//! reading each version's YAML as it was accepted at push: strictly, or as
//! before for a version pushed before cm refused values read two ways (no
//! `min_agent` recorded), which the run report then names.

use std::path::{Path, PathBuf};

use cm_model::LoadError;
use cm_model::cookbook::{Cookbook, MAX_FILE_BYTES, check_manifest};
use cm_model::cookbooks::CookbookSet;
use cm_model::manifest::sha256_hex;
use cm_model::yaml::Reading;
use cm_proto::convert::manifest_from_wire;
use cm_proto::v1::agent_client::AgentClient;
use cm_proto::v1::{CookbookVersion, FetchBlobRequest, GetPlanRequest, Plan};
use prost::Message;
use tonic::transport::Channel;

use super::RemoteError;

/// The state dir's plan and blob cache.
pub struct Cache {
    dir: PathBuf,
}

/// What a sync did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Fetched {
    /// The server sent a plan (its hash differed from the cached one).
    pub new_plan: bool,
    pub blobs: usize,
    pub bytes: u64,
}

impl Cache {
    pub fn new(state_dir: &Path) -> Cache {
        Cache {
            dir: state_dir.to_path_buf(),
        }
    }

    fn blob_path(&self, sha256: &str) -> PathBuf {
        self.dir.join("blobs").join(sha256)
    }

    /// A cached blob whose content still matches its name.
    pub fn blob(&self, sha256: &str) -> Option<Vec<u8>> {
        let bytes = std::fs::read(self.blob_path(sha256)).ok()?;
        (sha256_hex(&bytes) == sha256).then_some(bytes)
    }

    fn has_blob(&self, sha256: &str, size: u64) -> bool {
        self.blob(sha256).is_some_and(|b| b.len() as u64 == size)
    }

    fn put_blob(&self, sha256: &str, bytes: &[u8]) -> std::io::Result<()> {
        cm_model::atomic_file::write(&self.blob_path(sha256), bytes, 0o600)
    }

    pub fn plan(&self) -> Option<Plan> {
        let bytes = std::fs::read(self.dir.join("plan.pb")).ok()?;
        Plan::decode(bytes.as_slice()).ok()
    }

    /// The cached plan, if this agent's version cached it: an older agent
    /// dropped the fields it did not know (a version's `min_agent`), so its
    /// plan is asked for again rather than reused.
    fn plan_of_this_agent(&self) -> Option<Plan> {
        let by = std::fs::read_to_string(self.dir.join("plan.agent")).ok()?;
        (by.trim() == cm_proto::VERSION).then(|| self.plan())?
    }

    fn save_plan(&self, plan: &Plan) -> std::io::Result<()> {
        let plan_file = self.dir.join("plan.pb");
        cm_model::atomic_file::write(&plan_file, &plan.encode_to_vec(), 0o600)?;
        cm_model::atomic_file::write(
            &self.dir.join("plan.agent"),
            cm_proto::VERSION.as_bytes(),
            0o600,
        )
    }

    /// When the server last confirmed the cached plan (unix seconds).
    pub fn checked_at(&self) -> Option<i64> {
        read_number(&self.dir.join("plan.checked"))
    }

    fn set_checked(&self, at: i64) -> std::io::Result<()> {
        cm_model::atomic_file::write(
            &self.dir.join("plan.checked"),
            at.to_string().as_bytes(),
            0o600,
        )
    }

    /// The hash of the plan last converged successfully.
    pub fn converged_hash(&self) -> Option<String> {
        std::fs::read_to_string(self.dir.join("converged"))
            .ok()
            .map(|s| s.trim().to_string())
    }

    pub fn set_converged(&self, hash: &str) -> std::io::Result<()> {
        cm_model::atomic_file::write(&self.dir.join("converged"), hash.as_bytes(), 0o600)
    }
}

fn read_number(path: &Path) -> Option<i64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Bring the cache up to the server's plan for this node.
pub async fn sync(channel: Channel, cache: &Cache) -> Result<(Plan, Fetched), RemoteError> {
    let mut client = AgentClient::new(channel);
    let cached = cache.plan_of_this_agent();
    let since = cached.as_ref().map(|p| p.hash.clone()).unwrap_or_default();
    let mut request = tonic::Request::new(GetPlanRequest {
        since,
        agent_version: cm_proto::VERSION.to_string(),
    });
    request.set_timeout(std::time::Duration::from_secs(60));
    let response = client.get_plan(request).await?.into_inner();
    let mut fetched = Fetched::default();
    let plan = match (response.unchanged, cached, response.plan) {
        (true, Some(cached), _) => cached,
        (_, _, Some(plan)) => {
            fetched.new_plan = true;
            plan
        }
        _ => return Err(RemoteError::Other("the server sent no plan".into())),
    };
    // The same manifest rules a push meets, before a byte is fetched.
    for c in &plan.cookbooks {
        check_manifest(&origin(c), &manifest_from_wire(&c.manifest))
            .map_err(|e| RemoteError::Refused(e.to_string()))?;
    }
    // Even an unchanged plan is checked: a blob deleted from the cache comes back.
    for entry in plan.cookbooks.iter().flat_map(|c| &c.manifest) {
        if cache.has_blob(&entry.sha256, entry.size) {
            continue;
        }
        if entry.size > MAX_FILE_BYTES {
            return Err(RemoteError::Refused(format!(
                "{} is {} bytes, over the {MAX_FILE_BYTES}-byte limit",
                entry.path, entry.size
            )));
        }
        let bytes = fetch_blob(&mut client, &entry.sha256, entry.size).await?;
        cache
            .put_blob(&entry.sha256, &bytes)
            .map_err(|e| RemoteError::Other(format!("cannot cache {}: {e}", entry.path)))?;
        fetched.blobs += 1;
        fetched.bytes += bytes.len() as u64;
    }
    if fetched.new_plan {
        cache
            .save_plan(&plan)
            .map_err(|e| RemoteError::Other(format!("cannot keep the plan: {e}")))?;
    }
    cache
        .set_checked(super::now())
        .map_err(|e| RemoteError::Other(format!("cannot keep the plan: {e}")))?;
    Ok((plan, fetched))
}

async fn fetch_blob(
    client: &mut AgentClient<Channel>,
    sha256: &str,
    size: u64,
) -> Result<Vec<u8>, RemoteError> {
    let mut request = tonic::Request::new(FetchBlobRequest {
        sha256: sha256.to_string(),
    });
    request.set_timeout(std::time::Duration::from_secs(300));
    let mut stream = client.fetch_blob(request).await?.into_inner();
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or_default());
    while let Some(chunk) = stream.message().await? {
        if (bytes.len() + chunk.data.len()) as u64 > size {
            return Err(RemoteError::Other(format!(
                "blob {sha256}: the server sent more than the {size} bytes the manifest says"
            )));
        }
        bytes.extend_from_slice(&chunk.data);
    }
    let got = sha256_hex(&bytes);
    if got != sha256 || bytes.len() as u64 != size {
        return Err(RemoteError::Other(format!(
            "blob {sha256}: the server sent {} bytes hashing to {got}; refused",
            bytes.len()
        )));
    }
    Ok(bytes)
}

/// `name@version`, how a cookbook of a plan is named in messages.
fn origin(c: &CookbookVersion) -> PathBuf {
    PathBuf::from(format!("{}@{}", c.name, c.version))
}

/// A plan's cookbooks, assembled.
#[derive(Debug)]
pub struct Assembled {
    pub set: CookbookSet,
    /// For the run report: each version read as before (see [`reading`]).
    pub notices: Vec<String>,
}

/// How to read a version of the plan: strictly, as it was checked at push,
/// or, with no `min_agent` recorded (pushed before servers recorded it and
/// before cm refused YAML values read two ways), as it was read then. A
/// version that needs a newer agent than this one is refused.
fn reading(c: &CookbookVersion) -> Result<Reading, String> {
    if c.min_agent.is_empty() {
        return Ok(Reading::AsBefore);
    }
    let needs = semver::Version::parse(&c.min_agent).map_err(|e| {
        format!(
            "cookbook {}: the agent it needs, {:?}, is not a version: {e}",
            origin(c).display(),
            c.min_agent
        )
    })?;
    let this = semver::Version::parse(cm_proto::VERSION).expect("the crate version is semver");
    if needs > this {
        return Err(format!(
            "cookbook {} needs cm-agent >= {needs}; this is cm-agent {this}: upgrade the agent",
            origin(c).display()
        ));
    }
    Ok(Reading::Strict)
}

/// The plan's cookbooks, built from the cache with the same checks as a push.
pub fn assemble(plan: &Plan, cache: &Cache) -> Result<Assembled, String> {
    let mut list = Vec::with_capacity(plan.cookbooks.len());
    let mut notices = Vec::new();
    for c in &plan.cookbooks {
        let origin = origin(c);
        let reading = reading(c)?;
        if reading == Reading::AsBefore {
            notices.push(format!(
                "cookbook {} was pushed before cm refused YAML values read two ways (yes/no/on/off, 0644, 0x1F, 1_000): read as before; push a new version to have it checked",
                origin.display()
            ));
        }
        let cookbook = Cookbook::from_manifest_with(
            &origin,
            &manifest_from_wire(&c.manifest),
            reading,
            |entry| {
                cache.blob(&entry.sha256).ok_or_else(|| {
                    LoadError::in_file(
                        &origin,
                        format!(
                            "{:?}: not in the local cache (or damaged); the next sync fetches it",
                            entry.path
                        ),
                    )
                })
            },
        )
        .map_err(|e| e.to_string())?;
        list.push(cookbook);
    }
    let set = CookbookSet::new(list).map_err(|e| e.to_string())?;
    Ok(Assembled { set, notices })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn damaged_blob_is_not_served_from_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        super::super::ensure_state_dir(dir.path()).unwrap();
        let cache = Cache::new(dir.path());
        let sha = sha256_hex(b"hello");
        cache.put_blob(&sha, b"hello").unwrap();
        assert_eq!(cache.blob(&sha).as_deref(), Some(&b"hello"[..]));
        std::fs::write(cache.blob_path(&sha), b"jello").unwrap();
        assert!(cache.blob(&sha).is_none());
    }

    #[test]
    fn a_plan_whose_manifest_a_push_would_refuse_is_not_assembled() {
        let dir = tempfile::tempdir().unwrap();
        super::super::ensure_state_dir(dir.path()).unwrap();
        let cache = Cache::new(dir.path());
        let meta = b"name: c\nversion: 1.0.0\n";
        let entry = |path: &str, bytes: &[u8]| cached_entry(&cache, path, bytes);
        let plan = |extra: Vec<cm_proto::v1::ManifestEntry>| Plan {
            cookbooks: vec![CookbookVersion {
                name: "c".into(),
                version: "1.0.0".into(),
                manifest: [vec![entry("metadata.yaml", meta)], extra].concat(),
                ..Default::default()
            }],
            ..Plan::default()
        };
        assert!(assemble(&plan(vec![entry("files/a", b"x")]), &cache).is_ok());
        // Two entries for one file: the server would have refused the push.
        let twice = plan(vec![entry("files/a", b"x"), entry("./files/a", b"y")]);
        let err = assemble(&twice, &cache).unwrap_err();
        let pushed = check_manifest(
            Path::new("c@1.0.0"),
            &manifest_from_wire(&twice.cookbooks[0].manifest),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(err, pushed);
        assert!(err.contains("names the same file"), "{err}");
    }

    /// A manifest entry for `bytes`, which are put in the cache.
    fn cached_entry(cache: &Cache, path: &str, bytes: &[u8]) -> cm_proto::v1::ManifestEntry {
        cache.put_blob(&sha256_hex(bytes), bytes).unwrap();
        cm_proto::v1::ManifestEntry {
            path: path.into(),
            sha256: sha256_hex(bytes),
            size: bytes.len() as u64,
            mode: 0o644,
        }
    }

    /// A plan of one cookbook `c` whose attributes.yaml is `attributes`,
    /// recorded as needing `min_agent`.
    fn plan_with_attributes(cache: &Cache, attributes: &str, min_agent: &str) -> Plan {
        let entry = |path: &str, bytes: &[u8]| cached_entry(cache, path, bytes);
        Plan {
            cookbooks: vec![CookbookVersion {
                name: "c".into(),
                version: "1.0.0".into(),
                manifest: vec![
                    entry("metadata.yaml", b"name: c\nversion: 1.0.0\n"),
                    entry("attributes.yaml", attributes.as_bytes()),
                ],
                min_agent: min_agent.into(),
                ..Default::default()
            }],
            ..Plan::default()
        }
    }

    #[test]
    fn a_version_pushed_before_is_read_as_before_and_named_and_a_new_one_strictly() {
        let dir = tempfile::tempdir().unwrap();
        super::super::ensure_state_dir(dir.path()).unwrap();
        let cache = Cache::new(dir.path());
        let ambiguous = "c:\n  enabled: yes\n  mode: 0644\n";
        let before = assemble(&plan_with_attributes(&cache, ambiguous, ""), &cache).unwrap();
        let attrs = &before.set.get("c").unwrap().attributes["c"];
        assert_eq!(
            (&attrs["enabled"], &attrs["mode"]),
            (&serde_json::json!(true), &serde_json::json!(644.0))
        );
        assert_eq!(before.notices.len(), 1);
        assert!(
            before.notices[0].starts_with("cookbook c@1.0.0 was pushed before cm refused"),
            "{:?}",
            before.notices
        );
        // Recorded at push: checked strictly then, so strictly now.
        let err = assemble(&plan_with_attributes(&cache, ambiguous, "0.1.0"), &cache).unwrap_err();
        assert!(
            err.starts_with("c@1.0.0/attributes.yaml:2:12: yes is read"),
            "{err}"
        );
        let plain = "c:\n  enabled: true\n";
        let strict = assemble(&plan_with_attributes(&cache, plain, "0.1.0"), &cache).unwrap();
        assert!(strict.notices.is_empty());
        let err = assemble(&plan_with_attributes(&cache, plain, "99.0.0"), &cache).unwrap_err();
        assert_eq!(
            err,
            format!(
                "cookbook c@1.0.0 needs cm-agent >= 99.0.0; this is cm-agent {}: upgrade the agent",
                cm_proto::VERSION
            )
        );
    }

    #[test]
    fn a_plan_cached_by_another_agent_version_is_asked_for_again() {
        let dir = tempfile::tempdir().unwrap();
        super::super::ensure_state_dir(dir.path()).unwrap();
        let cache = Cache::new(dir.path());
        let plan = Plan {
            hash: "h1".into(),
            ..Plan::default()
        };
        cache.save_plan(&plan).unwrap();
        assert_eq!(cache.plan_of_this_agent().unwrap().hash, "h1");
        std::fs::write(dir.path().join("plan.agent"), "0.1.0").unwrap();
        assert!(cache.plan_of_this_agent().is_none());
        assert_eq!(cache.plan().unwrap().hash, "h1", "still there offline");
    }

    #[test]
    fn plan_and_marks_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        super::super::ensure_state_dir(dir.path()).unwrap();
        let cache = Cache::new(dir.path());
        assert!(cache.plan().is_none() && cache.checked_at().is_none());
        let plan = Plan {
            hash: "h1".into(),
            ..Plan::default()
        };
        cache.save_plan(&plan).unwrap();
        cache.set_checked(42).unwrap();
        cache.set_converged("h1").unwrap();
        assert_eq!(cache.plan().unwrap().hash, "h1");
        assert_eq!(cache.checked_at(), Some(42));
        assert_eq!(cache.converged_hash().as_deref(), Some("h1"));
    }
}
