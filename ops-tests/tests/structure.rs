//! The tree's structure rules, checked on every `cargo test`:
//!
//! - no two modules of one crate import each other, directly or around a
//!   loop: a `use` cycle means a type lives in the wrong module;
//! - no `.rs` file over [`MAX_LINES`] lines outside tests, unless its
//!   leading `//!` block has a line starting with [`LONG_FILE_MARKER`]
//!   followed by the reason it stays one file.
//!
//! The cycles and long files the tree had when the rules came in are listed
//! in [`KNOWN_CYCLES`] and [`KNOWN_LONG_FILES`]. The check fails on any
//! cycle or long file not listed, and on a listed one that is gone, so the
//! lists only shrink: remove an entry in the change that fixes it.
//!
//! The module graph: each file of a crate's `src/` is a module (its path
//! gives the name: `src/a/b.rs` and `src/a/b/mod.rs` are `a::b`), and so is
//! each inline `mod NAME { ... }`. An edge goes from a module to the module
//! a `crate::`, `super::` or `self::` path names, in `use` items and in
//! code (the longest prefix that is a module). A module's use of its own
//! descendants is not an edge: a parent that re-exports or calls its
//! children is the tree itself, as its `mod` lines are. Comments, strings
//! and character literals are skipped.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use ops_tests::repo;

/// Longer than this, a file holds more than one concept or says why not.
const MAX_LINES: usize = 600;

/// A line of a file's leading `//!` block that starts with this, followed
/// by a reason, lets it be longer than [`MAX_LINES`].
const LONG_FILE_MARKER: &str = "//! Long file:";

/// The cycles of today's tree, by crate folder and the modules of each
/// (sorted), being removed on other branches.
const KNOWN_CYCLES: &[(&str, &[&str])] = &[];

/// The long files of today's tree without a written reason, being split on
/// other branches.
const KNOWN_LONG_FILES: &[&str] = &[];

#[test]
fn no_module_cycle_but_the_known_ones() {
    let mut found = BTreeSet::new();
    let mut messages = Vec::new();
    for member in workspace_members() {
        let files = crate_sources(&repo().join(&member));
        assert!(!files.is_empty(), "{member}: no .rs file under src/");
        for root in crate_roots(&files) {
            let graph = ModuleGraph::new(&files, &root);
            for cycle in graph.cycles() {
                let members: Vec<String> = cycle.members.iter().cloned().collect();
                if !found.insert((member.clone(), members.clone())) {
                    continue; // the same modules, reached from lib.rs and main.rs
                }
                let known = KNOWN_CYCLES
                    .iter()
                    .any(|(c, m)| *c == member && *m == members.as_slice());
                if !known {
                    messages.push(format!(
                        "{member}: modules import each other: {}",
                        cycle.path.join(" -> ")
                    ));
                }
            }
        }
    }
    for (member, modules) in KNOWN_CYCLES {
        let listed = (
            member.to_string(),
            modules.iter().map(|m| m.to_string()).collect(),
        );
        if !found.contains(&listed) {
            messages.push(format!(
                "{member}: the known cycle {modules:?} is gone: remove it from KNOWN_CYCLES"
            ));
        }
    }
    assert!(messages.is_empty(), "{}", messages.join("\n"));
}

#[test]
fn no_long_file_without_a_reason_but_the_known_ones() {
    let mut long = BTreeSet::new();
    let mut messages = Vec::new();
    for path in rust_files(&repo()) {
        let relative = relative(&path);
        if is_test_file(&relative) {
            continue;
        }
        let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{relative}: {e}"));
        let lines = text.lines().count();
        if lines <= MAX_LINES || has_long_file_reason(&text) {
            continue;
        }
        long.insert(relative.clone());
        if !KNOWN_LONG_FILES.contains(&relative.as_str()) {
            messages.push(format!(
                "{relative}: {lines} lines, more than {MAX_LINES}: split it, or give the reason \
                 in a line starting {LONG_FILE_MARKER:?} in its leading //! block"
            ));
        }
    }
    for known in KNOWN_LONG_FILES {
        if !long.contains(*known) {
            messages.push(format!(
                "{known} is no longer a long file without a reason: remove it from KNOWN_LONG_FILES"
            ));
        }
    }
    assert!(messages.is_empty(), "{}", messages.join("\n"));
}

