//! The house's map, held against the code. `src/lib.rs` lists fovea's modules in layers, and
//! `docs/architecture.md` shows the same list; every import from one module into another points
//! to a lower layer, and no source files import each other in a circle (in fovea or in its
//! kernels crate).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The numbered layer list of a text: lines `N. \`a\`, \`b\` — …` (in `src/lib.rs` behind
/// `//! `), as (N, modules).
fn layers(text: &str) -> Vec<(usize, Vec<String>)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim_start_matches("//!").trim();
        let Some((number, rest)) = line.split_once(". ") else {
            continue;
        };
        let Ok(n) = number.parse::<usize>() else {
            continue;
        };
        let names = rest.split(" — ").next().unwrap_or_default();
        let modules: Vec<String> = names
            .split(',')
            .map(|m| m.trim().trim_matches('`').to_string())
            .collect();
        if modules
            .iter()
            .all(|m| !m.is_empty() && m.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        {
            out.push((n, modules));
        }
    }
    out
}

/// Every `.rs` file under `dir`, sorted.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The character at `i`, a space past the end.
fn ch(c: &[char], i: usize) -> char {
    c.get(i).copied().unwrap_or(' ')
}

/// The code of a file without its comments, string literals and character literals (a path in
/// a comment or a message is no import). Line breaks are kept.
fn code(text: &str) -> String {
    let c: Vec<char> = text.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < c.len() {
        if ch(&c, i + 0) == '/' && ch(&c, i + 1) == '/' {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch(&c, i + 0) == '/' && ch(&c, i + 1) == '*' {
            i += 2;
            while i < c.len() && !(c[i] == '*' && ch(&c, i + 1) == '/') {
                if c[i] == '\n' {
                    out.push('\n');
                }
                i += 1;
            }
            i += 2;
        } else if ch(&c, i + 0) == 'r'
            && (ch(&c, i + 1) == '"'
                || (ch(&c, i + 1) == '#' && (ch(&c, i + 2) == '"' || ch(&c, i + 2) == '#')))
            && !(i > 0 && (c[i - 1].is_alphanumeric() || c[i - 1] == '_'))
        {
            // a raw string: r"…", r#"…"#, …
            let mut hashes = 0;
            i += 1;
            while ch(&c, i + 0) == '#' {
                hashes += 1;
                i += 1;
            }
            i += 1;
            loop {
                if i >= c.len() {
                    break;
                }
                if c[i] == '"' && (1..=hashes).all(|k| ch(&c, i + k) == '#') {
                    i += 1 + hashes;
                    break;
                }
                if c[i] == '\n' {
                    out.push('\n');
                }
                i += 1;
            }
        } else if ch(&c, i + 0) == '"' {
            i += 1;
            while i < c.len() && c[i] != '"' {
                if c[i] == '\\' {
                    i += 1;
                } else if c[i] == '\n' {
                    out.push('\n');
                }
                i += 1;
            }
            i += 1;
        } else if ch(&c, i + 0) == '\''
            && (ch(&c, i + 2) == '\'' || (ch(&c, i + 1) == '\\' && ch(&c, i + 3) == '\''))
        {
            // a character literal ('x' or '\x'), not a lifetime
            i += if ch(&c, i + 1) == '\\' { 4 } else { 3 };
        } else {
            out.push(ch(&c, i + 0));
            i += 1;
        }
    }
    out
}

/// The paths a `use` tree names, its braces expanded: `a::{b, c::{d, e}}` → a::b, a::c::d,
/// a::c::e.
fn expand(tree: &str) -> Vec<String> {
    let tree: String = tree.split_whitespace().collect();
    let Some(open) = tree.find('{') else {
        return vec![tree];
    };
    let prefix = &tree[..open];
    let close = tree.rfind('}').expect("a closing brace");
    let inner = &tree[open + 1..close];
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts
        .into_iter()
        .filter(|p| !p.is_empty())
        .flat_map(|p| expand(p).into_iter().map(move |e| format!("{prefix}{e}")))
        .collect()
}

/// The child modules a `mod.rs` or `lib.rs` declares (`mod x;`, `pub mod x;`).
fn children(code: &str) -> Vec<String> {
    code.lines()
        .filter_map(|l| {
            let l = l.trim();
            let l = l.strip_prefix("pub ").unwrap_or(l);
            let l = l.strip_prefix("pub(crate) ").unwrap_or(l);
            l.strip_prefix("mod ")?
                .strip_suffix(';')
                .map(str::to_string)
        })
        .collect()
}

/// `code` without its `#[cfg(test)]` items (a test module's imports are not the house's).
fn without_tests(code: &str) -> String {
    let mut out = String::new();
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        // the item ends at its closing brace, or at a `;` before any brace
        let (mut depth, mut end) = (0usize, after.len());
        for (i, c) in after.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i + 1;
                        break;
                    }
                }
                ';' if depth == 0 => {
                    end = i + 1;
                    break;
                }
                _ => {}
            }
        }
        out.extend(after[..end].chars().filter(|&c| c == '\n'));
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// The paths a file names (`use` trees expanded, and paths in its code), each with whether it
/// is a re-export (`pub use`). In a `mod.rs` or `lib.rs`, a path that starts with a child
/// module's name is written `self::child::…`.
fn paths(text: &str) -> Vec<(String, bool)> {
    let code = without_tests(&code(text));
    let kids = children(&code);
    let mut out = Vec::new();
    let mut rest_of_code = String::new();
    let mut rest = code.as_str();
    // use statements (which may span lines), taken out of the code
    while let Some(at) = rest.find("use ") {
        let before = &rest[..at];
        let starts_statement = before
            .chars()
            .last()
            .is_none_or(|c| c.is_whitespace() || c == ';' || c == '{' || c == '}' || c == ')');
        let after = &rest[at + 4..];
        if !starts_statement {
            rest_of_code.push_str(&rest[..at + 4]);
            rest = after;
            continue;
        }
        let end = after.find(';').unwrap_or(after.len());
        let trimmed = before.trim_end();
        let public = trimmed.ends_with("pub") || trimmed.ends_with("pub(crate)");
        let keep = trimmed
            .strip_suffix("pub(crate)")
            .or_else(|| trimmed.strip_suffix("pub"))
            .unwrap_or(before);
        rest_of_code.push_str(keep);
        for p in expand(&after[..end]) {
            out.push((p, public));
        }
        rest = &after[(end + 1).min(after.len())..];
    }
    rest_of_code.push_str(rest);
    // paths in the code itself
    let chars: Vec<char> = rest_of_code.chars().collect();
    let mut heads = vec!["crate::".to_string(), "super::".to_string()];
    heads.extend(kids.iter().map(|k| format!("{k}::")));
    let mut i = 0;
    while i < chars.len() {
        let word_start = i == 0
            || !(chars[i - 1].is_alphanumeric() || chars[i - 1] == '_' || chars[i - 1] == ':');
        let mut next = i + 1;
        if word_start {
            let here: String = chars[i..(i + 40).min(chars.len())].iter().collect();
            if let Some(head) = heads.iter().find(|h| here.starts_with(h.as_str())) {
                let mut j = i + head.chars().count();
                while j < chars.len() && (chars[j].is_alphanumeric() || "_:".contains(chars[j])) {
                    j += 1;
                }
                let p: String = chars[i..j].iter().collect();
                out.push((p.trim_end_matches(':').to_string(), false));
                next = j;
            }
        }
        i = next;
    }
    out.into_iter()
        .map(|(p, public)| {
            let first = p.split("::").next().unwrap_or_default();
            if kids.iter().any(|k| k == first) {
                (format!("self::{p}"), public)
            } else {
                (p, public)
            }
        })
        .collect()
}

