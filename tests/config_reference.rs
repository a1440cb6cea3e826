//! `docs/configuration.md` against the parser: every key the parser accepts is documented (for
//! each model kind), no documented key is unknown to it, and every default the reference states
//! is the default the code resolves.
//!
//! The keys the parser accepts are asked of it: an unknown key's error lists the keys its
//! section takes, so each section is probed with one, and each key found is probed in turn to
//! learn whether it is a section itself.

use std::collections::{BTreeMap, BTreeSet};

use fovea::config;

/// The placeholder the reference writes for a name chosen by the task (an optimizer's).
const NAME: &str = "<name>";

/// The error message of a config with these overrides (`None` when it loads).
fn error(sets: &[String]) -> Option<String> {
    config::load(None, sets).err().map(|e| format!("{e:#}"))
}

/// The names an `unknown field` (`head` = "field") or `unknown variant` ("variant") message
/// lists as expected.
fn listed(message: &str, head: &str) -> Option<Vec<String>> {
    let head = format!("unknown {head} `__probe__`, ");
    let rest = &message[message.find(&head)? + head.len()..];
    if rest.starts_with("there are no fields") {
        return Some(Vec::new());
    }
    let list = rest
        .strip_prefix("expected one of ")
        .or_else(|| rest.strip_prefix("expected "))?;
    // "`a`", "`a` or `b`", "one of `a`, `b`, `c`"
    let names = list
        .split(", ")
        .flat_map(|n| n.split(" or "))
        .map(|n| n.trim().trim_matches('`').to_string())
        .take_while(|n| !n.is_empty() && !n.contains(' '))
        .collect();
    Some(names)
}

/// The keys a section's `unknown field` message lists.
fn expected(message: &str) -> Option<Vec<String>> {
    listed(message, "field")
}

/// The leaf keys below `path` (written `a.b`, with `[]` for an array's items and `<name>` for a
/// map's keys), given the overrides `base` that pick the kind.
fn leaves(base: &[String], path: &str, out: &mut BTreeSet<String>) {
    let set = |key: &str, value: &str| -> Vec<String> {
        let mut s = base.to_vec();
        s.push(format!("{key}={value}"));
        s
    };
    let join = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    // an array's items: `x[].key`
    let probe = match path.strip_suffix("[]") {
        Some(array) => set(array, "[{__probe__ = 1}]"),
        None => set(&join("__probe__").replace(NAME, "any"), "1"),
    };
    let message = error(&probe).unwrap_or_else(|| panic!("{path}.__probe__ was accepted"));
    let keys =
        expected(&message).unwrap_or_else(|| panic!("{path}: no list of keys in: {message}"));
    for key in keys {
        let full = join(&key);
        let probe = set(&format!("{full}.__probe__").replace(NAME, "any"), "1");
        match error(&probe) {
            Some(m) if expected(&m).is_some() => leaves(base, &full, out),
            Some(m) if m.contains("expected struct") => {
                leaves(base, &format!("{full}.{NAME}"), out)
            }
            // an array: of tables (`x[].key`), or of values (a leaf)
            Some(m) if m.contains("expected a sequence") => {
                let items = set(&full.replace(NAME, "any"), "[{__probe__ = 1}]");
                if error(&items).as_deref().and_then(expected).is_some() {
                    leaves(base, &format!("{full}[]"), out);
                }
                out.insert(full);
            }
            _ => {
                out.insert(full);
            }
        }
    }
}

/// The overrides that make a valid config of `kind` (a restorer needs something to repair).
fn kind_sets(kind: &str) -> Vec<String> {
    let mut sets = vec![format!("model.kind=\"{kind}\"")];
    if kind == "restore" {
        sets.push(format!("{RESTORE_DAMAGE}=0.3"));
    }
    sets
}

/// The damage the restorer is given to be valid (its default is not checked).
const RESTORE_DAMAGE: &str = "model.damage.noise";

/// Every key the parser accepts, by model kind (`""`: every kind).
fn code_keys() -> BTreeMap<String, BTreeSet<String>> {
    let kinds = listed(
        &error(&["model.kind=\"__probe__\"".into()]).unwrap(),
        "variant",
    )
    .expect("the kinds are listed");
    assert!(kinds.len() >= 8, "{kinds:?}");
    let mut by_kind = BTreeMap::new();
    let mut common = BTreeSet::new();
    leaves(&[], "", &mut common);
    common.retain(|k| !k.starts_with("model."));
    common.insert("model.kind".into());
    by_kind.insert(String::new(), common);
    for kind in kinds {
        let mut keys = BTreeSet::new();
        leaves(&kind_sets(&kind), "model", &mut keys);
        by_kind.insert(kind, keys);
    }
    by_kind
}

/// One row of the reference: its key, the kind it belongs to (`""`: every kind) and its
/// default cell.
struct Row {
    kind: String,
    key: String,
    default: String,
}

