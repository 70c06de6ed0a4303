//! Generates the op enums from `ops.txt` for both sides of the bridge: Rust enums with
//! names and codes (`ops_generated.rs`) and the C++ enum classes (`ops_generated.h`).

use std::fmt::Write;
use std::path::Path;

struct Op {
    name: String,
    doc: Option<String>,
}

/// The kinds in `ops.txt`: (kind, Rust enum, C++ enum class, what the enum is).
const KINDS: [(&str, &str, &str, &str); 3] = [
    (
        "unary",
        "Unary",
        "UnaryOp",
        "Element-wise operations of one argument.",
    ),
    (
        "binary",
        "Binary",
        "BinaryOp",
        "Element-wise operations of two (broadcast) arguments.",
    ),
    ("reduce", "Reduce", "ReduceOp", "Reductions over one axis."),
];

fn parse(text: &str) -> Vec<(String, Op)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|line| {
            let (fields, doc) = match line.split_once('#') {
                Some((f, d)) => (f, Some(d.trim().to_string())),
                None => (line, None),
            };
            let mut words = fields.split_whitespace();
            let (Some(kind), Some(name), None) = (words.next(), words.next(), words.next()) else {
                panic!("ops.txt: expected `kind name [# doc]`, got {line:?}");
            };
            assert!(
                KINDS.iter().any(|k| k.0 == kind),
                "ops.txt: unknown kind {kind:?} in {line:?}"
            );
            let name = name.to_string();
            (kind.to_string(), Op { name, doc })
        })
        .collect()
}

fn camel(snake: &str) -> String {
    snake
        .split('_')
        .map(|w| w[..1].to_uppercase() + &w[1..])
        .collect()
}

pub fn generate(list: &Path, out_dir: &Path) {
    let text = std::fs::read_to_string(list).expect("read ops.txt");
    let ops = parse(&text);
    let (mut rust, mut cpp) = (String::new(), String::from("#pragma once\n#include <cstdint>\n"));
    for (kind, rust_enum, cpp_enum, what) in KINDS {
        let of_kind: Vec<&Op> = ops.iter().filter(|(k, _)| k == kind).map(|(_, op)| op).collect();
        let mut variants = String::new();
        let (mut all, mut names) = (String::new(), String::new());
        let mut cpp_variants = String::new();
        for (code, op) in of_kind.iter().enumerate() {
            let v = camel(&op.name);
            if let Some(doc) = &op.doc {
                writeln!(variants, "    /// {}{}.", doc[..1].to_uppercase(), &doc[1..]).unwrap();
            }
            writeln!(variants, "    {v} = {code},").unwrap();
            write!(all, "{rust_enum}::{v}, ").unwrap();
            writeln!(names, "            {rust_enum}::{v} => \"{}\",", op.name).unwrap();
            writeln!(cpp_variants, "  {} = {code},", op.name).unwrap();
        }
        let n = of_kind.len();
        write!(
            rust,
            "/// {what}\n#[derive(Debug, Clone, Copy, PartialEq, Eq)]\npub enum {rust_enum} {{\n{variants}}}\n\n\
             impl {rust_enum} {{\n    pub const ALL: [{rust_enum}; {n}] = [{all}];\n\n\
             \x20   /// The name in ops.txt (and Elixir's atom).\n\
             \x20   pub fn name(self) -> &'static str {{\n        match self {{\n{names}        }}\n    }}\n\n\
             \x20   pub fn from_name(name: &str) -> Option<{rust_enum}> {{\n\
             \x20       Self::ALL.into_iter().find(|op| op.name() == name)\n    }}\n\n\
             \x20   /// The code C++'s `{cpp_enum}` gives the same op.\n\
             \x20   pub fn code(self) -> u8 {{\n        self as u8\n    }}\n}}\n\n"
        )
        .unwrap();
        write!(cpp, "enum class {cpp_enum} : uint8_t {{\n{cpp_variants}}};\n").unwrap();
    }
    std::fs::write(out_dir.join("ops_generated.rs"), rust).expect("write ops_generated.rs");
    std::fs::write(out_dir.join("ops_generated.h"), cpp).expect("write ops_generated.h");
}
