//! Why a provider could not bring its resource to the wanted state. Each
//! provider (or family of them) has its own error enum, which wraps the
//! typed errors underneath it ([`FileError`], [`CommandError`],
//! [`DpkgError`](super::dpkg::DpkgError), ...) and converts into
//! [`ProviderError`]; the engine turns that into the report's `error`.

use cm_model::resources::UnknownAction;

use super::accounts::AccountError;
use super::deploy::DeployError;
use super::directory::DirectoryError;
use super::link::LinkError;
use super::package::PackageError;
use super::remote_file::RemoteFileError;
use super::service::ServiceError;
use crate::command::CommandError;
use crate::fsutil::{FileError, OwnerError};

/// A provider's failure, as the run report says it.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// A managed file (file, template, cron, apt_repository).
    #[error(transparent)]
    File(#[from] FileError),
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    #[error(transparent)]
    Link(#[from] LinkError),
    #[error(transparent)]
    RemoteFile(#[from] RemoteFileError),
    #[error(transparent)]
    Package(#[from] PackageError),
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// user and group.
    #[error(transparent)]
    Account(#[from] AccountError),
    #[error(transparent)]
    Execute(#[from] ExecuteError),
    #[error(transparent)]
    Deploy(#[from] DeployError),
    /// Recipes are checked when loaded, so only a caller that skipped the
    /// check (a test, a future notification path) meets this.
    #[error("{kind} has {source}")]
    UnknownAction {
        kind: &'static str,
        source: UnknownAction,
    },
}

impl ProviderError {
    /// The error without anything a command printed, for a resource whose
    /// details may not be shown (`sensitive`): its output may hold what the
    /// resource hides.
    pub fn without_output(&self) -> String {
        match self {
            ProviderError::Package(e) => e.without_output(),
            ProviderError::Service(e) => e.without_output(),
            ProviderError::Account(e) => e.without_output(),
            ProviderError::Execute(e) => e.without_output(),
            ProviderError::Deploy(e) => e.without_output(),
            // No command ran: nothing printed to hide.
            other => other.to_string(),
        }
    }
}

/// Why an `execute` did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum ExecuteError {
    /// Its `user` or `group` does not resolve.
    #[error(transparent)]
    Owner(#[from] OwnerError),
    /// It could not start, ran past its timeout, or exited with a code not in `returns`.
    #[error(transparent)]
    Command(#[from] CommandError),
}

impl ExecuteError {
    fn without_output(&self) -> String {
        match self {
            ExecuteError::Command(e) => e.status(),
            other => other.to_string(),
        }
    }
}

/// A command a provider ran that failed, named as a person would type it
/// (`apt-get install memcached`, `systemctl start memcached`).
#[derive(Debug, thiserror::Error)]
#[error("{command} failed ({source})")]
pub struct CommandFailed {
    pub command: String,
    pub source: CommandError,
}

impl CommandFailed {
    pub fn new(command: impl Into<String>, source: CommandError) -> Self {
        CommandFailed {
            command: command.into(),
            source,
        }
    }

    pub fn without_output(&self) -> String {
        format!("{} failed ({})", self.command, self.source.status())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_output_keeps_the_command_and_its_status_only() {
        let exited = CommandError::Exited {
            code: 100,
            tail: "E: password=hunter2 rejected".into(),
        };
        let e = ProviderError::Execute(ExecuteError::Command(exited));
        assert_eq!(e.to_string(), "exit 100: E: password=hunter2 rejected");
        assert_eq!(e.without_output(), "exit 100");
        let failed = CommandFailed::new(
            "apt-get install app",
            CommandError::Exited {
                code: 100,
                tail: "E: hunter2".into(),
            },
        );
        assert_eq!(
            failed.without_output(),
            "apt-get install app failed (exit 100)"
        );
    }
}
