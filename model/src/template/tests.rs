use super::*;
use serde_json::json;

fn ctx() -> Context {
    Context::wraps(json!({
        "attrs": {"memcached": {"port": 11211, "flags": ["-v", "-t 4"], "empty": "", "memory_mb": null, "text": "a\nb\n\nc"}},
        "node": {"memory_mib": 3950, "hostname": "web-1"},
        "cluster": {"memcached": [{"name": "m1", "address": "10.0.0.1"}, {"name": "m2", "address": "10.0.0.2"}], "web": []},
        "secrets": {},
    }))
    .unwrap()
}

fn render(text: &str) -> Result<String, TemplateError> {
    Templates::new().render_str(text, &ctx())
}

#[test]
fn no_html_escaping() {
    assert_eq!(
        render("{{node.hostname}} <&> \"'").unwrap(),
        "web-1 <&> \"'"
    );
    let t = Templates::new();
    let c = Context::wraps(json!({"attrs": {"s": "a<b>&'\""}})).unwrap();
    assert_eq!(t.render_str("{{attrs.s}}", &c).unwrap(), "a<b>&'\"");
}

#[test]
fn missing_variable_names_template_line_and_variable() {
    let mut t = Templates::new();
    let src = BTreeMap::from([(
        "m.conf.hbs".to_string(),
        "port {{attrs.memcached.port}}\nmem {{attrs.memcached.memroy}}\n".to_string(),
    )]);
    t.add_cookbook("memcached", &src).unwrap();
    let err = t.render("memcached/m.conf.hbs", &ctx()).unwrap_err();
    assert_eq!(err.line, Some(2), "{err}");
    assert!(err.message.contains("memcached/m.conf.hbs"), "{err}");
    assert!(err.message.contains("attrs.memcached.memroy"), "{err}");
}

#[test]
fn helpers_for_config_files() {
    assert_eq!(
        render("{{join attrs.memcached.flags \" \"}}").unwrap(),
        "-v -t 4"
    );
    assert_eq!(render("{{default attrs.memcached.nope 64}}").unwrap(), "64");
    assert_eq!(
        render("{{default attrs.memcached.empty \"x\"}}").unwrap(),
        "x"
    );
    assert_eq!(
        render("{{default attrs.memcached.memory_mb 32}}").unwrap(),
        "32"
    );
    assert_eq!(
        render("{{default attrs.memcached.port 1}}").unwrap(),
        "11211"
    );
    assert_eq!(
        render("{{json attrs.memcached.flags}}").unwrap(),
        r#"["-v","-t 4"]"#
    );
    assert_eq!(
        render("{{indent 2 attrs.memcached.text}}").unwrap(),
        "  a\n  b\n\n  c"
    );
    assert_eq!(
        render("{{div (mul node.memory_mib 60) 100}}").unwrap(),
        "2370"
    );
    assert_eq!(
        render("{{min (div node.memory_mib 2) 1024}}").unwrap(),
        "1024"
    );
    assert_eq!(render("{{max 64 (sub 10 20)}}").unwrap(), "64");
    assert_eq!(render("{{mod 7 3}} {{add 1 2}}").unwrap(), "1 3");
    assert!(
        render("{{div 1 0}}")
            .unwrap_err()
            .message
            .contains("division by zero")
    );
    assert_eq!(
        render("{{#if (and (eq attrs.memcached.port 11211) (not false))}}y{{/if}}").unwrap(),
        "y"
    );
    assert_eq!(
        render("{{upper \"ab\"}}{{lower \"CD\"}}{{replace \"a.b\" \".\" \"_\"}}").unwrap(),
        "ABcda_b"
    );
}

#[test]
fn shell_quote_survives_hostile_input() {
    assert_eq!(helpers::quote("plain-name_1.conf"), "plain-name_1.conf");
    assert_eq!(helpers::quote("a b"), "'a b'");
    assert_eq!(helpers::quote("it's; rm -rf /"), r"'it'\''s; rm -rf /'");
    assert_eq!(helpers::quote(""), "''");
    let c = Context::wraps(json!({"attrs": {"x": "$(reboot)`id`"}})).unwrap();
    assert_eq!(
        Templates::new()
            .render_str("echo {{shell_quote attrs.x}}", &c)
            .unwrap(),
        "echo '$(reboot)`id`'"
    );
}

