//! The Cookbooks service: two-phase push (missing blobs, upload, commit in one
//! transaction after re-validating the whole cookbook), list, show, delete.
//!
//! A commit is validated with cm-model exactly as cmctl validated it before
//! the upload and as an agent will before it compiles: the manifest rules
//! first (before any blob is read), then every file. A delete is refused
//! while an environment pins the version, and unless forced when it would
//! leave nodes without a plan.

use std::collections::BTreeMap;
use std::sync::Arc;

use cm_model::cookbook::{Cookbook, MAX_FILE_BYTES, check_manifest};
use cm_model::yaml::Reading;
use cm_proto::v1::cookbooks_server::Cookbooks;
use cm_proto::v1::{
    BlobChunk, CommitRequest, CommitResponse, CookbookId, CookbookVersion, Empty,
    ListCookbooksRequest, ListCookbooksResponse, MissingBlobsRequest, MissingBlobsResponse,
    UploadBlobResponse,
};
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use super::auth;
use super::convert;
use super::status::{blob_error, status};
use crate::plan::check::PlanChange;
use crate::state::State;
use crate::store::{Inserted, NewCookbookVersion};

pub struct CookbooksApi {
    pub state: Arc<State>,
}

fn check_digest(d: &str) -> Result<(), Status> {
    if d.len() == 64
        && d.chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
    {
        Ok(())
    } else {
        Err(Status::invalid_argument(format!(
            "{d:?} is not a lowercase hex sha256"
        )))
    }
}

#[tonic::async_trait]
impl Cookbooks for CookbooksApi {
    async fn missing_blobs(
        &self,
        req: Request<MissingBlobsRequest>,
    ) -> Result<Response<MissingBlobsResponse>, Status> {
        auth::operator(&self.state, &req, "pushing a cookbook").await?;
        let digests = req.into_inner().sha256;
        for d in &digests {
            check_digest(d)?;
        }
        let missing = self
            .state
            .blobs
            .missing(&digests)
            .await
            .map_err(|e| blob_error(Status::unavailable(e.to_string())))?;
        Ok(Response::new(MissingBlobsResponse { sha256: missing }))
    }

    async fn upload_blob(
        &self,
        req: Request<Streaming<BlobChunk>>,
    ) -> Result<Response<UploadBlobResponse>, Status> {
        auth::operator(&self.state, &req, "pushing a cookbook").await?;
        let mut stream = req.into_inner();
        let first = stream
            .next()
            .await
            .ok_or_else(|| Status::invalid_argument("empty upload"))??;
        check_digest(&first.sha256)?;
        if first.size > MAX_FILE_BYTES {
            return Err(Status::invalid_argument(format!(
                "blob larger than {} MiB",
                MAX_FILE_BYTES >> 20
            )));
        }
        let mut data = first.data;
        while let Some(chunk) = stream.next().await {
            data.extend_from_slice(&chunk?.data);
            if data.len() as u64 > first.size {
                return Err(Status::invalid_argument(
                    "blob is longer than its declared size",
                ));
            }
        }
        if data.len() as u64 != first.size {
            return Err(Status::invalid_argument(
                "blob is shorter than its declared size (upload cut off?)",
            ));
        }
        self.state
            .blobs
            .put(&first.sha256, data.into())
            .await
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        Ok(Response::new(UploadBlobResponse {
            sha256: first.sha256,
            stored: true,
        }))
    }

