//! Enrollment tokens and enrolling with them: uses, expiry, revocation, and
//! one winner when enrollments race for one token or one node name.

use cm_server::store::{NewToken, NodeState, StoreError, unix_now};

use crate::Db;
use crate::fixtures::{ALICE, audit_count, documents_exist, enrollment, sha256, strings, token};

on_both_engines!(
    tokens_refuse_use_up_expiry_and_revocation_distinctly,
    concurrent_enrollments_with_a_one_use_token_have_one_winner,
    concurrent_enrollments_of_one_name_have_one_winner,
    an_expired_holder_is_retired_by_the_next_enrollment_of_its_name,
    a_live_name_is_refused_and_a_retired_node_enrolls_again,
    attributes_follow_a_retired_name_only_into_its_environment,
);

async fn tokens_refuse_use_up_expiry_and_revocation_distinctly(db: &mut Db) {
    let s = &db.store;
    let now = unix_now();
    let two = token(s, "two", &["web"], 2, now + 3600).await;
    let listed = s.tokens().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].uses_left, listed[0].revoked), (2, false));
    assert_eq!(listed[0].roles, ["web"]);

    // The id is taken: refused whatever the rest says.
    documents_exist(s, &[], "production").await;
    let dup = NewToken {
        id: "two".into(),
        secret_hash: sha256("other"),
        roles: vec![],
        environment: "production".into(),
        expires_at: now + 10,
        uses: 1,
    };
    assert!(matches!(
        s.create_token(&dup, ALICE).await,
        Err(StoreError::Conflict(_))
    ));

    let a = s
        .enroll_with_token(&two, &enrollment("a", "sa", now))
        .await
        .unwrap();
    assert_eq!(a.token_id.as_deref(), Some("two"));
    assert_eq!(a.node.roles, ["web"]);
    assert_eq!(a.node.environment, "production");
    assert_eq!(a.node.state, NodeState::Active);
    assert!(!a.reenrolled);
    s.enroll_with_token(&two, &enrollment("b", "sb", now))
        .await
        .unwrap();
    let err = s
        .enroll_with_token(&two, &enrollment("c", "sc", now))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Denied(m) if m.to_string() == "enrollment token two is used up"),
        "{err}"
    );
    assert_eq!(s.token("two").await.unwrap().uses_left, 0);

    let short = token(s, "short", &["web"], 5, now + 60).await;
    let err = s
        .enroll_with_token(&short, &enrollment("d", "sd", now + 61))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Denied(m) if m.to_string().contains("token short expired")
            && m.to_string().contains(&cm_model::time::utc(now + 60))
            && m.to_string().ends_with("UTC (just now)")),
        "a date people read, not epoch seconds: {err}"
    );
    s.enroll_with_token(&short, &enrollment("d", "sd", now + 59))
        .await
        .unwrap();

    let revoked = token(s, "gone", &["web"], 5, now + 3600).await;
    let r = s.revoke_token("gone", ALICE).await.unwrap();
    assert!(r.changed && r.value.revoked);
    let audits = audit_count(s).await;
    assert!(!s.revoke_token("gone", ALICE).await.unwrap().changed);
    assert_eq!(audit_count(s).await, audits);
    let err = s
        .enroll_with_token(&revoked, &enrollment("e", "se", now))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Denied(m) if m.to_string() == "enrollment token gone was revoked"),
        "{err}"
    );
    assert!(matches!(
        s.revoke_token("nope", ALICE).await,
        Err(StoreError::NotFound(_))
    ));

    let err = s
        .enroll_with_token(&sha256("guess"), &enrollment("f", "sf", now))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Denied(m) if m.to_string() == "unknown enrollment token"),
        "{err}"
    );

    let err = s
        .enroll_with_token(&short, &enrollment("../etc", "sx", now))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)));
    let mut bad_facts = enrollment("g", "sg", now);
    bad_facts.facts_json = "[]".into();
    assert!(matches!(
        s.enroll_with_token(&short, &bad_facts).await,
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(
        s.token("short").await.unwrap().uses_left,
        4,
        "refused requests consume nothing"
    );

    let names: Vec<String> = s
        .nodes(None, None)
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.name)
        .collect();
    assert_eq!(names, ["a", "b", "d"]);
    let enroll_event = s.audit(100, Some("token:two")).await.unwrap();
    assert_eq!(enroll_event.len(), 2);
    assert_eq!(enroll_event[0].what, "node.enroll b");
}