#[test]
fn cluster_list_renders_session_save_path() {
    let text = "{{#each cluster.memcached}}{{address}}:{{../attrs.memcached.port}}{{#unless @last}},{{/unless}}{{/each}}";
    assert_eq!(render(text).unwrap(), "10.0.0.1:11211,10.0.0.2:11211");
    assert_eq!(render("[{{#each cluster.web}}x{{/each}}]").unwrap(), "[]");
}

#[test]
fn partial_cycles_and_missing_partials_are_refused_at_load() {
    let cyc = BTreeMap::from([
        ("a.hbs".to_string(), "{{> c/b.hbs}}".to_string()),
        ("b.hbs".to_string(), "x\n{{> c/a.hbs}}".to_string()),
    ]);
    let err = Templates::new().add_cookbook("c", &cyc).unwrap_err();
    assert!(
        err.message.contains("c/a.hbs -> c/b.hbs -> c/a.hbs"),
        "{err}"
    );
    let missing = BTreeMap::from([("a.hbs".to_string(), "ok\n{{> c/nope.hbs}}".to_string())]);
    let err = Templates::new().add_cookbook("c", &missing).unwrap_err();
    assert_eq!(err.line, Some(2));
    let fine = BTreeMap::from([
        ("a.hbs".to_string(), "[{{> c/b.hbs}}]".to_string()),
        ("b.hbs".to_string(), "{{node.hostname}}".to_string()),
    ]);
    let mut t = Templates::new();
    t.add_cookbook("c", &fine).unwrap();
    assert_eq!(t.render("c/a.hbs", &ctx()).unwrap(), "[web-1]");
}

#[test]
fn syntax_error_names_the_template() {
    let bad = BTreeMap::from([("a.hbs".to_string(), "ok\n{{#if x}}\n".to_string())]);
    let err = Templates::new().add_cookbook("c", &bad).unwrap_err();
    assert!(err.message.contains("c/a.hbs"), "{err}");
}

#[test]
fn helper_names_do_not_shadow_namespaced_data() {
    // decisions.md, "Handlebars, strict, with namespaces": `{{raw}}` would
    // render a helper; data under namespaces is safe.
    let c = Context::wraps(json!({"attrs": {"raw": "r", "json": "j"}})).unwrap();
    assert_eq!(
        Templates::new()
            .render_str("{{attrs.raw}}{{attrs.json}}", &c)
            .unwrap(),
        "rj"
    );
}

/// Run `f` on a thread with a 2 MiB stack, the size tokio gives the agent's
/// and the server's worker threads: an overflow aborts the test process.
fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap()
}

fn nested_ifs(n: usize) -> String {
    format!("{}x\n{}", "{{#if a}}\n".repeat(n), "{{/if}}".repeat(n))
}

#[test]
fn deep_nesting_is_refused_at_load_without_overflowing_the_stack() {
    for n in [1_500, 6_000, 100_000] {
        let err = on_small_stack(move || {
            let src = BTreeMap::from([("deep.hbs".to_string(), nested_ifs(n))]);
            Templates::new().add_cookbook("c", &src).unwrap_err()
        });
        assert_eq!(err.template.as_deref(), Some("c/deep.hbs"), "{err}");
        assert_eq!(err.line, Some(MAX_DEPTH + 1), "{err}");
        assert!(
            err.message
                .starts_with("template c/deep.hbs line 65 column 1: ")
                && err.message.contains("at most 64"),
            "{err}"
        );
    }
    let fine = BTreeMap::from([("ok.hbs".to_string(), nested_ifs(MAX_DEPTH))]);
    let mut t = Templates::new();
    t.add_cookbook("c", &fine).unwrap();
    let c = Context::wraps(json!({"a": true})).unwrap();
    assert!(t.render("c/ok.hbs", &c).unwrap().starts_with('x'));
}

