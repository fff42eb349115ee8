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
