//! The server's shared state: storage, blobs, the CA, the secrets key, the
//! plan cache and the watch hub. Plans are resolved once per change of their
//! inputs (a generation counter), not once per check-in.
//!
//! A change moves the generation before it is acknowledged, so the next
//! GetPlan resolves the new plan; finding which nodes' plans changed and
//! waking their Watch streams is left to the background pass
//! ([`crate::recompute`]).
//!
//! Errors are typed ([`StateError`]); the API turns them into statuses
//! (`crate::api::status`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use cm_model::error::LoadError;
use cm_model::manifest::Manifest;
use cm_model::role::{Environment, Role};
use cm_model::secrets::SecretString;
use cm_model::yaml::Reading;
use serde_json::{Map, Value};
use tokio::sync::{Mutex, RwLock};

use crate::blobs::{BlobError, Blobs};
use crate::pki::Pki;
use crate::plan::check::{self as plan_check, PlanChange};
use crate::plan::{
    self, Body, Catalog, GroupKey, NodeView, Plan, PlanError, PlanInputs, SecretGrant,
};
use crate::recompute::Recompute;
use crate::secretbox::SecretKey;
use crate::store::{DocKind, PlanGuard, PlanNode, Store, StoreError};
use crate::watch::{PlanChanged, WatchHub};

mod agent_versions;
mod membership;

/// Settings the operator chooses at start.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Node certificates live this long.
    pub node_cert_days: u32,
    /// Environment new tokens use when none is named.
    pub default_environment: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            node_cert_days: 90,
            default_environment: "production".into(),
        }
    }
}

/// Plan bodies by group, and the generation they were resolved at.
type Bodies = (u64, HashMap<GroupKey, Result<Arc<Body>, PlanError>>);

/// What every node's plan reads besides the node itself.
struct SharedInputs {
    generation: u64,
    roles: BTreeMap<String, Role>,
    environments: BTreeMap<String, Environment>,
    catalog: Arc<Catalog>,
    secrets: Vec<SecretGrant>,
    fleet: Arc<FleetView>,
}

/// What plans read of the other nodes: kept across changes that cannot
/// alter it (see [`State::changed_keeping_view`]), so a pass after a role or
/// a cookbook changed does not read every member's facts again.
struct FleetView {
    /// [`State::fleet_generation`] when it was read.
    generation: u64,
    /// The roles it lists (every role the server knew).
    roles: Vec<String>,
    /// Environment → `cluster.<role>` (see [`crate::cluster_view`]).
    cluster: crate::cluster_view::View,
    /// The view of an environment without members: every role, empty.
    no_members: crate::cluster_view::EnvView,
    /// Node → role → its place (`member.<role>`).
    places: HashMap<String, Map<String, Value>>,
}

pub struct State {
    pub store: Store,
    pub blobs: Blobs,
    pub pki: Pki,
    pub secrets_key: SecretKey,
    pub hub: WatchHub,
    /// The queue of the background plan recomputation.
    pub recompute: Recompute,
    pub settings: Settings,
    /// This process's name in change notifications to other replicas.
    pub replica_id: String,
    generation: AtomicU64,
    /// Moved with `generation` by every change but those that keep the
    /// cluster view ([`State::changed_keeping_view`]).
    fleet_generation: AtomicU64,
    /// Caches tagged with the generation they were read at: one read before
    /// a change (here or on another replica) is never served after it.
    catalog: RwLock<Option<(u64, Arc<Catalog>)>>,
    /// Cookbook attributes by (name, version): versions are immutable.
    attributes: RwLock<HashMap<(String, String), Map<String, Value>>>,
    plans: RwLock<HashMap<String, (u64, Arc<Plan>)>>,
    /// What the nodes of each group share, for the generation of the
    /// shared inputs it was resolved from: a fleet of one role resolves
    /// once per change and holds one copy (see [`plan::Body`]).
    bodies: RwLock<Bodies>,
    shared: RwLock<Option<Arc<SharedInputs>>>,
    /// Held while the shared inputs load: after a change, the check-ins
    /// that find them stale wait for one load instead of each reading the
    /// fleet (64 at once held SQLite's one connection for seconds).
    shared_load: Mutex<()>,
    revoked: RwLock<Option<(u64, Arc<HashSet<String>>)>>,
    /// Check-ins since the last flush: node → unix seconds.
    pub last_seen: Mutex<HashMap<String, i64>>,
    /// The cm-agent version each node last reported to this replica (see
    /// `agent_versions`).
    agent_versions: Mutex<HashMap<String, String>>,
    /// Resolutions made by plan checks, ever (see [`State::plan_guard`]).
    check_resolutions: AtomicU64,
    /// Cluster views built from the store, ever.
    view_builds: AtomicU64,
    /// Where admins open the dashboard (login links start with it); unset
    /// when this server serves none.
    pub dashboard_url: std::sync::OnceLock<String>,
}

