//! `when` conditions must parse or fail cleanly, and evaluate without panicking.
#![no_main]

use cm_model::condition::Condition;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(c) = Condition::parse(text)
    {
        let ctx = serde_json_ctx();
        let _ = c.eval(&ctx);
    }
});

fn serde_json_ctx() -> cm_model::serde_json::Value {
    cm_model::serde_json::json!({"attrs": {"a": 1, "b": [1, "x"], "c": {"d": true}}, "node": {"os": {"id": "debian"}}, "cluster": {}})
}
