//! The import direction between herd's modules, as ARCHITECTURE.md's "Layers" tables state it.
//!
//! Every `crate::…` and `super::…` path in the non-test code under `src/` is resolved to the
//! module it names; a path into a module that its table row does not name fails this test with
//! the file and line. The tables are read from ARCHITECTURE.md itself, so the document and the
//! check cannot disagree: a module without a row fails, a row naming an import that no code
//! makes fails (the table is the graph, not a wish list), and a table with a cycle fails. Test
//! code (`tests.rs` files and `#[cfg(test)] mod tests` blocks) may use any module, as a consumer
//! would.
//!
//! Run it alone with `cargo test --test layers`.
// A check: an unreadable source file or document panics with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// A table: module → the modules it may import.
type Allowed = BTreeMap<String, BTreeSet<String>>;

const EVERYTHING: &str = "everything";

#[test]
fn no_module_imports_against_the_documented_direction() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = fs::read_to_string(root.join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let (top, sim) = tables(&doc);
    let top_modules = declared_modules(&root.join("src/lib.rs"));
    let sim_modules = declared_modules(&root.join("src/sim/mod.rs"));
    let mut problems = Vec::new();
    problems
        .extend(cycle(&top).map(|c| format!("ARCHITECTURE.md: the Layers table has a cycle: {c}")));
    problems.extend(
        cycle(&sim)
            .map(|c| format!("ARCHITECTURE.md: the simulator's Layers table has a cycle: {c}")),
    );
    let mut used = Arrows::default();
    for m in &top_modules {
        if !top.contains_key(m) {
            problems.push(format!(
                "ARCHITECTURE.md: module `{m}` has no row in the Layers table"
            ));
        }
    }
    for m in &sim_modules {
        if !sim.contains_key(m) {
            problems.push(format!(
                "ARCHITECTURE.md: module `sim::{m}` has no row in the simulator's Layers table"
            ));
        }
    }
    for file in rust_files(&root.join("src")) {
        let relative = file.strip_prefix(root.join("src")).expect("under src");
        let Some(module) = module_path(relative) else {
            continue;
        };
        let text = fs::read_to_string(&file).expect("source file");
        for (line, path) in paths(&strip_tests(&strip_comments_and_strings(&text))) {
            let Some(target) = resolve(&module, &path) else {
                continue;
            };
            let at = format!("src/{}:{line}", relative.display());
            let tables = Tables {
                top: &top,
                top_modules: &top_modules,
                sim: &sim,
                sim_modules: &sim_modules,
            };
            if let Some(problem) = check(&module, &target, &tables, &mut used) {
                problems.push(format!("{at}: {problem}"));
            }
        }
    }
    problems.extend(unused(&top, &used.top, ""));
    problems.extend(unused(&sim, &used.sim, "sim::"));
    assert!(
        problems.is_empty(),
        "imports against ARCHITECTURE.md's Layers tables:\n{}",
        problems.join("\n")
    );
}

struct Tables<'a> {
    top: &'a Allowed,
    top_modules: &'a BTreeSet<String>,
    sim: &'a Allowed,
    sim_modules: &'a BTreeSet<String>,
}

/// The imports the code makes, (from, to), at each table's granularity.
#[derive(Default)]
struct Arrows {
    top: BTreeSet<(String, String)>,
    sim: BTreeSet<(String, String)>,
}

/// What is wrong with `from` naming `to`, if anything; records the arrow.
fn check(from: &[String], to: &[String], t: &Tables, used: &mut Arrows) -> Option<String> {
    let (a, b) = (from.first()?, to.first()?);
    if a != b {
        if !t.top_modules.contains(b) {
            return None;
        }
        used.top.insert((a.clone(), b.clone()));
        return (!allows(t.top, a, b)).then(|| format!("`{a}` imports `{b}`"));
    }
    if a != "sim" {
        return None;
    }
    // Inside the simulator: `sim`'s own root (mod.rs) re-exports and holds shared helpers, so it
    // may import every part and every part may use it.
    let (x, y) = (from.get(1)?, to.get(1)?);
    if x == y || !t.sim_modules.contains(x) || !t.sim_modules.contains(y) {
        return None;
    }
    used.sim.insert((x.clone(), y.clone()));
    (!allows(t.sim, x, y)).then(|| format!("`sim::{x}` imports `sim::{y}`"))
}