/// What the shared state could not do. `crate::api::status` says which
/// status each is.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The database failed or refused.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The node has no valid plan.
    #[error("no valid plan: {0}")]
    NoPlan(PlanError),
    /// A cookbook's blob cannot be read back.
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// A stored cookbook version's row does not parse (version, depends).
    #[error("{0}")]
    CookbookRow(String),
    /// A stored cookbook version's `attributes.yaml` does not parse.
    #[error("{name}@{version}: {source}")]
    CookbookAttributes {
        name: String,
        version: String,
        source: LoadError,
    },
    /// A stored role or environment no longer parses.
    #[error(transparent)]
    Document(LoadError),
    #[error("secret {0} does not decrypt with this server's key")]
    SecretKey(String),
    #[error("secret {0} is not UTF-8")]
    SecretNotUtf8(String),
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

impl State {
    pub fn new(
        store: Store,
        blobs: Blobs,
        pki: Pki,
        secrets_key: SecretKey,
        settings: Settings,
    ) -> State {
        State {
            store,
            blobs,
            pki,
            secrets_key,
            hub: WatchHub::new(),
            recompute: Recompute::new(),
            settings,
            replica_id: crate::replication::new_replica_id(),
            generation: AtomicU64::new(1),
            fleet_generation: AtomicU64::new(1),
            catalog: RwLock::new(None),
            attributes: RwLock::new(HashMap::new()),
            plans: RwLock::new(HashMap::new()),
            bodies: RwLock::new((0, HashMap::new())),
            shared: RwLock::new(None),
            shared_load: Mutex::new(()),
            revoked: RwLock::new(None),
            last_seen: Mutex::new(HashMap::new()),
            agent_versions: Mutex::new(HashMap::new()),
            check_resolutions: AtomicU64::new(0),
            view_builds: AtomicU64::new(0),
            dashboard_url: std::sync::OnceLock::new(),
        }
    }

    pub async fn is_revoked(&self, serial: &str) -> Result<bool, StoreError> {
        let generation = self.generation.load(Ordering::SeqCst);
        if let Some((g, set)) = self.revoked.read().await.as_ref()
            && *g == generation
        {
            return Ok(set.contains(serial));
        }
        let set: HashSet<String> = self
            .store
            .revoked_serials()
            .await?
            .into_iter()
            .map(|r| r.serial)
            .collect();
        let hit = set.contains(serial);
        keep_newest(&mut *self.revoked.write().await, generation, Arc::new(set));
        Ok(hit)
    }

    /// Re-read revoked serials on the next call (a certificate was revoked).
    pub async fn forget_revocations(&self) {
        *self.revoked.write().await = None;
    }

    /// Every pushed cookbook version with its attribute defaults.
    pub async fn catalog(&self) -> Result<Arc<Catalog>, StateError> {
        let generation = self.generation.load(Ordering::SeqCst);
        if let Some((g, c)) = self.catalog.read().await.as_ref()
            && *g == generation
        {
            return Ok(c.clone());
        }
        let rows = self.store.cookbook_versions(None).await?;
        let mut catalog = Catalog::default();
        for row in rows {
            let attributes = self
                .cookbook_attributes(&row.name, &row.version, &row.manifest)
                .await?;
            let entry =
                plan_check::catalog_entry(&row, attributes).map_err(StateError::CookbookRow)?;
            catalog
                .cookbooks
                .entry(row.name.clone())
                .or_default()
                .push(entry);
        }
        let catalog = Arc::new(catalog);
        keep_newest(
            &mut *self.catalog.write().await,
            generation,
            catalog.clone(),
        );
        Ok(catalog)
    }