/// The file a path leads to, from `file` in the crate rooted at `src`: the longest prefix that
/// is a file (`a/b.rs` or `a/b/mod.rs`), or the folder's `mod.rs` (the crate root for the top);
/// `None` for another crate's path.
fn resolve(src: &Path, file: &Path, path: &str) -> Option<PathBuf> {
    let rel = file.strip_prefix(src).unwrap();
    let is_mod = rel
        .file_name()
        .is_some_and(|n| n == "mod.rs" || n == "lib.rs" || n == "main.rs");
    let dirs_of = |p: &Path| -> Vec<String> {
        p.components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect()
    };
    let mut segments: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
    // the module this file is, as folders below `src`
    let mut module = dirs_of(rel.parent().unwrap());
    if !is_mod {
        module.push(rel.file_stem().unwrap().to_string_lossy().into_owned());
    }
    // the module the path starts from
    let mut base: Vec<String> = match segments.first() {
        Some(&"crate") => Vec::new(),
        Some(&"self") => module,
        Some(&"super") => {
            while segments.get(1) == Some(&"super") {
                segments.remove(0);
                module.pop();
            }
            module.pop();
            module
        }
        _ => return None,
    };
    segments.remove(0);
    let top = if src.join("lib.rs").exists() {
        "lib.rs"
    } else {
        "main.rs"
    };
    let module_file = |dirs: &[String]| -> Option<PathBuf> {
        if dirs.is_empty() {
            return Some(src.join(top));
        }
        let dir: PathBuf = dirs.iter().collect();
        let (f, m) = (
            src.join(dir.with_extension("rs")),
            src.join(&dir).join("mod.rs"),
        );
        if f.exists() {
            Some(f)
        } else if m.exists() {
            Some(m)
        } else {
            None
        }
    };
    let mut best = module_file(&base)?;
    for s in segments {
        base.push(s.to_string());
        match module_file(&base) {
            Some(f) => best = f,
            None => break,
        }
    }
    Some(best)
}

