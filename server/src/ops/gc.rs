//! Blob garbage collection: blobs no cookbook version references (left by
//! deleted versions and abandoned pushes) are deleted.
//!
//! Two races are handled, on one server and between replicas alike:
//!
//! - A push uploads its blobs before it commits its version, so a blob of a
//!   push in progress is unreferenced for a while. Only blobs older than a
//!   grace period (an hour by default) are collected.
//! - A push may reuse an old unreferenced blob that already is in the store
//!   (it is not uploaded again) and commit just as the collector deletes it.
//!   The collector reads each blob before deleting it and, once a batch is
//!   deleted, reads the references again and puts back any blob that became
//!   referenced; the commit, for its part, checks after inserting that its
//!   blobs are still there and puts back any that is not
//!   ([`ensure_stored`]). Whichever of the two comes last sees the other,
//!   so a committed version never lacks a blob.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use bytes::Bytes;
use serde::Serialize;

use crate::blobs::{BlobError, Blobs, StoredBlob};
use crate::store::Store;

/// A batch is at most this many blobs or bytes: what the collector holds in
/// memory to put back.
const BATCH_BLOBS: usize = 256;
const BATCH_BYTES: u64 = 64 << 20;

/// What one collection did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GcReport {
    /// Blobs in the store when it started.
    pub stored: usize,
    /// Kept: a cookbook version references them.
    pub referenced: usize,
    /// Kept: unreferenced but younger than the grace period.
    pub recent: usize,
    pub deleted: usize,
    pub deleted_bytes: u64,
    /// Deleted, then put back: a push committed a version using them.
    pub restored: usize,
    /// Could not be read (already gone, or corrupted), left alone.
    pub skipped: usize,
}

/// Delete every blob no cookbook version references that is older than
/// `grace`.
pub async fn collect_garbage(store: &Store, blobs: &Blobs, grace: Duration) -> Result<GcReport> {
    // Listed before the references are read: a blob stored after the listing
    // is not a candidate, and one listed is judged by references at least as
    // new as itself.
    let stored = blobs.list_with_age().await.context("listing blobs")?;
    let referenced = store
        .referenced_blobs()
        .await
        .context("reading blob references")?;
    let cutoff = SystemTime::now()
        .checked_sub(grace)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let mut report = GcReport {
        stored: stored.len(),
        ..GcReport::default()
    };
    let mut batch: Vec<StoredBlob> = Vec::new();
    let mut batch_bytes = 0;
    for blob in stored {
        if referenced.contains(&blob.digest) {
            report.referenced += 1;
        } else if blob.last_modified > cutoff {
            report.recent += 1;
        } else {
            batch_bytes += blob.size;
            batch.push(blob);
            if batch.len() >= BATCH_BLOBS || batch_bytes >= BATCH_BYTES {
                delete_batch(store, blobs, std::mem::take(&mut batch), &mut report).await?;
                batch_bytes = 0;
            }
        }
    }
    delete_batch(store, blobs, batch, &mut report).await?;
    Ok(report)
}

/// Delete `batch`, then put back what became referenced meanwhile.
async fn delete_batch(
    store: &Store,
    blobs: &Blobs,
    batch: Vec<StoredBlob>,
    report: &mut GcReport,
) -> Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    let mut held: Vec<(StoredBlob, Bytes)> = Vec::with_capacity(batch.len());
    for blob in batch {
        let content = match blobs.get(&blob.digest).await {
            Ok(content) => content,
            // Another replica's collector was faster.
            Err(BlobError::NotFound(_)) => {
                report.skipped += 1;
                continue;
            }
            Err(e) => {
                tracing::warn!(blob = %blob.digest, error = %e, "unreferenced blob cannot be read; left alone");
                report.skipped += 1;
                continue;
            }
        };
        if let Err(e) = blobs.delete(&blob.digest).await {
            put_back(blobs, held).await;
            return Err(e).with_context(|| format!("deleting blob {}", blob.digest));
        }
        held.push((blob, content));
    }
    let referenced = match store.referenced_blobs().await {
        Ok(referenced) => referenced,
        Err(e) => {
            // Cannot tell whether a push took one of them: keep them all.
            put_back(blobs, held).await;
            return Err(e).context("reading blob references");
        }
    };
    let (revived, gone): (Vec<_>, Vec<_>) = held
        .into_iter()
        .partition(|(blob, _)| referenced.contains(&blob.digest));
    for (blob, _) in &gone {
        report.deleted += 1;
        report.deleted_bytes += blob.size;
    }
    report.restored += revived.len();
    if !revived.is_empty() {
        tracing::info!(
            blobs = revived.len(),
            "a push reused blobs while they were collected; putting them back"
        );
    }
    put_back(blobs, revived).await;
    Ok(())
}

async fn put_back(blobs: &Blobs, held: Vec<(StoredBlob, Bytes)>) {
    for (blob, content) in held {
        if let Err(e) = blobs.put(&blob.digest, content).await {
            tracing::error!(blob = %blob.digest, error = %e, "cannot put back a collected blob");
        }
    }
}

/// After a version is committed: put back any of its blobs that is not in
/// the store (the collector's half of the race above). `blobs_of_version`
/// are the digests and contents the commit checked.
pub async fn ensure_stored(blobs: &Blobs, blobs_of_version: &[(String, Bytes)]) -> Result<usize> {
    let digests: Vec<String> = blobs_of_version.iter().map(|(d, _)| d.clone()).collect();
    let missing: HashSet<String> = blobs.missing(&digests).await?.into_iter().collect();
    let mut put = 0;
    for (digest, content) in blobs_of_version {
        if missing.contains(digest) && blobs.put(digest, content.clone()).await? {
            put += 1;
        }
    }
    if put > 0 {
        tracing::info!(
            blobs = put,
            "blobs of a committed version were collected meanwhile; put back"
        );
    }
    Ok(put)
}