/// Rows that name an import no code makes.
fn unused(table: &Allowed, used: &BTreeSet<(String, String)>, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (from, allowed) in table {
        for to in allowed.iter().filter(|to| *to != EVERYTHING) {
            if !used.contains(&(from.clone(), to.clone())) {
                out.push(format!(
                    "ARCHITECTURE.md: `{prefix}{from}` may import `{prefix}{to}`, but no code does; drop it from the row"
                ));
            }
        }
    }
    out
}

/// A cycle among the table's arrows, as `a → b → a`, if there is one.
fn cycle(table: &Allowed) -> Option<String> {
    fn visit(
        node: &str,
        table: &Allowed,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<String> {
        if let Some(at) = path.iter().position(|p| p == node) {
            let mut c = path[at..].to_vec();
            c.push(node.to_owned());
            return Some(c.join(" → "));
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in table.get(node).into_iter().flatten() {
            if next != EVERYTHING
                && let Some(c) = visit(next, table, path, done)
            {
                return Some(c);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    table
        .keys()
        .find_map(|k| visit(k, table, &mut Vec::new(), &mut done))
}

fn allows(table: &Allowed, from: &str, to: &str) -> bool {
    table
        .get(from)
        .is_some_and(|ok| ok.contains(to) || ok.contains(EVERYTHING))
}

/// The two tables under `## Layers`: rows `` | `module` | `a`, `b` | ``. Rows naming `sim::x`
/// form the simulator's table.
fn tables(doc: &str) -> (Allowed, Allowed) {
    let section = doc
        .split("\n## ")
        .find(|s| s.starts_with("Layers"))
        .expect("ARCHITECTURE.md has a `## Layers` section");
    let (mut top, mut sim) = (Allowed::new(), Allowed::new());
    for line in section.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let (Some(module), Some(imports)) = (cells.get(1), cells.get(2)) else {
            continue;
        };
        let module = module.trim_matches('`');
        let allowed: BTreeSet<String> = backticked(imports)
            .into_iter()
            .map(|m| m.trim_start_matches("sim::").to_owned())
            .collect();
        match module.strip_prefix("sim::") {
            Some(part) => sim.insert(part.to_owned(), allowed),
            None => top.insert(module.to_owned(), allowed),
        };
    }
    (top, sim)
}

fn backticked(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

/// `mod x;` and `pub mod x;` declarations of a module file.
fn declared_modules(file: &Path) -> BTreeSet<String> {
    let text = fs::read_to_string(file).expect("module file");
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            let rest = l
                .strip_prefix("pub mod ")
                .or_else(|| l.strip_prefix("mod "))?;
            rest.strip_suffix(';').map(str::to_owned)
        })
        .collect()
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).expect("readable dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// The module path of a file under `src/` (`broker/alpaca/mod.rs` → `broker::alpaca`); `None`
/// for the crate roots and for test files.
fn module_path(relative: &Path) -> Option<Vec<String>> {
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop()?;
    if matches!(last.as_str(), "lib.rs" | "main.rs") && parts.is_empty() {
        return None;
    }
    if last == "tests.rs" {
        return None;
    }
    if last != "mod.rs" {
        parts.push(last.trim_end_matches(".rs").to_owned());
    }
    Some(parts)
}

/// The text with comments and string and char literals blanked out (newlines kept, so line
/// numbers stay right): a path in a doc comment or a string is not an import.
fn strip_comments_and_strings(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
        } else if c == 'r' && (next == Some('"') || next == Some('#')) && !ident_before(&chars, i) {
            let hashes = chars[i + 1..].iter().take_while(|c| **c == '#').count();
            if chars.get(i + 1 + hashes) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            i += 2 + hashes;
            while i < chars.len() {
                if chars[i] == '"' && chars[i + 1..].iter().take(hashes).all(|c| *c == '#') {
                    i += 1 + hashes;
                    break;
                }
                out.push(blank(chars[i]));
                i += 1;
            }
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    i += 1;
                }
                if let Some(&c) = chars.get(i) {
                    out.push(blank(c));
                }
                i += 1;
            }
            i += 1;
        } else if c == '\'' && next == Some('\\') {
            // An escaped char literal: '\n', '\'', '\u{1F600}'.
            i += 2;
            while i < chars.len() && chars[i] != '\'' {
                i += 1;
            }
            i += 1;
        } else if c == '\'' && chars.get(i + 2) == Some(&'\'') {
            i += 3;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn ident_before(chars: &[char], i: usize) -> bool {
    i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_')
}

/// Cuts the `#[cfg(test)] mod …` block that closes a source file.
fn strip_tests(code: &str) -> String {
    let mut at = 0;
    while let Some(found) = code[at..].find("#[cfg(test)]") {
        let start = at + found;
        let after = code[start + "#[cfg(test)]".len()..].trim_start();
        if after.starts_with("mod ") || after.starts_with("pub(crate) mod ") {
            return code[..start].to_owned();
        }
        at = start + 1;
    }
    code.to_owned()
}

/// Every `crate::…` / `super::…` path with its line, brace groups expanded.
fn paths(code: &str) -> Vec<(usize, Vec<String>)> {
    let tokens = tokenize(code);
    let mut out = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let (line, ref t) = tokens[i];
        let starts = (t == "crate" || t == "super")
            && tokens.get(i + 1).is_some_and(|(_, t)| t == "::")
            && !(i > 0 && tokens[i - 1].1 == "::");
        if starts {
            let mut prefix = vec![t.clone()];
            let mut j = i + 1;
            let mut found = Vec::new();
            tree(&tokens, &mut j, &mut prefix, &mut found);
            out.extend(found.into_iter().map(|p| (line, p)));
            i = j;
        } else {
            i += 1;
        }
    }
    out
}

/// Reads `::seg::seg` or `::{a, b::c}` after `prefix`, pushing every complete path.
fn tree(
    tokens: &[(usize, String)],
    j: &mut usize,
    prefix: &mut Vec<String>,
    out: &mut Vec<Vec<String>>,
) {
    let depth = prefix.len();
    while tokens.get(*j).is_some_and(|(_, t)| t == "::") {
        *j += 1;
        match tokens.get(*j).map(|(_, t)| t.as_str()) {
            Some("{") => {
                *j += 1;
                loop {
                    match tokens.get(*j).map(|(_, t)| t.as_str()) {
                        Some("}") => {
                            *j += 1;
                            break;
                        }
                        Some(",") => *j += 1,
                        Some(name) if is_ident(name) => {
                            prefix.push(name.to_owned());
                            *j += 1;
                            tree(tokens, j, prefix, out);
                            prefix.pop();
                        }
                        Some(_) => *j += 1,
                        None => break,
                    }
                }
                prefix.truncate(depth);
                return;
            }
            Some(name) if is_ident(name) => {
                prefix.push(name.to_owned());
                *j += 1;
            }
            _ => break,
        }
    }
    out.push(prefix.clone());
    prefix.truncate(depth);
}

fn is_ident(t: &str) -> bool {
    t.chars().all(|c| c.is_alphanumeric() || c == '_')
}

fn tokenize(code: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut line = 1;
    let chars: Vec<char> = code.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push((line, chars[start..i].iter().collect()));
        } else if c == ':' && chars.get(i + 1) == Some(&':') {
            out.push((line, "::".to_owned()));
            i += 2;
        } else {
            out.push((line, c.to_string()));
            i += 1;
        }
    }
    out
}

/// The absolute module path a `crate::`/`super::` path names, from the file's module.
fn resolve(module: &[String], path: &[String]) -> Option<Vec<String>> {
    let mut segments = path.iter().peekable();
    let mut base: Vec<String> = match segments.next()?.as_str() {
        "crate" => Vec::new(),
        "super" => {
            let mut b = module.to_vec();
            b.pop()?;
            b
        }
        _ => return None,
    };
    while segments.peek().is_some_and(|s| *s == "super") {
        segments.next();
        base.pop()?;
    }
    base.extend(segments.cloned());
    Some(base)
}