    async fn cookbook_attributes(
        &self,
        name: &str,
        version: &str,
        m: &Manifest,
    ) -> Result<Map<String, Value>, StateError> {
        let key = (name.to_string(), version.to_string());
        if let Some(a) = self.attributes.read().await.get(&key) {
            return Ok(a.clone());
        }
        let attrs = match m.get("attributes.yaml") {
            None => Map::new(),
            Some(e) => {
                let bytes = self.blobs.get(&e.sha256).await?;
                let text = String::from_utf8_lossy(&bytes);
                if text.trim().is_empty() {
                    Map::new()
                } else {
                    // As pushed: see State::roles.
                    cm_model::yaml::parse_with(
                        std::path::Path::new("attributes.yaml"),
                        &text,
                        Reading::AsBefore,
                    )
                    .map_err(|source| StateError::CookbookAttributes {
                        name: name.to_string(),
                        version: version.to_string(),
                        source,
                    })?
                }
            }
        };
        self.attributes.write().await.insert(key, attrs.clone());
        Ok(attrs)
    }

    pub(crate) async fn environments(&self) -> Result<BTreeMap<String, Environment>, StateError> {
        let docs = self.store.documents(DocKind::Environment).await?;
        docs.iter()
            .map(|d| {
                Environment::parse_with(
                    std::path::Path::new(&format!("environments/{}", d.name)),
                    &d.yaml,
                    Reading::AsBefore,
                )
                .map(|e| (e.name.clone(), e))
                .map_err(StateError::Document)
            })
            .collect()
    }

    /// The inputs every node's plan shares, loaded once per generation, so
    /// recomputing a fleet's plans after a change costs no query per node.
    ///
    /// A caller behind the times (a background pass that started before a
    /// change) is given newer inputs rather than reloading older-tagged ones
    /// over them: its plans are tagged with its own generation, which no
    /// GetPlan serves from cache any more.
    async fn shared(&self, generation: u64) -> Result<Arc<SharedInputs>, StateError> {
        if let Some(s) = self.shared.read().await.as_ref()
            && s.generation >= generation
        {
            return Ok(s.clone());
        }
        let _loading = self.shared_load.lock().await;
        // Loaded while this one waited?
        let before = match self.shared.read().await.as_ref() {
            Some(s) if s.generation >= generation => return Ok(s.clone()),
            before => before.map(|s| s.fleet.clone()),
        };
        let roles = self.roles().await?;
        let fleet = match before {
            Some(fleet)
                if fleet.generation == self.fleet_generation.load(Ordering::SeqCst)
                    && fleet.roles.iter().eq(roles.keys()) =>
            {
                fleet
            }
            _ => Arc::new(self.fleet_view(&roles).await?),
        };
        let shared = Arc::new(SharedInputs {
            generation,
            environments: self.environments().await?,
            catalog: self.catalog().await?,
            secrets: self.secret_grants().await?,
            roles,
            fleet,
        });
        let mut slot = self.shared.write().await;
        if slot.as_ref().is_none_or(|s| s.generation <= generation) {
            *slot = Some(shared.clone());
        }
        Ok(shared)
    }

    /// Read the members and their nodes, and build the cluster view.
    async fn fleet_view(&self, roles: &BTreeMap<String, Role>) -> Result<FleetView, StateError> {
        // Read before the rows: a change committed after them moves it on.
        let generation = self.fleet_generation.load(Ordering::SeqCst);
        self.view_builds.fetch_add(1, Ordering::Relaxed);
        let members = self.store.members(None, None).await?;
        let nodes = self.store.nodes(None, None).await?;
        let by_name = nodes.iter().map(|n| (n.name.as_str(), n)).collect();
        Ok(FleetView {
            generation,
            roles: roles.keys().cloned().collect(),
            cluster: crate::cluster_view::build(roles.keys(), &members, &by_name),
            no_members: crate::cluster_view::empty(roles.keys()),
            places: crate::cluster_view::own_places(&members, &by_name),
        })
    }