#[test]
fn deep_sub_expressions_and_else_chains_are_refused_too() {
    let parens = format!("{{{{x {}a{}}}}}", "(not ".repeat(5_000), ")".repeat(5_000));
    let chain = format!("{{{{#if a}}}}{}{{{{/if}}}}", "{{else if b}}".repeat(5_000));
    for text in [parens, chain] {
        let err = on_small_stack(move || {
            let src = BTreeMap::from([("t.hbs".to_string(), text)]);
            Templates::new().add_cookbook("c", &src).unwrap_err()
        });
        assert!(err.message.contains("at most 64"), "{err}");
    }
}

#[test]
fn nesting_through_a_chain_of_partials_is_refused() {
    // Each file alone is shallow; included one in the next they are not.
    let chain: BTreeMap<String, String> = (0..200)
        .map(|i| (format!("p{i}.hbs"), format!("{{{{> c/p{}.hbs}}}}", i + 1)))
        .chain([("p200.hbs".to_string(), "end".to_string())])
        .collect();
    let err = on_small_stack(move || Templates::new().add_cookbook("c", &chain).unwrap_err());
    assert!(
        err.message.contains("with the partials it includes"),
        "{err}"
    );
    let inside = BTreeMap::from([
        (
            "a.hbs".to_string(),
            format!(
                "{}{{{{> c/b.hbs}}}}{}",
                "{{#if x}}".repeat(40),
                "{{/if}}".repeat(40)
            ),
        ),
        ("b.hbs".to_string(), nested_ifs(40)),
    ]);
    let err = Templates::new().add_cookbook("c", &inside).unwrap_err();
    assert!(err.message.starts_with("template c/a.hbs: "), "{err}");
    assert!(err.message.contains("81 deep"), "{err}");
}

#[test]
fn helpers_are_checked_at_load() {
    let src = BTreeMap::from([(
        "t.hbs".to_string(),
        "a\nb {{default attrs.x}}\n".to_string(),
    )]);
    let err = Templates::new().add_cookbook("c", &src).unwrap_err();
    assert_eq!((err.line, err.column), (Some(2), Some(3)), "{err}");
    assert!(
        err.message
            .contains("helper default takes 2 arguments (default VALUE FALLBACK), found 1"),
        "{err}"
    );
    assert!(check_inline("{{shout attrs.x}}").is_err());
    assert!(check_inline("{{join attrs.l \",\"}} no braces").is_ok());
}

#[test]
fn every_helper_with_a_signature_is_registered() {
    // A name-only `{{name}}` calls the helper when it exists; otherwise strict
    // mode reports a missing variable.
    let t = Templates::new();
    let c = Context::wraps(json!({})).unwrap();
    for sig in helpers::SIGNATURES {
        if let Err(e) = t.render_str(&format!("{{{{{}}}}}", sig.name), &c) {
            assert!(!e.message.contains("is not defined"), "{}: {e}", sig.name);
        }
    }
}

#[test]
fn output_past_the_limit_is_an_error_naming_the_template() {
    // 1000 x 1000 x 20 bytes: 20 MB from a small template and a small list.
    let items: Vec<u32> = (0..1000).collect();
    let c = Context::wraps(json!({"attrs": {"l": items}})).unwrap();
    let text = "{{#each attrs.l}}{{#each ../attrs.l}}twenty bytes a line\n{{/each}}{{/each}}";
    let mut t = Templates::new();
    t.add_cookbook(
        "c",
        &BTreeMap::from([("big.hbs".to_string(), text.to_string())]),
    )
    .unwrap();
    let err = t.render("c/big.hbs", &c).unwrap_err();
    assert_eq!(err.template.as_deref(), Some("c/big.hbs"));
    assert_eq!(
        err.message,
        "template c/big.hbs: the rendered output would be larger than 16 MiB"
    );
    let err = t.render_str(text, &c).unwrap_err();
    assert!(err.message.contains("larger than 16 MiB"), "{err}");
}

