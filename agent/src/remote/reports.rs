//! Run reports: each is written to the state dir first, then delivered in
//! order; what the server cannot take now waits there for the next chance.

use std::path::{Path, PathBuf};

use cm_proto::v1::RunSummary;
use cm_proto::v1::agent_client::AgentClient;
use prost::Message;
use tonic::transport::Channel;

use super::RemoteError;

/// Reports kept while the server is unreachable; the oldest go first.
const MAX_QUEUED: usize = 500;

pub struct Queue {
    dir: PathBuf,
}

impl Queue {
    pub fn new(state_dir: &Path) -> Queue {
        Queue {
            dir: state_dir.join("reports"),
        }
    }

    /// Keep `report` until it is delivered.
    pub fn push(&self, report: &RunSummary) -> std::io::Result<()> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let path = self.dir.join(format!("{nanos:024}.pb"));
        cm_model::atomic_file::write(&path, &report.encode_to_vec(), 0o600)?;
        let queued = self.pending()?;
        for old in queued.iter().take(queued.len().saturating_sub(MAX_QUEUED)) {
            let _ = std::fs::remove_file(old);
        }
        Ok(())
    }

    /// Queued report files, oldest first.
    pub fn pending(&self) -> std::io::Result<Vec<PathBuf>> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.dir)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "pb"))
            .collect();
        files.sort();
        Ok(files)
    }

    /// Deliver queued reports in order; stops at the first that cannot be
    /// sent. Returns how many were delivered. A report the server refuses
    /// outright is dropped rather than blocking the queue forever.
    pub async fn flush(&self, channel: Channel) -> Result<usize, RemoteError> {
        let mut client = AgentClient::new(channel);
        let mut sent = 0;
        for path in self
            .pending()
            .map_err(|e| RemoteError::Other(e.to_string()))?
        {
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            let Ok(report) = RunSummary::decode(bytes.as_slice()) else {
                tracing::warn!(file = %path.display(), "dropping an unreadable queued report");
                let _ = std::fs::remove_file(&path);
                continue;
            };
            let mut request = tonic::Request::new(report);
            request.set_timeout(std::time::Duration::from_secs(30));
            match client.report_run(request).await.map_err(RemoteError::from) {
                Ok(_) => sent += 1,
                Err(RemoteError::Refused(m)) => {
                    tracing::warn!(file = %path.display(), error = %m, "the server refused a queued report; dropped");
                }
                Err(e) => return Err(e),
            }
            let _ = std::fs::remove_file(&path);
        }
        Ok(sent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queued_in_order_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        super::super::ensure_state_dir(dir.path()).unwrap();
        let q = Queue::new(dir.path());
        for i in 0..3 {
            q.push(&RunSummary {
                duration_ms: i,
                ..RunSummary::default()
            })
            .unwrap();
        }
        let files = q.pending().unwrap();
        assert_eq!(files.len(), 3);
        let first = RunSummary::decode(std::fs::read(&files[0]).unwrap().as_slice()).unwrap();
        assert_eq!(first.duration_ms, 0);
    }
}