/// The import graph of a crate's files: file → files it imports (re-exports of a `mod.rs`'s own
/// children aside).
fn graph(src: &Path) -> BTreeMap<PathBuf, BTreeSet<PathBuf>> {
    let mut g = BTreeMap::new();
    for file in sources(src) {
        let text = std::fs::read_to_string(&file).unwrap();
        let mut to = BTreeSet::new();
        for (p, public) in paths(&text) {
            let Some(target) = resolve(src, &file, &p) else {
                continue;
            };
            let is_mod = file
                .file_name()
                .is_some_and(|n| n == "mod.rs" || n == "lib.rs");
            let child = target.parent() == file.parent()
                || target.parent().and_then(Path::parent) == file.parent();
            if target == file || (is_mod && public && child) {
                continue;
            }
            to.insert(target);
        }
        g.insert(file, to);
    }
    g
}

/// Files that import each other in a circle (each circle once, as its files).
fn circles(g: &BTreeMap<PathBuf, BTreeSet<PathBuf>>) -> Vec<Vec<PathBuf>> {
    // Tarjan's strongly connected components
    struct State<'a> {
        g: &'a BTreeMap<PathBuf, BTreeSet<PathBuf>>,
        index: BTreeMap<&'a PathBuf, usize>,
        low: BTreeMap<&'a PathBuf, usize>,
        stack: Vec<&'a PathBuf>,
        on: BTreeSet<&'a PathBuf>,
        out: Vec<Vec<PathBuf>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a PathBuf) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on.insert(v);
        for w in s.g.get(v).into_iter().flatten() {
            let Some((w, _)) = s.g.get_key_value(w) else {
                continue;
            };
            if !s.index.contains_key(w) {
                visit(s, w);
                let l = s.low[w].min(s.low[v]);
                s.low.insert(v, l);
            } else if s.on.contains(w) {
                let l = s.index[w].min(s.low[v]);
                s.low.insert(v, l);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on.remove(w);
                component.push(w.clone());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                s.out.push(component);
            }
        }
    }
    let mut s = State {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in g.keys() {
        if !s.index.contains_key(v) {
            visit(&mut s, v);
        }
    }
    s.out
}

/// The top-level module a file of `src/` belongs to (`data` for `src/data/batch.rs`).
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

#[test]
fn the_map_in_lib_rs_is_the_docs_map_and_names_every_module() {
    let lib = std::fs::read_to_string(root().join("src/lib.rs")).unwrap();
    let docs = std::fs::read_to_string(root().join("docs/architecture.md")).unwrap();
    let map = layers(&lib);
    assert!(map.len() >= 5, "src/lib.rs lists no layers: {map:?}");
    assert_eq!(
        map,
        layers(&docs),
        "docs/architecture.md's layers differ from src/lib.rs's"
    );
    let numbers: Vec<usize> = map.iter().map(|l| l.0).collect();
    assert_eq!(
        numbers,
        (1..=map.len()).collect::<Vec<_>>(),
        "layers numbered 1, 2, …"
    );
    let listed: BTreeSet<String> = map.iter().flat_map(|l| l.1.clone()).collect();
    let declared: BTreeSet<String> = lib
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod "))
        .map(|m| m.trim_end_matches(';').to_string())
        .collect();
    assert_eq!(
        listed, declared,
        "the layers list every module lib.rs declares, once"
    );
}

