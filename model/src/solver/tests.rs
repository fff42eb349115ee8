use std::collections::BTreeSet;

use proptest::prelude::*;

use super::*;

fn v(s: &str) -> Version {
    Version::parse(s).unwrap()
}

fn req(s: &str) -> VersionReq {
    VersionReq::parse(s).unwrap()
}

type Available = BTreeMap<String, Vec<Candidate>>;

type Row<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);

/// Pushed versions from `(cookbook, version, depends)` rows.
fn universe(rows: &[Row]) -> BTreeMap<String, Vec<Candidate>> {
    let mut out: BTreeMap<String, Vec<Candidate>> = BTreeMap::new();
    for (name, version, depends) in rows {
        out.entry(name.to_string()).or_default().push(Candidate {
            version: v(version),
            depends: depends
                .iter()
                .map(|(d, r)| (d.to_string(), req(r)))
                .collect(),
        });
    }
    out
}

fn web_run_list(names: &[&str]) -> Vec<(String, Origin)> {
    let origin = Origin::RunList(Some("web".into()));
    names
        .iter()
        .map(|n| (n.to_string(), origin.clone()))
        .collect()
}

fn pin(cookbook: &str, r: &str) -> Constraint {
    Constraint {
        cookbook: cookbook.into(),
        req: req(r),
        origin: Origin::EnvironmentPin("production".into()),
    }
}

fn role(cookbook: &str, r: &str) -> Constraint {
    Constraint {
        cookbook: cookbook.into(),
        req: req(r),
        origin: Origin::Role("web".into()),
    }
}

/// `name version` for every chosen cookbook, sorted.
fn chosen(roots: &[&str], constraints: &[Constraint], rows: &[Row]) -> Vec<String> {
    let res = resolve(&web_run_list(roots), constraints, &universe(rows)).unwrap();
    res.versions
        .iter()
        .map(|(n, v)| format!("{n} {v}"))
        .collect()
}

fn error(roots: &[&str], constraints: &[Constraint], rows: &[Row]) -> String {
    resolve(&web_run_list(roots), constraints, &universe(rows))
        .unwrap_err()
        .to_string()
}

const MEMCACHED: [Row; 3] = [
    ("memcached", "1.2.0", &[]),
    ("memcached", "1.4.0", &[]),
    ("memcached", "2.0.1", &[]),
];

#[test]
fn newest_version_wins_when_unpinned() {
    assert_eq!(chosen(&["memcached"], &[], &MEMCACHED), ["memcached 2.0.1"]);
}

#[test]
fn environment_pin_wins_over_newer_versions() {
    let pins = [pin("memcached", "=1.2.0")];
    assert_eq!(
        chosen(&["memcached"], &pins, &MEMCACHED),
        ["memcached 1.2.0"]
    );
}

#[test]
fn range_pin_picks_the_newest_in_range() {
    let pins = [pin("memcached", "~1")];
    assert_eq!(
        chosen(&["memcached"], &pins, &MEMCACHED),
        ["memcached 1.4.0"]
    );
}

#[test]
fn role_constraint_limits_the_choice() {
    let wants = [role("memcached", ">= 1.3, < 2")];
    assert_eq!(
        chosen(&["memcached"], &wants, &MEMCACHED),
        ["memcached 1.4.0"]
    );
}

#[test]
fn depends_are_followed_transitively_and_constrain() {
    let rows: &[Row] = &[
        ("apache_php", "2.1.0", &[("php", ">= 7")]),
        ("php", "8.1.0", &[("memcached", "< 2")]),
        ("php", "9.0.0-rc.1", &[]),
        MEMCACHED[0],
        MEMCACHED[1],
        MEMCACHED[2],
    ];
    assert_eq!(
        chosen(&["apache_php"], &[], rows),
        ["apache_php 2.1.0", "memcached 1.4.0", "php 8.1.0"]
    );
}

#[test]
fn older_version_is_chosen_when_the_newest_depends_conflict_with_a_pin() {
    let rows: &[Row] = &[
        ("apache_php", "1.0.0", &[("memcached", ">= 1")]),
        ("apache_php", "2.0.0", &[("memcached", ">= 2")]),
        MEMCACHED[0],
        MEMCACHED[2],
    ];
    let pins = [pin("memcached", "=1.2.0")];
    assert_eq!(
        chosen(&["apache_php"], &pins, rows),
        ["apache_php 1.0.0", "memcached 1.2.0"]
    );
}