    /// Stored documents (and pushed cookbooks) are read as they were
    /// accepted: what was stored before cm refused YAML values read two ways
    /// keeps its reading then, and what was checked strictly reads the same
    /// either way.
    pub(crate) async fn roles(&self) -> Result<BTreeMap<String, Role>, StateError> {
        let docs = self.store.documents(DocKind::Role).await?;
        docs.iter()
            .map(|d| {
                let file = format!("roles/{}", d.name);
                Role::parse_with(std::path::Path::new(&file), &d.yaml, Reading::AsBefore)
                    .map(|r| (r.name.clone(), r))
                    .map_err(StateError::Document)
            })
            .collect()
    }

    async fn secret_grants(&self) -> Result<Vec<SecretGrant>, StateError> {
        let rows = self.store.secrets().await?;
        rows.into_iter()
            .map(|r| {
                let plain = self
                    .secrets_key
                    .open(&r.name, &r.ciphertext)
                    .map_err(|_| StateError::SecretKey(r.name.clone()))?;
                let value = String::from_utf8(plain)
                    .map_err(|_| StateError::SecretNotUtf8(r.name.clone()))?;
                Ok(SecretGrant {
                    name: r.name,
                    value: SecretString::new(value),
                    roles: r.roles,
                })
            })
            .collect()
    }

