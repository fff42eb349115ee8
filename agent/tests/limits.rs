//! What cmctl and the server refuse, a node refuses the same way and with
//! the same message; and a run that would expand past its limits (items,
//! resources, output, content) fails before anything is touched, naming the
//! file and line at fault.

mod support;

use cm_model::cookbook::Cookbook;
use support::Sandbox;

/// The error a run reports, which must be the one loading the cookbook gives.
fn refused_like_a_push(s: &Sandbox) -> String {
    let expected = Cookbook::load_dir(&s.cookbooks().join("t"))
        .unwrap_err()
        .to_string();
    let got = s.apply("t").error.expect("the run fails");
    assert_eq!(got, expected);
    assert!(!s.path("first").exists(), "a resource ran before the error");
    got
}

const FIRST: &str = "- file: \"{{attrs.root}}/first\"\n";

#[test]
fn a_cookbook_a_push_would_refuse_fails_the_run_with_the_same_message() {
    for (file, text, expected) in [
        (
            "templates/t.hbs",
            "ok\n{{frob attrs.x}}\n",
            "unknown helper \"frob\"",
        ),
        (
            "templates/t.hbs",
            "{{join attrs.x}}",
            "join takes 2 arguments",
        ),
        (
            "recipes/extra.yaml",
            "- file: !!python/object /tmp/x\n",
            "YAML tag",
        ),
        ("attributes.yaml", "a: !!binary aGk=\n", "YAML tag"),
        ("files/a\nb", "x", "control characters"),
        (
            "metadata.yaml",
            "name: t\nversion: 1.0.0+b\n",
            "build metadata",
        ),
    ] {
        let s = Sandbox::new();
        s.cookbook("t", &[("recipes/default.yaml", FIRST), (file, text)]);
        let got = refused_like_a_push(&s);
        assert!(got.contains(expected), "{file}: {got}");
    }
}

#[test]
fn a_deep_template_fails_the_run_without_overflowing_the_stack() {
    let got = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(|| {
            let deep = format!(
                "{}x{}",
                "{{#if a}}\n".repeat(1_500),
                "{{/if}}".repeat(1_500)
            );
            let s = Sandbox::new();
            s.cookbook(
                "t",
                &[("recipes/default.yaml", FIRST), ("templates/d.hbs", &deep)],
            );
            refused_like_a_push(&s)
        })
        .unwrap()
        .join()
        .unwrap();
    assert!(
        got.contains("t/templates/d.hbs:65:1: template t/d.hbs line 65 column 1: ")
            && got.contains("at most 64"),
        "{got}"
    );
}

#[test]
fn for_each_over_a_huge_list_is_refused_with_file_and_line() {
    let s = Sandbox::new();
    s.cookbook(
        "t",
        &[(
            "recipes/default.yaml",
            "- file: \"{{attrs.root}}/first\"\n- file: \"{{attrs.root}}/{{item}}\"\n  for_each: attrs.many\n",
        )],
    );
    let many: Vec<String> = (0..10_001).map(|i| format!("  - f{i}\n")).collect();
    s.attributes(&format!("many:\n{}", many.concat()));
    let e = s.apply("t").error.unwrap();
    assert!(
        e.contains("recipes/default.yaml:3:")
            && e.contains("for_each: 10001 items, over the limit of 10000 for one resource"),
        "{e}"
    );
    assert!(!s.path("first").exists());
}

#[test]
fn a_run_past_the_resource_limit_is_refused() {
    let items: Vec<String> = (0..4_000).map(|i| i.to_string()).collect();
    let each = |name: &str| {
        format!(
            "- execute: \"{name}{{{{item}}}}\"\n  for_each: [{}]\n  action: nothing\n",
            items.join(",")
        )
    };
    let s = Sandbox::new();
    let recipe = format!("{FIRST}{}{}{}", each("a"), each("b"), each("c"));
    s.cookbook("t", &[("recipes/default.yaml", &recipe)]);
    let e = s.apply("t").error.unwrap();
    // Named by the resource that passes it: the 10001st, FIRST's included.
    assert!(
        e.contains("recipes/default.yaml:8:3: execute[c1999]: the run passes 10000 resources"),
        "{e}"
    );
    assert!(!s.path("first").exists());
}

#[test]
fn template_output_past_the_limit_fails_before_anything_is_touched() {
    let s = Sandbox::new();
    s.cookbook(
        "t",
        &[
            (
                "recipes/default.yaml",
                "- file: \"{{attrs.root}}/first\"\n- template: \"{{attrs.root}}/big\"\n  source: big.hbs\n",
            ),
            (
                "templates/big.hbs",
                "{{#each attrs.l}}{{#each ../attrs.l}}twenty bytes a line\n{{/each}}{{/each}}",
            ),
        ],
    );
    let l: Vec<String> = (0..1_000).map(|i| format!("  - {i}\n")).collect();
    s.attributes(&format!("l:\n{}", l.concat()));
    let e = s.apply("t").error.unwrap();
    assert!(
        e.contains("recipes/default.yaml:3:")
            && e.contains("template t/big.hbs: the rendered output would be larger than 16 MiB"),
        "{e}"
    );
    assert!(!s.path("first").exists() && !s.path("big").exists());
}

#[test]
fn a_run_past_the_content_limit_is_refused() {
    let s = Sandbox::new();
    s.cookbook(
        "t",
        &[(
            "recipes/default.yaml",
            "- file: \"{{attrs.root}}/first\"\n- file: \"{{attrs.root}}/copy{{item}}\"\n  source: big\n  for_each: [1, 2, 3, 4, 5]\n",
        )],
    );
    let big = s.cookbooks().join("t/files/big");
    std::fs::create_dir_all(big.parent().unwrap()).unwrap();
    std::fs::write(&big, vec![b'x'; 60 << 20]).unwrap();
    let e = s.apply("t").error.unwrap();
    let copy5 = s.path("copy5").display().to_string();
    assert!(
        e.contains(&format!("recipes/default.yaml:2:3: file[{copy5}]: the run's files and templates pass 256 MiB of content")),
        "{e}"
    );
    assert!(!s.path("first").exists());
}