/// The workspace members of the root `Cargo.toml`, as written there.
fn workspace_members() -> Vec<String> {
    let manifest = fs::read_to_string(repo().join("Cargo.toml")).expect("root Cargo.toml");
    let start = manifest.find("members").expect("workspace members");
    let list = &manifest[start..];
    let list = &list[list.find('[').expect("members list")..list.find(']').expect("list end")];
    let members: Vec<String> = list
        .split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    assert!(
        members.len() > 3,
        "members parsed from Cargo.toml: {members:?}"
    );
    members
}

/// Every `.rs` file of the repository but build output and the lab cache.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("directory entry").path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if path.is_dir() {
                if !matches!(name, "target" | ".git" | ".cache" | "node_modules") {
                    stack.push(path);
                }
            } else if name.ends_with(".rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn relative(path: &Path) -> String {
    path.strip_prefix(repo())
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned()
}

/// Tests may be long: a crate's `tests/`, a `tests.rs` module and the
/// files of a `tests/` module folder.
fn is_test_file(relative: &str) -> bool {
    let parts: Vec<&str> = relative.split('/').collect();
    parts.last() == Some(&"tests.rs") || parts[..parts.len() - 1].contains(&"tests")
}

/// Whether the leading `//!` block (after blank lines) gives a reason.
fn has_long_file_reason(text: &str) -> bool {
    text.lines()
        .skip_while(|line| line.trim().is_empty())
        .take_while(|line| line.starts_with("//!"))
        .any(|line| {
            line.strip_prefix(LONG_FILE_MARKER)
                .is_some_and(|reason| !reason.trim().is_empty())
        })
}

/// A crate's `src/` files by their path under `src/` (`a/b.rs`).
fn crate_sources(dir: &Path) -> BTreeMap<String, String> {
    let src = dir.join("src");
    rust_files(&src)
        .into_iter()
        .map(|path| {
            let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
            let name = path
                .strip_prefix(&src)
                .expect("under src")
                .to_string_lossy();
            (name.into_owned(), text)
        })
        .collect()
}

/// The crate roots among `files`: the library, the binary, `bin/*.rs`.
fn crate_roots(files: &BTreeMap<String, String>) -> Vec<String> {
    files
        .keys()
        .filter(|f| {
            *f == "lib.rs"
                || *f == "main.rs"
                || (f.starts_with("bin/") && f.matches('/').count() == 1)
        })
        .cloned()
        .collect()
}

/// The module of `file` (a path under `src/`) with crate root `root`:
/// `a/b.rs` and `a/b/mod.rs` are `a::b`; the root is the empty path.
fn module_of_file(file: &str, root: &str) -> Option<String> {
    if file == root {
        return Some(String::new());
    }
    if file.starts_with("bin/") || file == "lib.rs" || file == "main.rs" {
        return None; // another crate root
    }
    let stem = file.strip_suffix(".rs")?;
    let stem = stem.strip_suffix("/mod").unwrap_or(stem);
    Some(stem.replace('/', "::"))
}

/// A cycle: the modules of one strongly connected part of the graph, and
/// one loop through them to show.
#[derive(Debug)]
struct Cycle {
    members: BTreeSet<String>,
    path: Vec<String>,
}

/// The modules of one crate and which modules each one names.
#[derive(Debug, Default)]
struct ModuleGraph {
    edges: BTreeMap<String, BTreeSet<String>>,
}