#[test]
fn newest_that_needs_an_unpushed_cookbook_is_passed_over() {
    let rows: &[Row] = &[
        ("apache_php", "2.1.0", &[]),
        ("apache_php", "2.2.0", &[("php_fpm", "*")]),
    ];
    assert_eq!(chosen(&["apache_php"], &[], rows), ["apache_php 2.1.0"]);
}

#[test]
fn unsatisfiable_names_both_sides_and_their_origins() {
    let rows: &[Row] = &[
        ("apache_php", "2.1.0", &[("memcached", ">= 2.0")]),
        MEMCACHED[0],
        MEMCACHED[2],
    ];
    let pins = [pin("memcached", "=1.2.0")];
    assert_eq!(
        error(&["apache_php", "memcached"], &pins, rows),
        "memcached: no version satisfies all of: = 1.2.0 (environment production pin), \
         >= 2.0 (apache_php 2.1.0 depends); available: 1.2.0, 2.0.1"
    );
}

#[test]
fn pin_against_role_constraint_names_both() {
    let both = [pin("memcached", "=1.2.0"), role("memcached", ">= 2")];
    assert_eq!(
        error(&["memcached"], &both, &MEMCACHED),
        "memcached: no version satisfies all of: = 1.2.0 (environment production pin), \
         >= 2 (role web constraint); available: 1.2.0, 1.4.0, 2.0.1"
    );
}

#[test]
fn missing_cookbook_says_who_needs_it() {
    assert_eq!(
        error(&["memcached", "nagios"], &[], &MEMCACHED),
        "no cookbook named nagios has been pushed; needed by role web's run list"
    );
    let rows: &[Row] = &[("apache_php", "2.1.0", &[("memcached", ">= 1.4")])];
    assert_eq!(
        error(&["apache_php"], &[], rows),
        "no cookbook named memcached has been pushed; needed by apache_php 2.1.0"
    );
}

#[test]
fn depends_cycle_resolves() {
    let rows: &[Row] = &[
        ("a", "1.0.0", &[("b", ">= 1")]),
        ("a", "2.0.0", &[("b", ">= 2")]),
        ("b", "1.0.0", &[("a", ">= 1")]),
        ("b", "2.0.0", &[("a", "< 2")]),
    ];
    assert_eq!(chosen(&["a"], &[], rows), ["a 1.0.0", "b 2.0.0"]);
}

#[test]
fn unsatisfiable_cycle_explains_the_clash() {
    let rows: &[Row] = &[
        ("a", "1.0.0", &[("b", "=2.0.0")]),
        ("a", "2.0.0", &[("b", "=1.0.0")]),
        ("b", "1.0.0", &[("a", "=1.0.0")]),
        ("b", "2.0.0", &[("a", "=2.0.0")]),
    ];
    assert_eq!(
        error(&["a"], &[], rows),
        "b 1.0.0 depends on a = 1.0.0, but a 2.0.0 was chosen first, \
         and no other combination of versions works either"
    );
}

#[test]
fn unpinned_lists_needed_cookbooks_the_environment_leaves_open() {
    let rows: &[Row] = &[
        ("apache_php", "2.1.0", &[("memcached", "*")]),
        ("nagios", "1.0.0", &[]),
        MEMCACHED[0],
    ];
    let constraints = [
        pin("memcached", "*"),
        role("apache_php", ">= 2"),
        pin("cassandra", "=3.0.0"),
    ];
    let res = resolve(
        &web_run_list(&["nagios", "apache_php"]),
        &constraints,
        &universe(rows),
    );
    let res = res.unwrap();
    assert_eq!(res.unpinned, ["apache_php", "nagios"]);
    assert!(
        !res.versions.contains_key("cassandra"),
        "pins do not add cookbooks"
    );
}

#[test]
fn prerelease_only_when_the_environment_asks() {
    let rows: &[Row] = &[
        ("memcached", "1.4.0", &[]),
        ("memcached", "2.0.0-rc.1", &[]),
    ];
    assert_eq!(chosen(&["memcached"], &[], rows), ["memcached 1.4.0"]);
    let pins = [pin("memcached", "=2.0.0-rc.1")];
    assert_eq!(
        chosen(&["memcached"], &pins, rows),
        ["memcached 2.0.0-rc.1"]
    );
}