    async fn commit(
        &self,
        req: Request<CommitRequest>,
    ) -> Result<Response<CommitResponse>, Status> {
        let who = auth::operator(&self.state, &req, "pushing a cookbook").await?;
        let r = req.into_inner();
        let manifest = cm_proto::convert::manifest_from_wire(&r.manifest);
        let origin = format!("{}@{}", r.name, r.version);
        let origin_path = std::path::Path::new(&origin);
        check_manifest(origin_path, &manifest)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        // Re-read every blob and validate the cookbook exactly as an agent will compile it.
        let mut blobs = BTreeMap::new();
        for e in &manifest.entries {
            check_digest(&e.sha256)?;
            let bytes = self.state.blobs.get(&e.sha256).await.map_err(|err| {
                Status::failed_precondition(format!(
                    "{}: blob {} is not uploaded: {err}",
                    e.path, e.sha256
                ))
            })?;
            if bytes.len() as u64 != e.size {
                return Err(Status::invalid_argument(format!(
                    "{}: size {} in the manifest, {} stored",
                    e.path,
                    e.size,
                    bytes.len()
                )));
            }
            blobs.insert(e.sha256.clone(), bytes);
        }
        let cookbook = Cookbook::from_manifest(origin_path, &manifest, |e| {
            Ok(blobs.get(&e.sha256).map(|b| b.to_vec()).unwrap_or_default())
        })
        .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let blobs_of_version: Vec<_> = blobs.into_iter().collect();
        if cookbook.metadata.name != r.name || cookbook.metadata.version.to_string() != r.version {
            return Err(Status::invalid_argument(format!(
                "metadata.yaml says {}@{}, the push says {origin}",
                cookbook.metadata.name, cookbook.metadata.version
            )));
        }
        let new = NewCookbookVersion {
            name: r.name.clone(),
            version: r.version.clone(),
            description: cookbook.metadata.description.clone(),
            depends: cookbook
                .metadata
                .depends
                .iter()
                .map(|(k, v)| (k.clone(), v.to_string()))
                .collect(),
            manifest: cookbook.manifest.clone(),
            min_agent: cm_model::features::required_agent(&cookbook)
                .agent
                .to_string(),
            cluster: cookbook.metadata.cluster.clone(),
        };
        let inserted = self
            .state
            .store
            .insert_cookbook_version(&new, &who)
            .await
            .map_err(status)?;
        // Blob collection may have taken a reused blob since it was read
        // above (ops::gc explains the race); this also makes an identical
        // re-push repair a version whose blobs went missing.
        crate::ops::gc::ensure_stored(&self.state.blobs, &blobs_of_version)
            .await
            .map_err(|e| {
                blob_error(Status::unavailable(format!(
                    "checking the version's blobs: {e:#}"
                )))
            })?;
        let created = matches!(inserted, Inserted::Created);
        if created {
            self.state
                .changed_keeping_view(&format!("cookbook {origin} pushed"))
                .await;
        }
        Ok(Response::new(CommitResponse { created }))
    }

    async fn list(
        &self,
        req: Request<ListCookbooksRequest>,
    ) -> Result<Response<ListCookbooksResponse>, Status> {
        auth::viewer(&self.state, &req).await?;
        let name = req.into_inner().name;
        let rows = self
            .state
            .store
            .cookbook_versions((!name.is_empty()).then_some(name.as_str()))
            .await
            .map_err(status)?;
        Ok(Response::new(ListCookbooksResponse {
            versions: rows.iter().map(convert::cookbook_row_to_pb).collect(),
        }))
    }

    async fn show(&self, req: Request<CookbookId>) -> Result<Response<CookbookVersion>, Status> {
        auth::viewer(&self.state, &req).await?;
        let id = req.into_inner();
        let row = self
            .state
            .store
            .cookbook_version(&id.name, &id.version)
            .await
            .map_err(status)?;
        Ok(Response::new(convert::cookbook_row_to_pb(&row)))
    }

    async fn delete(&self, req: Request<CookbookId>) -> Result<Response<Empty>, Status> {
        let who = auth::operator(&self.state, &req, "deleting a cookbook version").await?;
        let id = req.into_inner();
        let version = semver::Version::parse(&id.version)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        // Checked inside the delete's transaction, so a pin set meanwhile still counts.
        let name = id.name.clone();
        let pinned = version.clone();
        let pins = move |doc: &crate::store::Document| {
            let (file, reading) = (std::path::Path::new(&doc.name), Reading::AsBefore);
            cm_model::role::Environment::parse_with(file, &doc.yaml, reading)
                .is_ok_and(|env| env.cookbooks.get(&name).is_some_and(|r| r.matches(&pinned)))
        };
        let guard = self.state.plan_guard(
            PlanChange::DeleteCookbook {
                name: id.name.clone(),
                version: version.clone(),
            },
            id.force,
        );
        self.state
            .store
            .delete_cookbook_version_checked(&id.name, &id.version, &who, pins, Some(guard))
            .await
            .map_err(|e| match e {
                crate::store::StoreError::Conflict(m) => Status::failed_precondition(m),
                other => status(other),
            })?;
        self.state
            .changed_keeping_view(&format!("cookbook {}@{} deleted", id.name, id.version))
            .await;
        Ok(Response::new(Empty {}))
    }
}
