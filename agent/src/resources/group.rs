//! `group` provider: a local group, with groupadd, groupmod and groupdel, and
//! its member list set in one `gpasswd -M` (which also keeps /etc/gshadow in
//! step). With `append: true` members are only added; with `append: false`
//! the member list becomes exactly `members`. `gid` and `system` are applied
//! when the group is created; a differing gid is changed later with groupmod.

use cm_model::resources::FieldError;
use cm_model::resources::group::{GroupAction, GroupSpec};

use super::accounts::{AccountError, GroupEntry, Plan, read_groups};
use super::{Cx, Outcome, Provider, ProviderError};
use crate::engine::CompiledResource;

pub struct Group {
    spec: GroupSpec,
}

/// `spec.members` without repeats, in the order given.
fn wanted_members(spec: &GroupSpec) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for m in &spec.members {
        if !out.contains(m) {
            out.push(m.clone());
        }
    }
    out
}

fn members_call(members: &[String], group: &str) -> (&'static str, Vec<String>) {
    (
        "gpasswd",
        vec!["-M".into(), members.join(","), group.to_string()],
    )
}

/// What creating a missing group takes.
fn plan_new(spec: &GroupSpec) -> Plan {
    let name = &spec.group_name;
    let mut args = Vec::new();
    let mut what = "created".to_string();
    if let Some(gid) = spec.gid {
        args.extend(["-g".to_string(), gid.to_string()]);
        what = format!("created with gid {gid}");
    }
    if spec.system {
        args.push("-r".into());
    }
    args.push(name.clone());
    let mut plan = Plan {
        changes: vec![what],
        calls: vec![("groupadd", args)],
    };
    let members = wanted_members(spec);
    if !members.is_empty() {
        plan.changes.push(format!("members {}", members.join(", ")));
        plan.calls.push(members_call(&members, name));
    }
    plan
}

/// What bringing an existing group to the spec takes; empty when nothing differs.
fn plan_existing(spec: &GroupSpec, current: &GroupEntry) -> Plan {
    let name = &spec.group_name;
    let mut plan = Plan::default();
    if let Some(gid) = spec.gid
        && gid != current.gid
    {
        plan.changes.push(format!("gid {} -> {gid}", current.gid));
        plan.calls
            .push(("groupmod", vec!["-g".into(), gid.to_string(), name.clone()]));
    }
    let wanted = wanted_members(spec);
    let added: Vec<String> = wanted
        .iter()
        .filter(|m| !current.members.contains(m))
        .cloned()
        .collect();
    let removed: Vec<String> = if spec.append {
        Vec::new()
    } else {
        current
            .members
            .iter()
            .filter(|m| !wanted.contains(m))
            .cloned()
            .collect()
    };
    if !added.is_empty() {
        plan.changes
            .push(format!("added members {}", added.join(", ")));
    }
    if !removed.is_empty() {
        plan.changes
            .push(format!("removed members {}", removed.join(", ")));
    }
    if !added.is_empty() || !removed.is_empty() {
        let list: Vec<String> = current
            .members
            .iter()
            .filter(|m| !removed.contains(m))
            .chain(&added)
            .cloned()
            .collect();
        plan.calls.push(members_call(&list, name));
    }
    plan
}

impl Group {
    fn current(&self) -> Result<Option<GroupEntry>, AccountError> {
        Ok(read_groups()?
            .into_iter()
            .find(|g| g.name == self.spec.group_name))
    }

    fn create(&self) -> Result<Plan, AccountError> {
        Ok(match self.current()? {
            None => plan_new(&self.spec),
            Some(c) => plan_existing(&self.spec, &c),
        })
    }

    fn remove(&self) -> Result<Plan, AccountError> {
        Ok(match self.current()? {
            None => Plan::default(),
            Some(_) => Plan {
                changes: vec!["removed".into()],
                calls: vec![("groupdel", vec![self.spec.group_name.clone()])],
            },
        })
    }
}

impl Provider for Group {
    type Spec = GroupSpec;

    fn build(spec: GroupSpec, _: &CompiledResource) -> Result<Self, FieldError> {
        Ok(Group { spec })
    }

    fn converge(&mut self, action: GroupAction, cx: &mut Cx) -> Result<Outcome, ProviderError> {
        let plan = match action {
            GroupAction::Create => self.create()?,
            GroupAction::Remove => self.remove()?,
            GroupAction::Nothing => return Ok(Outcome::unchanged()),
        };
        Ok(plan.apply(cx.why_run)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: serde_json::Value) -> GroupSpec {
        serde_json::from_value(json).unwrap()
    }

    fn entry(gid: u32, members: &[&str]) -> GroupEntry {
        GroupEntry {
            name: "web".into(),
            gid,
            members: members.iter().map(|m| m.to_string()).collect(),
        }
    }

    fn argv(plan: &Plan) -> Vec<String> {
        plan.calls
            .iter()
            .map(|(p, a)| format!("{p} {}", a.join(" ")))
            .collect()
    }

    #[test]
    fn new_group_is_added_then_given_its_members() {
        let s = spec(
            serde_json::json!({"group_name": "web", "gid": 1500, "system": true,
            "members": ["alice", "bob", "alice"]}),
        );
        let p = plan_new(&s);
        assert_eq!(
            argv(&p),
            ["groupadd -g 1500 -r web", "gpasswd -M alice,bob web"]
        );
        assert_eq!(p.changes, ["created with gid 1500", "members alice, bob"]);
    }

    #[test]
    fn append_only_adds_missing_members() {
        let s = spec(serde_json::json!({"group_name": "web", "members": ["alice", "carol"]}));
        let p = plan_existing(&s, &entry(1001, &["bob", "alice"]));
        assert_eq!(argv(&p), ["gpasswd -M bob,alice,carol web"]);
        assert_eq!(p.changes, ["added members carol"]);
        assert_eq!(
            plan_existing(&s, &entry(1001, &["carol", "alice", "x"])),
            Plan::default()
        );
    }

    #[test]
    fn exact_members_removes_the_others_and_fixes_the_gid() {
        let s = spec(serde_json::json!({"group_name": "web", "gid": 1002,
            "members": ["alice"], "append": false}));
        let p = plan_existing(&s, &entry(1001, &["bob", "alice"]));
        assert_eq!(argv(&p), ["groupmod -g 1002 web", "gpasswd -M alice web"]);
        assert_eq!(p.changes, ["gid 1001 -> 1002", "removed members bob"]);
        let empty = spec(serde_json::json!({"group_name": "web", "append": false}));
        assert_eq!(
            argv(&plan_existing(&empty, &entry(1001, &["bob"]))),
            ["gpasswd -M  web"]
        );
    }
}