/// `a`'s newer versions need memcached 2, `z` (last in the run list) needs
/// memcached 1; six cookbooks of 50 versions each sit between them.
fn distant_conflict() -> (Vec<(String, Origin)>, Available) {
    let mut available: BTreeMap<String, Vec<Candidate>> = BTreeMap::new();
    let mut add = |name: &str, version: Version, depends: &[(&str, &str)]| {
        let depends = depends
            .iter()
            .map(|(d, r)| (d.to_string(), req(r)))
            .collect();
        available
            .entry(name.into())
            .or_default()
            .push(Candidate { version, depends });
    };
    let mut names = vec!["a".to_string()];
    for minor in 0..50 {
        let m = if minor == 0 { "< 2" } else { ">= 2" };
        add("a", Version::new(1, minor, 0), &[("memcached", m)]);
        add("z", Version::new(1, minor, 0), &[("memcached", "< 2")]);
        for x in 0..6 {
            add(&format!("x{x}"), Version::new(1, minor, 0), &[]);
        }
    }
    names.extend((0..6).map(|x| format!("x{x}")));
    names.push("z".into());
    add("memcached", v("1.4.0"), &[]);
    add("memcached", v("2.0.1"), &[]);
    let origin = Origin::RunList(None);
    (
        names.into_iter().map(|n| (n, origin.clone())).collect(),
        available,
    )
}

#[test]
fn distant_conflict_does_not_retry_the_cookbooks_between() {
    let (roots, available) = distant_conflict();
    let res = resolve(&roots, &[], &available).unwrap();
    assert_eq!(res.versions["a"], v("1.0.0"));
    assert_eq!(res.versions["x0"], v("1.49.0"));
    assert_eq!(res.versions["memcached"], v("1.4.0"));
}

#[test]
fn step_limit_gives_up_with_advice() {
    let (roots, available) = distant_conflict();
    let err = resolve_with_limit(&roots, &[], &available, 100).unwrap_err();
    assert_eq!(err, SolveError::StepLimit { steps: 100 });
    assert!(
        err.to_string().contains("pin the versions you want"),
        "{err}"
    );
}

#[test]
fn same_inputs_same_answer_whatever_the_listing_order() {
    let (roots, available) = distant_conflict();
    let reversed: BTreeMap<String, Vec<Candidate>> = (available.iter())
        .map(|(n, vs)| (n.clone(), vs.iter().rev().cloned().collect()))
        .collect();
    let first = resolve(&roots, &[], &available).unwrap();
    assert_eq!(resolve(&roots, &[], &available).unwrap(), first);
    assert_eq!(resolve(&roots, &[], &reversed).unwrap(), first);
}

#[test]
fn long_version_lists_keep_both_ends() {
    let versions: Vec<Version> = (0..20).map(|p| Version::new(1, 0, p)).collect();
    let text = unsatisfiable(&[], &versions);
    assert!(
        text.ends_with("1.0.0, 1.0.1, … 12 more …, 1.0.14, 1.0.15, 1.0.16, 1.0.17, 1.0.18, 1.0.19"),
        "{text}"
    );
}

// Tiny universes, so every combination can be tried.
const NAMES: [&str; 4] = ["a", "b", "c", "d"];
const VERSIONS: [&str; 4] = ["1.0.0", "1.1.0", "2.0.0", "2.1.0"];
const REQS: [&str; 6] = ["*", ">=1.1", "<2", "=1.0.0", "^2", ">=1.1, <2.1"];

/// One cookbook: some of `VERSIONS`, each with up to two depends (name, req) by index.
fn arb_cookbook() -> impl Strategy<Value = Vec<(usize, Vec<(usize, usize)>)>> {
    let depends = prop::collection::vec((0..NAMES.len(), 0..REQS.len()), 0..=2);
    prop::sample::subsequence((0..VERSIONS.len()).collect::<Vec<_>>(), 0..=3).prop_flat_map(
        move |versions| {
            let n = versions.len();
            (Just(versions), prop::collection::vec(depends.clone(), n))
                .prop_map(|(vs, deps)| vs.into_iter().zip(deps).collect())
        },
    )
}

fn arb_problem() -> impl Strategy<
    Value = (
        Vec<usize>,
        Vec<Constraint>,
        BTreeMap<String, Vec<Candidate>>,
    ),