    /// The check a plan-altering change runs inside its transaction (see
    /// `store::plan_guard`): refused, unless `force`, when nodes that have a
    /// plan would have none after `change`.
    pub fn plan_guard(&self, change: PlanChange, force: bool) -> PlanGuard<'_> {
        let resolutions = &self.check_resolutions;
        PlanGuard {
            check: Box::new(move |rows| {
                plan_check::broken_groups(rows, &change, resolutions)
                    .map_err(|e| StoreError::corrupt(e.what, &e.name, e.column, &e.error))
            }),
            force,
        }
    }

    /// How many resolutions plan checks have made since the server started:
    /// one or two per group of nodes sharing an environment and roles, per
    /// change, never one per node.
    pub fn plan_check_resolutions(&self) -> u64 {
        self.check_resolutions.load(Ordering::Relaxed)
    }

    /// How many times the cluster view was built from the store's members
    /// and nodes since the server started: after a change of the fleet or
    /// of which roles exist, not after every change.
    pub fn cluster_view_reads(&self) -> u64 {
        self.view_builds.load(Ordering::Relaxed)
    }

    /// The plan of `node`, from cache when nothing changed since it was made.
    /// A node without a valid plan gets [`StateError::NoPlan`], and the
    /// reason is recorded on the node when it changed.
    pub async fn plan_for(&self, node: &str) -> Result<Arc<Plan>, StateError> {
        let generation = self.generation.load(Ordering::SeqCst);
        if let Some((g, p)) = self.plans.read().await.get(node)
            && *g == generation
        {
            return Ok(p.clone());
        }
        let row = self.store.plan_node(node).await?;
        let resolved = self.resolve_row(&row, generation).await?;
        let reason = resolved.as_ref().err().map(PlanError::reason);
        if row.plan_error != reason.clone().unwrap_or_default() {
            self.record_plan_errors(&[(row.name.clone(), reason.unwrap_or_default())])
                .await;
        }
        resolved.map_err(StateError::NoPlan)
    }

    /// Resolve a node's plan and cache it; the outer error is the server's
    /// (inputs that could not be loaded), the inner the node's plan error.
    async fn resolve_row(
        &self,
        row: &PlanNode,
        generation: u64,
    ) -> Result<Result<Arc<Plan>, PlanError>, StateError> {
        let shared = self.shared(generation).await?;
        let view = node_view(row, &shared);
        let key = GroupKey::of(&view);
        let cached = {
            let bodies = self.bodies.read().await;
            match bodies.0 == shared.generation {
                true => bodies.1.get(&key).cloned(),
                false => None,
            }
        };
        let body = match cached {
            Some(body) => body,
            None => {
                let body = resolve_body(&shared, &view).map(Arc::new);
                let mut bodies = self.bodies.write().await;
                if bodies.0 < shared.generation {
                    *bodies = (shared.generation, HashMap::new());
                }
                if bodies.0 == shared.generation {
                    bodies.1.insert(key, body.clone());
                }
                body
            }
        };
        let plan = match body {
            Ok(body) => Arc::new(Plan::for_node(body, view.member)),
            Err(e) => return Ok(Err(e.for_node(&row.name))),
        };
        let mut plans = self.plans.write().await;
        match plans.get_mut(&row.name) {
            // A GetPlan after a newer change got there first.
            Some((g, _)) if *g > generation => {}
            Some(slot) => *slot = (generation, plan.clone()),
            None => {
                plans.insert(row.name.clone(), (generation, plan.clone()));
            }
        }
        Ok(Ok(plan))
    }

    /// Every plan of `nodes` for a pass, each group's body resolved once,
    /// all cached under one lock before any event goes out: the GetPlans
    /// the events cause find them, and do not queue behind a lock taken
    /// once per node.
    async fn resolve_all(
        &self,
        shared: &SharedInputs,
        nodes: &[PlanNode],
        generation: u64,
    ) -> Vec<Result<Arc<Plan>, PlanError>> {
        let mut bodies: HashMap<GroupKey, Result<Arc<Body>, PlanError>> = HashMap::new();
        let plans: Vec<_> = nodes
            .iter()
            .map(|row| {
                let view = node_view(row, shared);
                let body = bodies
                    .entry(GroupKey::of(&view))
                    .or_insert_with(|| resolve_body(shared, &view).map(Arc::new))
                    .clone();
                match body {
                    Ok(body) => Ok(Arc::new(Plan::for_node(body, view.member))),
                    Err(e) => Err(e.for_node(&row.name)),
                }
            })
            .collect();
        {
            let mut cache = self.plans.write().await;
            for (row, plan) in nodes.iter().zip(&plans) {
                let Ok(plan) = plan else { continue };
                match cache.get_mut(&row.name) {
                    // A GetPlan after a newer change got there first.
                    Some((g, _)) if *g > generation => {}
                    Some(slot) => *slot = (generation, plan.clone()),
                    None => {
                        cache.insert(row.name.clone(), (generation, plan.clone()));
                    }
                }
            }
        }
        let mut cached = self.bodies.write().await;
        if cached.0 <= shared.generation {
            *cached = (shared.generation, bodies);
        }
        plans
    }

    async fn record_plan_errors(&self, errors: &[(String, String)]) {
        if let Err(e) = self.store.set_plan_errors(errors).await {
            tracing::warn!(error = %e, nodes = errors.len(), "cannot record plan errors");
        }
    }

    /// Something that can change plans happened here (the change has
    /// committed): from now on every plan is resolved afresh; tell the other
    /// replicas (on PostgreSQL) and queue a background pass that wakes the
    /// Watch streams of the nodes whose plan changed. Returns without
    /// waiting for the pass.
    pub async fn changed(&self, reason: &str) {
        self.fleet_generation.fetch_add(1, Ordering::SeqCst);
        self.invalidate().await;
        crate::replication::notify(self, reason).await;
        self.recompute.request(reason);
    }

    /// As [`State::changed`], for a change the cluster view does not read:
    /// a role or environment document, a cookbook, a secret, a node's own
    /// attributes. The next pass keeps the view (a role added or removed
    /// still rebuilds it) instead of reading every member's facts again.
    /// Other replicas are told as of any change.
    pub async fn changed_keeping_view(&self, reason: &str) {
        self.invalidate().await;
        crate::replication::notify(self, reason).await;
        self.recompute.request(reason);
    }

    /// Another replica reported a change (or this one may have missed
    /// some): as [`State::changed`], without notifying again.
    pub async fn changed_elsewhere(&self, reason: &str) {
        self.fleet_generation.fetch_add(1, Ordering::SeqCst);
        self.invalidate().await;
        self.recompute.request(reason);
    }

    /// Move to a new generation: cached plans, the catalog and the revoked
    /// serials read before it are never served again.
    async fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        *self.catalog.write().await = None;
        *self.revoked.write().await = None;
    }

    /// One background pass ([`crate::recompute::run`]): resolve every live
    /// node's plan at the current generation, record the hashes that
    /// changed, and tell this replica's Watch streams of every node whose
    /// plan differs from the stored hash or from the hash this replica last
    /// told or saw (after a change made elsewhere, the replica that made it
    /// may already have stored the new hash).
    ///
    /// The generation is read before the node rows, so a plan cached here is
    /// never older than its tag; a change made during the pass moves the
    /// generation on and queues the pass that follows. Returns how many
    /// stored plan hashes changed.
    pub async fn recompute_plans(&self, reason: &str) -> usize {
        let generation = self.generation.load(Ordering::SeqCst);
        let shared = match self.shared(generation).await {
            Ok(shared) => shared,
            Err(e) => {
                tracing::warn!(error = %e, "cannot resolve plans");
                return 0;
            }
        };
        let live = match self.store.plan_nodes().await {
            Ok(n) => n,
            Err(e) => {
                metrics::counter!(crate::metrics::STORE_ERRORS).increment(1);
                tracing::error!(error = %e, "cannot list nodes after a change");
                return 0;
            }
        };
        let plans = self.resolve_all(&shared, &live, generation).await;
        // Hashes are written in batches after the events go out: one
        // transaction per row made a 10,000-node pass take seconds, and an
        // event sent before its hash is stored costs at most a duplicate
        // event from another replica (agents ignore a plan they have).
        let mut changed = Vec::new();
        let mut errors = Vec::new();
        for (n, plan) in live.iter().zip(plans) {
            let told = self.hub.last_told(&n.name);
            let plan = match plan {
                Ok(plan) => plan,
                Err(e) => {
                    let error = e.reason();
                    tracing::warn!(node = %n.name, %error, "node has no valid plan");
                    if n.plan_error != error {
                        errors.push((n.name.clone(), error));
                    }
                    // Tell it once (an empty hash), so that its agent runs,
                    // converges its last good plan and reports the error;
                    // the event of its next valid plan follows from this.
                    if told.as_deref() != Some(NO_PLAN) {
                        self.hub.publish(PlanChanged {
                            node: n.name.clone(),
                            plan_hash: NO_PLAN.to_string(),
                            reason: reason.to_string(),
                        });
                    }
                    continue;
                }
            };
            if !n.plan_error.is_empty() {
                errors.push((n.name.clone(), String::new()));
            }
            if plan.hash != n.plan_hash {
                changed.push((n.name.clone(), plan.hash.clone()));
            }
            if plan.hash != n.plan_hash || told.is_some_and(|h| h != plan.hash) {
                self.hub.publish(PlanChanged {
                    node: n.name.clone(),
                    plan_hash: plan.hash.clone(),
                    reason: reason.to_string(),
                });
            } else {
                self.hub.note(&n.name, &plan.hash);
            }
        }
        if let Err(e) = self.store.set_plan_hashes(&changed).await {
            metrics::counter!(crate::metrics::STORE_ERRORS).increment(1);
            tracing::warn!(error = %e, nodes = changed.len(), "cannot record plan hashes");
        }
        self.record_plan_errors(&errors).await;
        changed.len()
    }
}