async fn concurrent_enrollments_with_a_one_use_token_have_one_winner(db: &mut Db) {
    let s = &db.store;
    let now = unix_now();
    let hash = token(s, "once", &["web"], 1, now + 3600).await;
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let (s, hash) = (s.clone(), hash.clone());
            tokio::spawn(async move {
                s.enroll_with_token(&hash, &enrollment(&format!("n{i}"), &format!("s{i}"), now))
                    .await
            })
        })
        .collect();
    let mut won = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => won += 1,
            Err(StoreError::Denied(m)) => {
                assert_eq!(m.to_string(), "enrollment token once is used up")
            }
            Err(other) => panic!("unexpected error: {other:?}"),
        }
    }
    assert_eq!(won, 1);
    assert_eq!(s.nodes(None, None).await.unwrap().len(), 1);
    assert_eq!(s.token("once").await.unwrap().uses_left, 0);
}

async fn concurrent_enrollments_of_one_name_have_one_winner(db: &mut Db) {
    let s = &db.store;
    let now = unix_now();
    let hash = token(s, "many", &["web"], 10, now + 3600).await;
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let (s, hash) = (s.clone(), hash.clone());
            tokio::spawn(async move {
                s.enroll_with_token(&hash, &enrollment("same", &format!("s{i}"), now))
                    .await
            })
        })
        .collect();
    let mut won = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => won += 1,
            Err(StoreError::Conflict(m)) => assert!(m.contains("held by an active node"), "{m}"),
            Err(other) => panic!("unexpected error: {other:?}"),
        }
    }
    assert_eq!(won, 1);
    assert_eq!(
        s.token("many").await.unwrap().uses_left,
        9,
        "losers gave their use back"
    );
}

async fn an_expired_holder_is_retired_by_the_next_enrollment_of_its_name(db: &mut Db) {
    let s = &db.store;
    let now = unix_now();
    let hash = token(s, "asg", &["cache"], 10, now + 3600).await;
    let mut first = enrollment("i-1", "serial-1", now);
    first.cert_expires_at = now + 100;
    s.enroll_with_token(&hash, &first).await.unwrap();
    s.mark_unreachable(now + 1).await.unwrap();

    // At the last second of its certificate the node still holds its name.
    let err = s
        .enroll_with_token(&hash, &enrollment("i-1", "serial-2", now + 100))
        .await
        .unwrap_err();
    assert!(matches!(&err, StoreError::Conflict(_)), "{err}");
    // A token that is refused retires nothing, even once the holder expired.
    let stale = token(s, "stale", &["cache"], 10, now + 50).await;
    let err = s
        .enroll_with_token(&stale, &enrollment("i-1", "serial-2", now + 101))
        .await
        .unwrap_err();
    assert!(matches!(&err, StoreError::Denied(_)), "{err}");
    assert_eq!(s.node("i-1").await.unwrap().state, NodeState::Unreachable);
    assert!(!s.is_revoked("serial-1").await.unwrap());
    assert_eq!(s.token("asg").await.unwrap().uses_left, 9);

    // Expired: retired and enrolled again in one go.
    let again = s
        .enroll_with_token(&hash, &enrollment("i-1", "serial-2", now + 101))
        .await
        .unwrap();
    assert_eq!(again.retired_expired.as_deref(), Some("serial-1"));
    assert!(again.reenrolled);
    assert_eq!(again.node.state, NodeState::Active);
    assert_eq!(again.node.cert_serial, "serial-2");
    assert_eq!(s.token("asg").await.unwrap().uses_left, 8);
    let revocation = s
        .revoked_serials()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.serial == "serial-1")
        .expect("the expired serial is revoked");
    assert_eq!(revocation.reason, "node i-1 retired: certificate expired");
    assert!(!s.is_revoked("serial-2").await.unwrap());
    let events = s.audit(2, None).await.unwrap();
    assert_eq!(events[0].what, "node.enroll i-1");
    assert_eq!(events[1].what, "node.retire i-1");
    assert_eq!(events[1].who, "token:asg");
    assert!(
        events[1]
            .after_json
            .as_deref()
            .unwrap()
            .contains("certificate expired"),
        "{:?}",
        events[1].after_json
    );

    // The new certificate is live: the name is held again.
    let err = s
        .enroll_with_token(&hash, &enrollment("i-1", "serial-3", now + 102))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict(m) if m.contains("i-1 is held by an active node")),
        "{err}"
    );
    assert!(!s.is_revoked("serial-2").await.unwrap());
}