impl ModuleGraph {
    /// The graph of the crate rooted at `root` among `files` (path under
    /// `src/` to text).
    fn new(files: &BTreeMap<String, String>, root: &str) -> Self {
        let mut modules = BTreeSet::new();
        let mut parsed = Vec::new();
        for (file, text) in files {
            let Some(module) = module_of_file(file, root) else {
                continue;
            };
            let code = strip_comments_and_literals(text);
            for (inline, _) in inline_modules(&code, &module) {
                modules.insert(inline);
            }
            modules.insert(module.clone());
            parsed.push((module, code));
        }
        let mut graph = ModuleGraph::default();
        for (module, code) in &parsed {
            for (from, body) in inline_modules(code, module) {
                for path in referenced_paths(&body) {
                    let Some(target) = resolve(&from, &path, &modules) else {
                        continue;
                    };
                    if !is_descendant_or_self(&target, &from) {
                        graph.edges.entry(from.clone()).or_default().insert(target);
                    }
                }
                graph.edges.entry(from).or_default();
            }
        }
        graph
    }

    /// The strongly connected parts of more than one module (Tarjan's
    /// algorithm), each with a loop through it.
    fn cycles(&self) -> Vec<Cycle> {
        let nodes: Vec<&String> = self.edges.keys().collect();
        let index_of: BTreeMap<&String, usize> =
            nodes.iter().enumerate().map(|(i, n)| (*n, i)).collect();
        let mut state = Tarjan {
            index: vec![None; nodes.len()],
            low: vec![0; nodes.len()],
            on_stack: vec![false; nodes.len()],
            stack: Vec::new(),
            next: 0,
            parts: Vec::new(),
        };
        let successors = |n: usize| -> Vec<usize> {
            self.edges[nodes[n]]
                .iter()
                .filter_map(|t| index_of.get(t).copied())
                .collect()
        };
        for n in 0..nodes.len() {
            if state.index[n].is_none() {
                state.visit(n, &successors);
            }
        }
        state
            .parts
            .into_iter()
            .filter(|part| part.len() > 1)
            .map(|part| {
                let members: BTreeSet<String> = part.iter().map(|&n| nodes[n].clone()).collect();
                let path = self.loop_through(&members);
                Cycle { members, path }
            })
            .collect()
    }

    /// A loop from the first member back to it, within `members`.
    fn loop_through(&self, members: &BTreeSet<String>) -> Vec<String> {
        let start = members.iter().next().expect("a part has members").clone();
        // Breadth-first from the start's successors back to the start.
        let mut previous: BTreeMap<String, String> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([start.clone()]);
        while let Some(node) = queue.pop_front() {
            for next in self.edges.get(&node).into_iter().flatten() {
                if !members.contains(next) || previous.contains_key(next) {
                    continue;
                }
                previous.insert(next.clone(), node.clone());
                if *next == start {
                    let mut path = vec![display(&start)];
                    let mut at = node.clone();
                    while at != start {
                        path.push(display(&at));
                        at = previous[&at].clone();
                    }
                    path.push(display(&start));
                    path.reverse();
                    return path;
                }
                queue.push_back(next.clone());
            }
        }
        members.iter().map(|m| display(m)).collect()
    }
}

fn display(module: &str) -> String {
    if module.is_empty() {
        "crate".into()
    } else {
        module.to_string()
    }
}

struct Tarjan {
    index: Vec<Option<usize>>,
    low: Vec<usize>,
    on_stack: Vec<bool>,
    stack: Vec<usize>,
    next: usize,
    parts: Vec<Vec<usize>>,
}

impl Tarjan {
    fn visit(&mut self, n: usize, successors: &dyn Fn(usize) -> Vec<usize>) {
        self.index[n] = Some(self.next);
        self.low[n] = self.next;
        self.next += 1;
        self.stack.push(n);
        self.on_stack[n] = true;
        for m in successors(n) {
            match self.index[m] {
                None => {
                    self.visit(m, successors);
                    self.low[n] = self.low[n].min(self.low[m]);
                }
                Some(index) if self.on_stack[m] => self.low[n] = self.low[n].min(index),
                Some(_) => {}
            }
        }
        if Some(self.low[n]) == self.index[n] {
            let mut part = Vec::new();
            while let Some(m) = self.stack.pop() {
                self.on_stack[m] = false;
                part.push(m);
                if m == n {
                    break;
                }
            }
            self.parts.push(part);
        }
    }
}

