//! Agent and server tell each other their versions. An agent of the same
//! major version and the server's minor version or the one before is served;
//! anything else gets a message that says what to upgrade.

use semver::Version;

pub fn check_agent(agent: &str) -> Result<(), String> {
    let server = Version::parse(cm_proto::VERSION).expect("the crate version is semver");
    if agent.is_empty() {
        return Ok(()); // older clients that do not say: served, the call decides
    }
    let a =
        Version::parse(agent).map_err(|_| format!("agent version {agent:?} is not a version"))?;
    let ok = a.major == server.major && (a.minor == server.minor || a.minor + 1 == server.minor);
    if ok {
        Ok(())
    } else if a < server {
        Err(format!(
            "cm-agent {a} is too old for cm-server {server}: upgrade the agent (one minor version behind is served)"
        ))
    } else {
        Err(format!(
            "cm-agent {a} is newer than cm-server {server}: upgrade the server first"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_minor_behind_is_served() {
        let s = Version::parse(cm_proto::VERSION).unwrap();
        assert!(check_agent(&s.to_string()).is_ok());
        if s.minor > 0 {
            assert!(check_agent(&format!("{}.{}.0", s.major, s.minor - 1)).is_ok());
        }
        assert!(
            check_agent(&format!("{}.{}.0", s.major + 1, s.minor))
                .unwrap_err()
                .contains("upgrade the server")
        );
        assert!(check_agent(&format!("{}.{}.0", s.major, s.minor + 2)).is_err());
        assert!(check_agent("junk").is_err());
    }
}