async fn a_live_name_is_refused_and_a_retired_node_enrolls_again(db: &mut Db) {
    let s = &db.store;
    let now = unix_now();
    let hash = token(s, "asg", &["cache"], 10, now + 3600).await;
    s.enroll_with_token(&hash, &enrollment("i-1", "serial-1", now))
        .await
        .unwrap();
    s.set_node_attribute("i-1", "memcached.memory_mb", "512", ALICE)
        .await
        .unwrap();

    let err = s
        .enroll_with_token(&hash, &enrollment("i-1", "serial-2", now))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict(m) if m.contains("i-1 is held by an active node")),
        "{err}"
    );
    assert_eq!(s.mark_unreachable(now + 1).await.unwrap(), ["i-1"]);
    let err = s
        .enroll_with_token(&hash, &enrollment("i-1", "serial-2", now))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict(m) if m.contains("unreachable")),
        "{err}"
    );
    assert_eq!(s.token("asg").await.unwrap().uses_left, 9);
    assert_eq!(s.node("i-1").await.unwrap().cert_serial, "serial-1");

    let retired = s.retire_node("i-1", ALICE).await.unwrap();
    assert!(retired.changed);
    assert_eq!(retired.value.state, NodeState::Retired);
    assert!(s.is_revoked("serial-1").await.unwrap());
    let audits = audit_count(s).await;
    assert!(!s.retire_node("i-1", ALICE).await.unwrap().changed);
    assert_eq!(audit_count(s).await, audits);

    let again = s
        .enroll_with_token(&hash, &enrollment("i-1", "serial-2", now + 5))
        .await
        .unwrap();
    assert!(again.reenrolled);
    let node = &again.node;
    assert_eq!(node.state, NodeState::Active);
    assert_eq!(
        (node.cert_serial.as_str(), node.enrolled_at, node.last_seen),
        ("serial-2", now + 5, now + 5)
    );
    assert_eq!(
        node.attributes["memcached"]["memory_mb"], 512,
        "admin attributes survive re-enrollment"
    );
    assert!(!s.is_revoked("serial-2").await.unwrap());
    assert_eq!(s.token("asg").await.unwrap().uses_left, 8);
    let event = &s.audit(1, None).await.unwrap()[0];
    assert_eq!(event.what, "node.enroll i-1");
    assert!(event.before_json.as_deref().unwrap().contains("retired"));

    // Without a token, for the server's own agent.
    let direct = s
        .enroll_node(
            &enrollment("local", "serial-l", now),
            "staging",
            &strings(&["web"]),
            "cm-server",
        )
        .await
        .unwrap();
    assert_eq!(
        (direct.node.environment.as_str(), direct.token_id),
        ("staging", None)
    );
    let err = s
        .enroll_node(
            &enrollment("local", "serial-m", now),
            "staging",
            &[],
            "cm-server",
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)));
}

async fn attributes_follow_a_retired_name_only_into_its_environment(db: &mut Db) {
    let s = &db.store;
    let now = unix_now();
    let enroll = |serial: &'static str, env: &'static str| async move {
        s.enroll_node(
            &enrollment("n-1", serial, now),
            env,
            &strings(&["web"]),
            "cm-server",
        )
        .await
        .unwrap()
    };
    enroll("serial-1", "production").await;
    s.set_node_attribute("n-1", "app.key", "\"production only\"", ALICE)
        .await
        .unwrap();
    s.retire_node("n-1", ALICE).await.unwrap();
    let same = enroll("serial-2", "production").await;
    assert_eq!(same.node.attributes["app"]["key"], "production only");
    s.retire_node("n-1", ALICE).await.unwrap();
    let other = enroll("serial-3", "staging").await;
    assert_eq!(other.node.environment, "staging");
    assert!(
        other.node.attributes.is_empty(),
        "another environment's enrollment starts clean: {:?}",
        other.node.attributes
    );
}