fn is_descendant_or_self(module: &str, of: &str) -> bool {
    of.is_empty() || module == of || module.starts_with(&format!("{of}::"))
}

/// `module`'s own code and that of each inline `mod NAME { ... }` in it,
/// as (module path, code) pairs; an inline module's code is blanked out of
/// its parent's.
fn inline_modules(code: &str, module: &str) -> Vec<(String, String)> {
    let bytes = code.as_bytes();
    let mut found = Vec::new();
    let mut own = code.to_string().into_bytes();
    let mut search = 0;
    while let Some(at) = find_word(code, "mod", search) {
        search = at + 3;
        let rest = &code[search..];
        let name: String = rest
            .trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if name.is_empty() {
            continue;
        }
        let after = rest.trim_start()[name.len()..].trim_start();
        if !after.starts_with('{') {
            continue; // `mod name;`: a file of its own
        }
        let open = code.len() - after.len();
        let mut depth = 0usize;
        let mut close = bytes.len();
        for (i, &b) in bytes.iter().enumerate().skip(open) {
            match b {
                b'{' => depth += 1,
                b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        close = i;
                        break;
                    }
                }
                _ => {}
            }
        }
        let path = if module.is_empty() {
            name
        } else {
            format!("{module}::{name}")
        };
        let body = &code[open + 1..close.min(code.len())];
        for (inner, inner_code) in inline_modules(body, &path) {
            found.push((inner, inner_code));
        }
        for b in &mut own[open + 1..close.min(code.len())] {
            if *b != b'\n' {
                *b = b' ';
            }
        }
        search = close.min(code.len());
    }
    let own = String::from_utf8(own).expect("only ASCII blanked");
    let mut all = vec![(module.to_string(), own)];
    all.extend(found);
    all
}

/// Where `word` starts as a whole word in `code`, from `from` on.
fn find_word(code: &str, word: &str, from: usize) -> Option<usize> {
    let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = code.as_bytes();
    let mut start = from;
    while let Some(found) = code.get(start..)?.find(word) {
        let at = start + found;
        let end = at + word.len();
        let before = at == 0 || !is_ident(bytes[at - 1]);
        let after = end >= bytes.len() || !is_ident(bytes[end]);
        if before && after {
            return Some(at);
        }
        start = end;
    }
    None
}

/// The `crate::`, `super::` and `self::` paths `code` names, as segment
/// lists: `use` trees expanded (`use crate::{a::X, b}` names `crate::a::X`
/// and `crate::b`), and paths written in code.
fn referenced_paths(code: &str) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    let mut rest = code.to_string();
    // `use` items first, blanked out once read.
    let mut search = 0;
    while let Some(at) = find_word(&rest, "use", search) {
        let Some(end) = rest[at..].find(';').map(|e| at + e) else {
            break;
        };
        expand_use_tree(&compact(&rest[at + 3..end]), &mut Vec::new(), &mut paths);
        rest.replace_range(at..end, &" ".repeat(end - at));
        search = end;
    }
    // Paths in code: `crate::a::b(..)`, `super::X`.
    for start in ["crate", "super", "self"] {
        let mut search = 0;
        while let Some(at) = find_word(&rest, start, search) {
            search = at + start.len();
            let mut segments = Vec::new();
            let mut tail = &rest[at..];
            loop {
                let segment: String = tail
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if segment.is_empty() {
                    break;
                }
                tail = &tail[segment.len()..];
                segments.push(segment);
                match tail.trim_start().strip_prefix("::") {
                    Some(t) => tail = t.trim_start(),
                    None => break,
                }
            }
            // `self` alone is a method receiver, not a path.
            if segments.len() > 1 {
                paths.push(segments);
            }
        }
    }
    paths
}

