//! `cmctl cluster show`: the cluster view as the server keeps it.

use anyhow::Result;
use cm_proto::v1::nodes_client::NodesClient;
use cm_proto::v1::{ClusterRequest, Member};
use tonic::transport::Channel;

use crate::output::{self, Format};

pub fn member_json(m: &Member) -> serde_json::Value {
    serde_json::json!({
        "environment": m.environment, "role": m.role, "ordinal": m.ordinal, "node": m.node,
        "state": m.state, "address": (!m.address.is_empty()).then_some(&m.address),
        "last_seen": m.last_seen, "joined_at": m.joined_at,
        "replaces": (!m.replaces.is_empty()).then_some(&m.replaces),
    })
}

pub async fn show(
    channel: Channel,
    env: Option<String>,
    role: Option<String>,
    format: Format,
) -> Result<()> {
    let members = NodesClient::new(channel)
        .cluster(ClusterRequest {
            environment: env.unwrap_or_default(),
            role: role.unwrap_or_default(),
        })
        .await?
        .into_inner()
        .members;
    let rows = members
        .iter()
        .map(|m| {
            vec![
                m.environment.clone(),
                m.role.clone(),
                m.ordinal.to_string(),
                m.node.clone(),
                m.state.clone(),
                if m.address.is_empty() {
                    "-".into()
                } else {
                    m.address.clone()
                },
                output::ago(m.last_seen),
            ]
        })
        .collect();
    let json: Vec<_> = members.iter().map(member_json).collect();
    output::print(
        format,
        &[
            "ENVIRONMENT",
            "ROLE",
            "ORDINAL",
            "NODE",
            "STATE",
            "ADDRESS",
            "LAST SEEN",
        ],
        rows,
        &json,
    );
    Ok(())
}