/// The node as its plan reads it, with its place in its roles.
fn node_view(row: &PlanNode, shared: &SharedInputs) -> NodeView {
    NodeView {
        name: row.name.clone(),
        environment: row.environment.clone(),
        roles: row.roles.clone(),
        attributes: row.attributes.clone(),
        agent_version: semver::Version::parse(&row.agent_version).ok(),
        member: shared
            .fleet
            .places
            .get(&row.name)
            .cloned()
            .unwrap_or_default(),
    }
}

/// Resolve the body of `node`'s group from the shared inputs.
fn resolve_body(shared: &SharedInputs, node: &NodeView) -> Result<Body, PlanError> {
    // An environment nobody has set is empty: no pins, no attributes.
    let default_env;
    let environment = match shared.environments.get(&node.environment) {
        Some(e) => e,
        None => {
            default_env = Environment::default_named(&node.environment);
            &default_env
        }
    };
    plan::resolve_body(&PlanInputs {
        node,
        environment,
        roles: &shared.roles,
        catalog: &shared.catalog,
        secrets: &shared.secrets,
        cluster: shared
            .fleet
            .cluster
            .get(&node.environment)
            .unwrap_or(&shared.fleet.no_members),
    })
}

/// The plan hash a Watch event carries, and the hub remembers, for a node
/// that has no valid plan.
pub const NO_PLAN: &str = "";

/// Store a cache value read at `generation` unless a newer one is there.
fn keep_newest<T>(slot: &mut Option<(u64, T)>, generation: u64, value: T) {
    if slot.as_ref().is_none_or(|(g, _)| *g <= generation) {
        *slot = Some((generation, value));
    }
}