> {
    let roots = prop::collection::vec(0..NAMES.len(), 1..=2);
    let constraint = (0..NAMES.len(), 0..REQS.len(), any::<bool>()).prop_map(|(n, r, is_pin)| {
        if is_pin {
            pin(NAMES[n], REQS[r])
        } else {
            role(NAMES[n], REQS[r])
        }
    });
    let constraints = prop::collection::vec(constraint, 0..=3);
    let books = prop::collection::vec(arb_cookbook(), NAMES.len()).prop_map(|books| {
        let mut available = BTreeMap::new();
        for (name, versions) in NAMES.iter().zip(books) {
            let candidates = versions.into_iter().map(|(vi, deps)| Candidate {
                version: v(VERSIONS[vi]),
                depends: deps
                    .into_iter()
                    .map(|(d, r)| (NAMES[d].to_string(), req(REQS[r])))
                    .collect(),
            });
            available.insert(name.to_string(), candidates.collect());
        }
        available
    });
    (roots, constraints, books)
}

/// Is `chosen` (cookbook → version) a resolution: the roots and exactly what
/// they need, every pin, role constraint and depends met?
fn is_resolution(
    roots: &[usize],
    constraints: &[Constraint],
    available: &BTreeMap<String, Vec<Candidate>>,
    chosen: &BTreeMap<String, Version>,
) -> bool {
    let candidate = |name: &str| {
        let version = chosen.get(name)?;
        available[name].iter().find(|c| &c.version == version)
    };
    let mut reached = BTreeSet::new();
    let mut todo: Vec<&str> = roots.iter().map(|&r| NAMES[r]).collect();
    while let Some(name) = todo.pop() {
        if !reached.insert(name) {
            continue;
        }
        let Some(c) = candidate(name) else {
            return false;
        };
        let statics = constraints.iter().filter(|s| s.cookbook == name);
        if !statics.into_iter().all(|s| s.req.matches(&c.version)) {
            return false;
        }
        for (dep, r) in &c.depends {
            match chosen.get(dep) {
                Some(dv) if r.matches(dv) => todo.push(dep),
                _ => return false,
            }
        }
    }
    reached.len() == chosen.len()
}

/// Every resolution there is, by trying every combination (absent or one version each).
fn all_resolutions(
    roots: &[usize],
    constraints: &[Constraint],
    available: &BTreeMap<String, Vec<Candidate>>,
) -> Vec<BTreeMap<String, Version>> {
    let mut combos = vec![BTreeMap::new()];
    for (name, versions) in available {
        let mut next = Vec::new();
        for combo in &combos {
            next.push(combo.clone());
            for c in versions {
                let mut with = combo.clone();
                with.insert(name.clone(), c.version.clone());
                next.push(with);
            }
        }
        combos = next;
    }
    combos.retain(|c| is_resolution(roots, constraints, available, c));
    combos
}

proptest! {
    #[test]
    fn answers_agree_with_brute_force((roots, constraints, available) in arb_problem()) {
        let named: Vec<(String, Origin)> =
            roots.iter().map(|&r| (NAMES[r].to_string(), Origin::RunList(None))).collect();
        let all = all_resolutions(&roots, &constraints, &available);
        match resolve(&named, &constraints, &available) {
            Ok(res) => {
                prop_assert!(is_resolution(&roots, &constraints, &available, &res.versions), "{res:?}");
                // The first root of the run list gets the newest version any resolution allows.
                let first = NAMES[roots[0]];
                let newest = all.iter().map(|r| &r[first]).max();
                prop_assert_eq!(Some(&res.versions[first]), newest);
                let pinned = |n: &String| constraints.iter()
                    .any(|c| &c.cookbook == n && matches!(c.origin, Origin::EnvironmentPin(_)));
                let unpinned: Vec<String> = res.versions.keys().filter(|n| !pinned(n)).cloned().collect();
                prop_assert_eq!(&res.unpinned, &unpinned);
                let reversed = available.iter()
                    .map(|(n, vs)| (n.clone(), vs.iter().rev().cloned().collect()))
                    .collect();
                prop_assert_eq!(resolve(&named, &constraints, &reversed), Ok(res));
            }
            Err(err) => {
                prop_assert!(!matches!(err, SolveError::StepLimit { .. }), "{}", err);
                prop_assert!(all.is_empty(), "solver said {err} but {:?} works", all[0]);
            }
        }
    }
}

#[test]
fn version_that_depends_against_itself_is_explained() {
    let rows: &[Row] = &[
        ("a", "1.0.0", &[("a", ">= 2")]),
        ("a", "2.0.0", &[("a", "< 2")]),
    ];
    assert_eq!(
        error(&["a"], &[], rows),
        "a 2.0.0 depends on a < 2, which excludes itself, and no other version works either"
    );
}
