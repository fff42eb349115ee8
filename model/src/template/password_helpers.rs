//! `htdigest USER REALM PASSWORD`: the line Apache's `htdigest` tool writes
//! for a user, `USER:REALM:MD5(USER:REALM:PASSWORD)`, for an
//! `AuthUserFile` of `AuthType Digest` (Debian's Nagios web interface uses
//! one). The same inputs always give the same line, so a rendered password
//! file changes only when the password does, and the password never goes
//! onto a command line. New in cm-agent 0.4.0.
//!
//! MD5 is what the digest scheme is made of, not a choice: the file is only
//! as strong as the password, so give the password from a secret.

use handlebars::{Context, Handlebars, Helper, HelperDef, RenderContext, RenderError, ScopedJson};
use md5::{Digest, Md5};
use serde_json::Value;

use super::helpers::{arg, fail};

pub(super) fn register(r: &mut Handlebars<'static>) {
    r.register_helper("htdigest", Box::new(HtDigest));
}

struct HtDigest;

impl HelperDef for HtDigest {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let text = |i: usize, what: &str| -> Result<String, RenderError> {
            match arg(h, "htdigest", i)? {
                Value::String(s) if s.is_empty() => Err(fail(format!("htdigest: {what} is empty"))),
                Value::String(s) => Ok(s.clone()),
                other => Err(fail(format!(
                    "htdigest: {what} must be a string, found {other}"
                ))),
            }
        };
        let (user, realm) = (text(0, "USER")?, text(1, "REALM")?);
        // The password is a secret: never named in a message.
        let password = text(2, "PASSWORD")?;
        for (what, s) in [("USER", &user), ("REALM", &realm)] {
            if s.contains(':') || s.chars().any(char::is_control) {
                return Err(fail(format!(
                    "htdigest: {what} {s:?} holds a ':' or a control character, which would break the line"
                )));
            }
        }
        if password.chars().any(|c| c == '\n' || c == '\r') {
            return Err(fail("htdigest: PASSWORD holds a line break".into()));
        }
        Ok(ScopedJson::Derived(Value::String(line(
            &user, &realm, &password,
        ))))
    }
}

fn line(user: &str, realm: &str, password: &str) -> String {
    let digest = Md5::digest(format!("{user}:{realm}:{password}").as_bytes());
    format!("{user}:{realm}:{}", hex::encode(digest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_is_the_one_apaches_htdigest_writes() {
        // `htdigest -c file Nagios4 nagiosadmin` with the password "secret"
        // writes this line (md5sum of "nagiosadmin:Nagios4:secret").
        assert_eq!(
            line("nagiosadmin", "Nagios4", "secret"),
            "nagiosadmin:Nagios4:17ed86503293ac2ea8834a2a72bd088b"
        );
    }
}