/// The reference's rows: tables whose first cell is a backticked key; a heading naming
/// `kind = "x"` puts the rows below it into that kind.
fn doc_rows(text: &str) -> Vec<Row> {
    let mut kind = String::new();
    let mut rows = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') {
            kind = match line.split_once("kind = \"") {
                Some((_, rest)) => rest.split('"').next().unwrap_or_default().to_string(),
                None => String::new(),
            };
            continue;
        }
        let cells: Vec<&str> = line.split(" | ").collect();
        let Some(first) = cells.first().and_then(|c| c.strip_prefix("| `")) else {
            continue;
        };
        let Some(key) = first.strip_suffix('`') else {
            continue;
        };
        if key.starts_with('[') || key.contains(' ') {
            continue;
        }
        let default = cells
            .get(1)
            .map(|c| c.trim().trim_end_matches('|').trim().to_string())
            .unwrap_or_default();
        rows.push(Row {
            kind: if key.starts_with("model.") && key != "model.kind" {
                kind.clone()
            } else {
                String::new()
            },
            key: key.to_string(),
            default,
        });
    }
    rows
}

fn reference() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/configuration.md");
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn every_key_the_parser_takes_is_documented_and_no_other() {
    let code = code_keys();
    let mut docs: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for row in doc_rows(&reference()) {
        docs.entry(row.kind).or_default().insert(row.key);
    }
    let mut problems = Vec::new();
    for (kind, keys) in &code {
        let documented = docs.get(kind).cloned().unwrap_or_default();
        for k in keys.difference(&documented) {
            problems.push(format!("not documented: {k} (kind {kind:?})"));
        }
    }
    for (kind, keys) in &docs {
        let known = code.get(kind).cloned().unwrap_or_default();
        for k in keys.difference(&known) {
            problems.push(format!(
                "documented but unknown to the parser: {k} (kind {kind:?})"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The value at a dotted key of a table.
fn lookup<'a>(table: &'a toml::Table, key: &str) -> Option<&'a toml::Value> {
    let mut parts = key.split('.');
    let mut value = table.get(parts.next()?)?;
    for p in parts {
        value = value.as_table()?.get(p)?;
    }
    Some(value)
}

/// The kind whose resolved config holds a key's default: the key's own kind for `[model]`, a
/// kind that uses it for a kind-specific key, `cnn` for the rest.
fn kind_for(row: &Row) -> &str {
    let k = row.key.as_str();
    match row.kind.as_str() {
        "" if k.starts_with("train.restore.") || k == "eval.panel_images" => "restore",
        "" if k.starts_with("train.gan.") || k.starts_with("eval.") => "gan",
        "" if k.starts_with("train.optimizers.") => "gan",
        "" => "cnn",
        kind => kind,
    }
}

#[test]
fn every_default_the_reference_states_is_the_codes() {
    let mut resolved: BTreeMap<String, toml::Table> = BTreeMap::new();
    let (mut checked, mut wrong) = (0, Vec::new());
    for row in doc_rows(&reference()) {
        // a default written as one TOML value in backticks: `64`, `0.001`, `"adam"`, `true`
        let Some(cell) = row
            .default
            .strip_prefix('`')
            .and_then(|c| c.strip_suffix('`'))
        else {
            continue;
        };
        let Ok(parsed) = toml::from_str::<toml::Table>(&format!("v = {cell}")) else {
            continue;
        };
        let stated = &parsed["v"];
        if stated.is_table() || stated.is_array() {
            continue;
        }
        let kind = kind_for(&row).to_string();
        let table = resolved.entry(kind.clone()).or_insert_with(|| {
            let c = config::load(None, &kind_sets(&kind)).unwrap();
            toml::from_str(&c.to_toml()).unwrap()
        });
        let key = row.key.replace(&format!(".{NAME}."), ".generator.");
        if key == RESTORE_DAMAGE {
            continue;
        }
        let Some(actual) = lookup(table, &key) else {
            continue;
        };
        checked += 1;
        let number = |v: &toml::Value| v.as_float().or(v.as_integer().map(|i| i as f64));
        let same = match (number(stated), number(actual)) {
            (Some(s), Some(a)) => (s - a).abs() <= 1e-12 * s.abs().max(1.0),
            _ => stated == actual,
        };
        if !same {
            wrong.push(format!(
                "{key}: the reference says {cell}, the code {actual}"
            ));
        }
    }
    assert!(checked >= 40, "only {checked} defaults checked");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_probe_reads_the_parsers_lists() {
    assert_eq!(
        expected("x: unknown field `__probe__`, expected one of `a`, `b_c`"),
        Some(vec!["a".to_string(), "b_c".to_string()])
    );
    assert_eq!(
        expected("unknown field `__probe__`, expected `only`"),
        Some(vec!["only".to_string()])
    );
    assert_eq!(
        expected("unknown field `__probe__`, expected `shift` or `flip`"),
        Some(vec!["shift".to_string(), "flip".to_string()])
    );
    assert_eq!(expected("invalid type: map"), None);
    assert_eq!(expected("unknown variant `__probe__`, expected `a`"), None);
    let rows = doc_rows(
        "## [train]\n| key | default |\n|---|---|\n| `train.lr` | `0.001` |\n### `kind = \"rnn\"`\n| `model.cell` | `\"lstm\"` |\n",
    );
    let got: Vec<(String, String, String)> = rows
        .into_iter()
        .map(|r| (r.kind, r.key, r.default))
        .collect();
    assert_eq!(
        got,
        [
            (String::new(), "train.lr".into(), "`0.001`".into()),
            ("rnn".into(), "model.cell".into(), "`\"lstm\"`".into())
        ]
    );
}