/// A `use` tree with no whitespace but the one space around `as`.
fn compact(tree: &str) -> String {
    let words: Vec<&str> = tree.split_whitespace().collect();
    let mut out = String::new();
    for (i, word) in words.iter().enumerate() {
        if *word == "as" || words.get(i.wrapping_sub(1)) == Some(&"as") {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// Expands a `use` tree without whitespace (`crate::{a::X,b::{Y,Z}}`).
fn expand_use_tree(tree: &str, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    let tree = tree.trim_start_matches("::");
    let mut depth = 0;
    let mut brace = None;
    for (i, c) in tree.char_indices() {
        match c {
            '{' if depth == 0 => {
                brace = Some(i);
                depth += 1;
            }
            '{' => depth += 1,
            '}' => depth -= 1,
            _ => {}
        }
        if brace.is_some() {
            break;
        }
    }
    match brace {
        None => {
            let path = tree.split(" as ").next().unwrap_or(tree);
            let mut full = prefix.clone();
            full.extend(
                path.split("::")
                    .filter(|s| !s.is_empty() && *s != "*")
                    .map(str::to_string),
            );
            if !full.is_empty() {
                out.push(full);
            }
        }
        Some(open) => {
            let head: Vec<String> = tree[..open]
                .split("::")
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
            let base = prefix.len();
            prefix.extend(head);
            for part in split_top_level(inner) {
                expand_use_tree(part, prefix, out);
            }
            prefix.truncate(base);
        }
    }
}

/// `a,b::{c,d},e` split at the commas outside braces.
fn split_top_level(list: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in list.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&list[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&list[start..]);
    parts.into_iter().filter(|p| !p.is_empty()).collect()
}

/// The module `path` names from module `from`, if it is one of `modules`
/// (the longest prefix of the path that is a module); paths into other
/// crates are none.
fn resolve(from: &str, path: &[String], modules: &BTreeSet<String>) -> Option<String> {
    let mut current: Vec<&str> = if from.is_empty() {
        Vec::new()
    } else {
        from.split("::").collect()
    };
    let mut segments = path.iter().map(String::as_str).peekable();
    match segments.peek() {
        Some(&"crate") => {
            current.clear();
            segments.next();
        }
        Some(&"super") | Some(&"self") => {}
        _ => return None,
    }
    while let Some(&segment) = segments.peek() {
        match segment {
            "super" => {
                current.pop()?;
            }
            "self" => {}
            _ => break,
        }
        segments.next();
    }
    let mut best = current.join("::");
    for segment in segments {
        current.push(segment);
        let candidate = current.join("::");
        if modules.contains(&candidate) {
            best = candidate;
        } else {
            break;
        }
    }
    Some(best)
}

/// `text` with comments, string literals and character literals replaced
/// by spaces (newlines kept), so braces and paths in them do not count.
fn strip_comments_and_literals(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
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
            // A raw string r"..", r#".."#.
            let mut j = i + 1;
            let mut hashes = 0;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            while j < chars.len() {
                if chars[j] == '"' && (1..=hashes).all(|k| chars.get(j + k) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            for &ch in &chars[i..j.min(chars.len())] {
                out.push(blank(ch));
            }
            i = j;
        } else if c == '"' {
            out.push(' ');
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                if i < chars.len() {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
            out.push(' ');
            i += 1;
        } else if c == '\'' {
            // A character literal ('x', '\n', '\u{..}'), or a lifetime.
            let end = if next == Some('\\') {
                chars[i + 2..]
                    .iter()
                    .position(|&ch| ch == '\'')
                    .map(|p| i + 2 + p)
            } else if chars.get(i + 2) == Some(&'\'') {
                Some(i + 2)
            } else {
                None
            };
            match end {
                Some(end) => {
                    for _ in i..=end {
                        out.push(' ');
                    }
                    i = end + 1;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
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

// The checks on small synthetic crates, so a cycle is known to be caught.

fn synthetic(files: &[(&str, &str)]) -> BTreeMap<String, String> {
    files
        .iter()
        .map(|(f, t)| (f.to_string(), t.to_string()))
        .collect()
}

fn cycles_of(files: &[(&str, &str)]) -> Vec<Vec<String>> {
    ModuleGraph::new(&synthetic(files), "lib.rs")
        .cycles()
        .into_iter()
        .map(|c| c.members.into_iter().collect())
        .collect()
}

#[test]
fn two_siblings_that_import_each_other_are_a_cycle() {
    let files = [
        ("lib.rs", "mod a;\nmod b;\npub use a::A;\n"),
        ("a.rs", "use crate::b::B;\npub struct A(B);\n"),
        ("b.rs", "use super::a::A;\npub struct B;\nfn f(_: &A) {}\n"),
    ];
    assert_eq!(cycles_of(&files), vec![vec!["a", "b"]]);
    let graph = ModuleGraph::new(&synthetic(&files), "lib.rs");
    let cycle = &graph.cycles()[0];
    assert_eq!(cycle.path, ["a", "b", "a"]);
}

#[test]
fn a_longer_loop_in_use_trees_and_code_paths_is_a_cycle() {
    let files = [
        ("lib.rs", "mod config;\nmod prober;\n"),
        ("config/mod.rs", "mod raw;\nmod validate;\n"),
        (
            "config/raw.rs",
            "use crate::{prober::{self, Probe as P}, other::X};\nuse crate::alias as _;\n",
        ),
        (
            "prober.rs",
            "fn f() { crate::config::validate::check(); }\n",
        ),
        (
            "config/validate.rs",
            "pub fn check() { let _ = super::raw::Raw::default(); }\n",
        ),
    ];
    assert_eq!(
        cycles_of(&files),
        vec![vec!["config::raw", "config::validate", "prober"]]
    );
}

#[test]
fn a_tree_without_loops_has_no_cycle() {
    let files = [
        // The root and a parent use their children; children use their
        // parent and siblings one way; an inline test module uses its file.
        ("lib.rs", "mod a;\nmod b;\npub use a::{A, inner::I};\n"),
        (
            "a/mod.rs",
            "pub mod inner;\nuse self::inner::I;\nuse crate::b::B;\npub struct A;\n",
        ),
        ("a/inner.rs", "use super::A;\npub struct I;\n"),
        (
            "b.rs",
            "pub struct B;\n#[cfg(test)]\nmod tests {\n    use super::*;\n    use crate::b::B;\n}\n",
        ),
    ];
    assert_eq!(cycles_of(&files), Vec::<Vec<String>>::new());
}

#[test]
fn paths_in_comments_strings_and_chars_are_not_imports() {
    let files = [
        ("lib.rs", "mod a;\nmod b;\n"),
        ("a.rs", "use crate::b::B;\n"),
        (
            "b.rs",
            "// use crate::a;\n/* crate::a::x */\nconst S: &str = \"crate::a::f\";\n\
             const R: &str = r#\"use crate::a;\"#;\nconst C: char = '{';\npub struct B;\n",
        ),
    ];
    assert_eq!(cycles_of(&files), Vec::<Vec<String>>::new());
}

#[test]
fn an_inline_module_is_a_module_of_its_own() {
    // `inner` uses `b`, and `b` uses `a::inner`: a cycle between `a::inner`
    // and `b` only, since `super` inside `inner` is `a`.
    let files = [
        ("lib.rs", "mod a;\nmod b;\n"),
        (
            "a.rs",
            "pub mod inner {\n    use super::super::b::B;\n    pub struct I;\n}\n",
        ),
        ("b.rs", "use crate::a::inner::I;\npub struct B;\n"),
    ];
    assert_eq!(cycles_of(&files), vec![vec!["a::inner", "b"]]);
}

#[test]
fn the_long_file_reason_must_lead_the_file() {
    assert!(has_long_file_reason(
        "//! The table encoder.\n//!\n//! Long file: one state machine.\nfn f() {}\n"
    ));
    assert!(!has_long_file_reason("//! Long file:\nfn f() {}\n"));
    assert!(!has_long_file_reason(
        "//! The table encoder.\nfn f() {}\n//! Long file: too late.\n"
    ));
    assert!(is_test_file("checker/src/prober/tests.rs"));
    assert!(is_test_file("ipvs/src/proc/conn/tests/more.rs"));
    assert!(is_test_file("exporter/tests/lab.rs"));
    assert!(!is_test_file("checker/src/daemon.rs"));
}