#[test]
fn every_import_points_down_the_layers() {
    let src = root().join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    let layer: BTreeMap<String, usize> = layers(&lib)
        .into_iter()
        .flat_map(|(n, ms)| ms.into_iter().map(move |m| (m, n)))
        .collect();
    let mut upward = Vec::new();
    for (file, targets) in graph(&src) {
        let from = module_of(&src, &file);
        let Some(&here) = layer.get(&from) else {
            continue; // lib.rs, main.rs
        };
        for target in targets {
            let to = module_of(&src, &target);
            match layer.get(&to) {
                Some(&there) if to != from && there >= here => upward.push(format!(
                    "{} (layer {here}) imports {} (layer {there})",
                    file.strip_prefix(&root()).unwrap().display(),
                    target.strip_prefix(&root()).unwrap().display()
                )),
                _ => {}
            }
        }
    }
    assert!(
        upward.is_empty(),
        "imports that do not point down:\n{}",
        upward.join("\n")
    );
}

#[test]
fn no_source_files_import_each_other_in_a_circle() {
    for src in [root().join("src"), root().join("kernels/src")] {
        let found = circles(&graph(&src));
        let shown: Vec<String> = found
            .iter()
            .map(|c| {
                c.iter()
                    .map(|f| f.strip_prefix(root()).unwrap().display().to_string())
                    .collect::<Vec<_>>()
                    .join(" ↔ ")
            })
            .collect();
        assert!(shown.is_empty(), "import circles:\n{}", shown.join("\n"));
    }
}

#[test]
fn the_checks_see_imports_and_circles() {
    // the parser, on what the house's files hold
    assert_eq!(
        expand("crate::data::{self, batch::{Batch, Normalizer}, ImageSet}"),
        [
            "crate::data::self",
            "crate::data::batch::Batch",
            "crate::data::batch::Normalizer",
            "crate::data::ImageSet"
        ]
    );
    let found = paths(
        "mod k;\npub use k::K;\nuse crate::a::b; // crate::z\nfn f() { crate::c::d(); \"crate::e\"; super::f::g(); k::h(); }",
    );
    assert_eq!(
        found,
        [
            ("self::k::K".to_string(), true),
            ("crate::a::b".to_string(), false),
            ("crate::c::d".to_string(), false),
            ("super::f::g".to_string(), false),
            ("self::k::h".to_string(), false),
        ]
    );
    // a test module's imports are not the house's
    let found =
        paths("use crate::a::b;\n#[cfg(test)]\nmod tests {\n    use crate::x::{y, z};\n}\n");
    assert_eq!(found, [("crate::a::b".to_string(), false)]);
    // a circle of two files, and the resolution of crate and super paths
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::create_dir_all(src.join("m")).unwrap();
    std::fs::write(src.join("lib.rs"), "pub mod m;\n").unwrap();
    std::fs::write(
        src.join("m/mod.rs"),
        "pub mod a;\npub mod b;\npub use a::A;\n",
    )
    .unwrap();
    std::fs::write(src.join("m/a.rs"), "use super::b::B;\npub struct A;\n").unwrap();
    std::fs::write(src.join("m/b.rs"), "use crate::m::a::A;\npub struct B;\n").unwrap();
    let g = graph(src);
    assert!(g[&src.join("m/a.rs")].contains(&src.join("m/b.rs")));
    assert!(g[&src.join("m/b.rs")].contains(&src.join("m/a.rs")));
    assert!(
        g[&src.join("m/mod.rs")].is_empty(),
        "a mod.rs's re-exports are no imports"
    );
    assert_eq!(circles(&g).len(), 1);
    std::fs::write(src.join("m/b.rs"), "pub struct B;\n").unwrap();
    assert!(circles(&graph(src)).is_empty());
    std::fs::write(
        src.join("m/mod.rs"),
        "pub mod a;\npub mod b;\npub struct M;\nfn f() { a::A; }\n",
    )
    .unwrap();
    std::fs::write(src.join("m/a.rs"), "use super::M;\npub struct A;\n").unwrap();
    assert_eq!(
        circles(&graph(src)).len(),
        1,
        "a mod.rs calling a child that uses its types"
    );
}
