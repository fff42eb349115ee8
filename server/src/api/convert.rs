//! Between storage rows, plans and the wire types.

use cm_proto::convert::manifest_to_wire;
use cm_proto::v1 as pb;

use crate::plan::{Catalog, Plan};
use crate::store::{CookbookVersionRow, RunRow};

pub fn cookbook_row_to_pb(row: &CookbookVersionRow) -> pb::CookbookVersion {
    let manifest = &row.manifest;
    let depends = row.depends.clone();
    pb::CookbookVersion {
        name: row.name.clone(),
        version: row.version.clone(),
        description: row.description.clone(),
        depends: depends.into_iter().collect(),
        manifest: manifest_to_wire(manifest),
        created_at: row.created_at,
        pushed_by: row.pushed_by.clone(),
        min_agent: row.min_agent.clone(),
    }
}

/// The wire form of a plan, with each cookbook's manifest.
pub fn plan(plan: &Plan, catalog: &Catalog) -> pb::Plan {
    let p = &plan.body;
    pb::Plan {
        hash: plan.hash.clone(),
        environment: p.environment.clone(),
        roles: p.roles.clone(),
        run_list: p.run_list.iter().map(ToString::to_string).collect(),
        cookbooks: p
            .cookbooks
            .iter()
            .filter_map(|c| {
                let e = catalog.entry(&c.name, &c.version)?;
                Some(pb::CookbookVersion {
                    name: c.name.clone(),
                    version: c.version.to_string(),
                    description: e.description.clone(),
                    depends: e
                        .depends
                        .iter()
                        .map(|(k, v)| (k.clone(), v.to_string()))
                        .collect(),
                    manifest: manifest_to_wire(&e.manifest),
                    created_at: 0,
                    pushed_by: String::new(),
                    min_agent: e
                        .min_agent
                        .as_ref()
                        .map(ToString::to_string)
                        .unwrap_or_default(),
                })
            })
            .collect(),
        attributes_json: p.attributes_json().to_string(),
        cluster_json: p.cluster_json().to_string(),
        member_json: crate::plan::to_json(&plan.member),
        cluster_nodes_json: p.cluster_nodes.json.clone(),
        secrets: p
            .secrets
            .iter()
            .map(|(k, v)| (k.clone(), v.expose().to_string()))
            .collect(),
        splay_seconds: p.splay_seconds,
        generated_at: crate::state::now(),
        checks_json: match p.checks.is_empty() {
            true => String::new(),
            false => serde_json::to_string(&p.checks).expect("checks serialize"),
        },
    }
}

pub fn run_row(r: &pb::RunSummary) -> RunRow {
    RunRow {
        id: 0,
        node: r.node.clone(),
        at: if r.at > 0 { r.at } else { crate::state::now() },
        status: r.status.clone(),
        resources_total: i64::from(r.resources_total),
        resources_changed: i64::from(r.resources_changed),
        resources_failed: i64::from(r.resources_failed),
        duration_ms: r.duration_ms as i64,
        cause: r.cause.clone(),
        plan_hash: r.plan_hash.clone(),
        plan_age_seconds: r.plan_age_seconds as i64,
        report_json: r.report_json.clone(),
        // The server's to set: the receipt time and identity are never
        // taken from the report.
        received_at: 0,
        identity: String::new(),
        retired_identity: false,
    }
}

pub fn run_to_pb(r: &RunRow) -> pb::RunSummary {
    pb::RunSummary {
        node: r.node.clone(),
        at: r.at,
        status: r.status.clone(),
        resources_total: r.resources_total as u32,
        resources_changed: r.resources_changed as u32,
        resources_failed: r.resources_failed as u32,
        duration_ms: r.duration_ms as u64,
        cause: r.cause.clone(),
        plan_hash: r.plan_hash.clone(),
        plan_age_seconds: r.plan_age_seconds as u64,
        report_json: r.report_json.clone(),
        received_at: r.received_at,
        identity: r.identity.clone(),
        retired_identity: r.retired_identity,
    }
}