#[test]
fn helpers_refuse_results_past_the_limit() {
    let c = Context::wraps(
        json!({"attrs": {"s": "x".repeat(1 << 20), "l": vec!["x".repeat(1024); 20_000]}}),
    )
    .unwrap();
    let t = Templates::new();
    for text in [
        "{{replace attrs.s \"\" attrs.s}}",
        "{{replace attrs.s \"x\" \"0123456789012345678\"}}",
        "{{indent 1024 (replace attrs.s \"x\" \"x\\n\")}}",
        "{{join attrs.l \",\"}}",
    ] {
        let err = t.render_str(text, &c).unwrap_err();
        assert!(err.message.contains("larger than 16 MiB"), "{text}: {err}");
    }
    assert_eq!(render("{{replace \"ab\" \"\" \"-\"}}").unwrap(), "-a-b-");
}

#[test]
fn pad_zero_pads_integers_as_printf_does() {
    let t = Templates::new();
    let c =
        Context::wraps(json!({"item": 7, "big": 12345, "neg": -7, "s": "7", "f": 1.5})).unwrap();
    let r = |text: &str| t.render_str(text, &c);
    assert_eq!(r("web-{{pad item 3}}").unwrap(), "web-007");
    assert_eq!(r("{{pad big 3}}").unwrap(), "12345");
    assert_eq!(r("{{pad neg 3}}").unwrap(), "-07");
    assert_eq!(r("{{pad 0 2}}").unwrap(), "00");
    assert_eq!(r("{{pad item 0}}").unwrap(), "7");
    assert_eq!(r("{{pad (add item 1) 2}}").unwrap(), "08");
    let err = r("{{pad s 3}}").unwrap_err();
    assert!(
        err.message
            .contains("pad: NUMBER must be an integer, found \"7\""),
        "{err}"
    );
    assert!(r("{{pad f 3}}").unwrap_err().message.contains("integer"));
    let err = r("{{pad item 21}}").unwrap_err();
    assert!(
        err.message
            .contains("WIDTH must be an integer from 0 to 20"),
        "{err}"
    );
    assert!(
        r("{{pad missing 3}}")
            .unwrap_err()
            .message
            .contains("missing")
    );
}

#[test]
fn pad_arity_is_checked_at_load() {
    let err = check_inline("{{pad item}}").unwrap_err();
    assert!(
        err.message
            .contains("helper pad takes 2 arguments (pad NUMBER WIDTH), found 1"),
        "{err}"
    );
    assert!(check_inline("{{pad item 3 4}}").is_err());
    assert!(check_inline("{{#pad item 3}}x{{/pad}}").is_err());
    assert!(check_inline("{{pad item 3}}").is_ok());
}

#[test]
fn helpers_called_lists_every_helper_once() {
    let used = helpers_called("{{#if (eq a 1)}}{{pad item 3}}{{/if}}{{pad x 2}} {{item}}");
    assert_eq!(used.into_iter().collect::<Vec<_>>(), ["eq", "if", "pad"]);
    assert!(helpers_called("no braces").is_empty());
}

#[test]
fn an_inline_string_parsed_once_still_renders_each_context_and_error() {
    let t = Templates::new();
    let text = "{{attrs.x}}/{{#if attrs.y}}y{{/if}}";
    let a = Context::wraps(json!({"attrs": {"x": "a", "y": true}})).unwrap();
    let b = Context::wraps(json!({"attrs": {"x": "b", "y": false}})).unwrap();
    assert_eq!(t.render_str(text, &a).unwrap(), "a/y");
    assert_eq!(t.render_str(text, &b).unwrap(), "b/");
    let missing = Context::wraps(json!({"attrs": {}})).unwrap();
    let err = t.render_str(text, &missing).unwrap_err();
    assert!(err.message.contains("attrs.x"), "{err}");
    // A text that does not parse fails every time, not only the first.
    for _ in 0..2 {
        assert!(t.render_str("{{#if attrs.x}}open", &a).is_err());
    }
    let (a, b) = (inline::parse(text).unwrap(), inline::parse(text).unwrap());
    assert!(std::sync::Arc::ptr_eq(&a, &b), "parsed twice");
}
