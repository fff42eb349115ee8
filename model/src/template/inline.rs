//! `{{…}}` strings of recipes, parsed once per process: loading a cookbook
//! checks each of them and compiling a plan renders each, often several
//! times (`for_each`), and parsing cost more than rendering (bench/README.md,
//! "Where the agent's no-op goes"). Bounded by an estimate of what the
//! parsed forms hold (each `{{…}}` a few hundred bytes, plus the text):
//! past [`MAX_COST`] the memo starts afresh, so a daemon that loads many
//! cookbook versions, or a server fed hostile recipes, keeps it small.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use handlebars::Template;

use super::check::{self, Problem};

/// The estimated bytes the memo holds before it starts afresh.
const MAX_COST: usize = 16 << 20;
/// What one `{{…}}` costs parsed, about: its element, parameters, maps.
const COST_PER_EXPRESSION: usize = 512;

/// A parsed string and how deeply it nests.
pub(super) struct Parsed {
    pub template: Template,
    pub depth: usize,
}

#[derive(Default)]
struct Memo {
    parsed: HashMap<Box<str>, Arc<Parsed>>,
    cost: usize,
}

static MEMO: Mutex<Option<Memo>> = Mutex::new(None);

/// `text` parsed (nesting bounded, as [`check::parse`]); failures are not
/// kept, so each asks again and gets the same answer.
pub(super) fn parse(text: &str) -> Result<Arc<Parsed>, Problem> {
    let known = MEMO
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .and_then(|m| m.parsed.get(text).cloned());
    if let Some(p) = known {
        return Ok(p);
    }
    let (template, depth) = check::parse(None, text)?;
    let parsed = Arc::new(Parsed { template, depth });
    let mut guard = MEMO.lock().unwrap_or_else(|e| e.into_inner());
    let m = guard.get_or_insert_with(Memo::default);
    let cost = text.len() + COST_PER_EXPRESSION * text.matches("{{").count();
    if m.cost + cost > MAX_COST {
        *m = Memo::default();
    }
    if cost <= MAX_COST {
        m.cost += cost;
        m.parsed.insert(text.into(), parsed.clone());
    }
    Ok(parsed)
}
